"""``cumulo keys``: API keys (SecretId/SecretKey) that sign calls to the SCF API."""

from __future__ import annotations

import click
from rich import box
from rich.console import Console
from rich.table import Table

from cumulo.cli.common import _cells, _echo_json, _option, _run, _when
from cumulo.client import Client


@click.group()
def keys() -> None:
    """API keys (SecretId/SecretKey) that sign calls to the SCF API. Needs the admin token."""


@keys.command("create")
@_option(
    "--namespace",
    "key_namespace",
    envvar="CUMULO_KEYS_NAMESPACE",
    metavar="NS",
    help="Confine the key to this namespace. Default: an admin key (every namespace).",
)
@_option("--description", envvar="CUMULO_KEYS_DESCRIPTION", default="", help="A note on the key.")
@_option(
    "--json",
    "as_json",
    envvar="CUMULO_KEYS_JSON",
    is_flag=True,
    help='Print only {"secret_id": ..., "secret_key": ...}.',
)
@click.pass_context
def create_key(
    ctx: click.Context, key_namespace: str | None, description: str, as_json: bool
) -> None:
    """Make a key and print its SecretId and SecretKey. The SecretKey is shown this once."""

    async def work(client: Client) -> None:
        key = await client.create_key(key_namespace, description)
        if as_json:
            _echo_json({"secret_id": key["secret_id"], "secret_key": key["secret_key"]})
        else:
            scope = f"namespace {key['namespace']}" if key.get("namespace") else "admin"
            click.echo(f"SecretId:  {key['secret_id']}\nSecretKey: {key['secret_key']}")
            click.echo(f"scope:     {scope}", err=True)
        click.echo(
            "warning: the SecretKey is not shown again; keep it now (revoke the key if lost)",
            err=True,
        )

    _run(ctx, work)


@keys.command("list")
@_option("--json", "as_json", envvar="CUMULO_KEYS_JSON", is_flag=True, help="Print JSON.")
@click.pass_context
def list_keys(ctx: click.Context, as_json: bool) -> None:
    """List the keys (never their secrets), revoked ones included."""

    async def work(client: Client) -> None:
        items = await client.list_keys()
        if as_json:
            _echo_json(items)
            return
        table = Table(
            "SECRET_ID", "NAMESPACE", "STATUS", "CREATED", "REVOKED", "DESCRIPTION", box=box.SIMPLE
        )
        table.columns[0].no_wrap = True
        for key in items:
            table.add_row(
                *_cells(
                    key.get("secret_id"),
                    key.get("namespace") or "* (admin)",
                    key.get("status"),
                    _when(key.get("created_at")),
                    _when(key.get("revoked_at")),
                    key.get("description", ""),
                )
            )
        Console().print(table)

    _run(ctx, work)


@keys.command("revoke")
@click.argument("secret_id")
@click.pass_context
def revoke_key(ctx: click.Context, secret_id: str) -> None:
    """Revoke the key SECRET_ID at once (idempotent)."""

    async def work(client: Client) -> None:
        key = await client.revoke_key(secret_id)
        click.echo(f"revoked {key['secret_id']}")

    _run(ctx, work)
