"""``cumulo namespaces``: a tenant's folders of functions (``default`` always exists)."""

from __future__ import annotations

import click
from rich import box
from rich.console import Console
from rich.table import Table

from cumulo.cli.common import _echo_json, _option, _run
from cumulo.client import Client


@click.group()
def namespaces() -> None:
    """Namespaces: create them before deploying into them or making keys for them."""


@namespaces.command("create")
@click.argument("name")
@_option("--description", envvar="CUMULO_NAMESPACES_DESCRIPTION", default="", help="A note.")
@click.pass_context
def create_namespace(ctx: click.Context, name: str, description: str) -> None:
    """Create namespace NAME."""

    async def work(client: Client) -> None:
        made = await client.create_namespace(name, description)
        click.echo(made["name"])

    _run(ctx, work)


@namespaces.command("ls")
@_option("--json", "as_json", envvar="CUMULO_NAMESPACES_JSON", is_flag=True, help="Print JSON.")
@click.pass_context
def list_namespaces(ctx: click.Context, as_json: bool) -> None:
    """List the namespaces."""

    async def work(client: Client) -> None:
        items = await client.namespaces()
        if as_json:
            _echo_json(items)
            return
        table = Table(box=box.SIMPLE)
        for column in ("NAME", "DESCRIPTION"):
            table.add_column(column, overflow="fold")
        for item in items:
            table.add_row(item["name"], item.get("description") or "")
        Console().print(table)

    _run(ctx, work)


@namespaces.command("rm")
@click.argument("name")
@click.pass_context
def remove_namespace(ctx: click.Context, name: str) -> None:
    """Delete namespace NAME (it must hold no functions; its API keys are revoked)."""

    async def work(client: Client) -> None:
        await client.delete_namespace(name)
        click.echo(f"deleted namespace {name}", err=True)

    _run(ctx, work)
