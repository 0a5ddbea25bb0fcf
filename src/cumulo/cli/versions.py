"""``cumulo versions``: published versions of a function."""

from __future__ import annotations

import click
from rich import box
from rich.console import Console
from rich.table import Table

from cumulo.cli.common import _cells, _echo_json, _option, _run, _when
from cumulo.client import Client


@click.group()
def versions() -> None:
    """Published versions of a function: frozen code and configuration."""


@versions.command("publish")
@click.argument("name")
@_option("--description", envvar="CUMULO_VERSIONS_DESCRIPTION", default="")
@click.pass_context
def publish_version(ctx: click.Context, name: str, description: str) -> None:
    """Freeze the function NAME's current code and configuration as its next version;
    print the version's number."""

    async def work(client: Client) -> None:
        version = await client.publish_version(name, description)
        click.echo(version["version"])
        click.echo(f"published {name} version {version['version']}", err=True)

    _run(ctx, work)


@versions.command("ls")
@click.argument("name")
@_option("--json", "as_json", envvar="CUMULO_VERSIONS_JSON", is_flag=True, help="Print JSON.")
@click.pass_context
def list_versions(ctx: click.Context, name: str, as_json: bool) -> None:
    """List the function NAME's versions: $LATEST, then the published ones."""

    async def work(client: Client) -> None:
        items = await client.list_versions(name)
        if as_json:
            _echo_json(items)
            return
        table = Table(
            "VERSION", "HANDLER", "SHA256", "TIMEOUT", "MEMORY", "PUBLISHED", "DESCRIPTION",
            box=box.SIMPLE,
        )  # fmt: skip
        for item in items:
            table.add_row(
                *_cells(
                    item.get("version"),
                    item.get("handler"),
                    str(item.get("code_sha256", ""))[:12],
                    f"{item.get('timeout_s', '')} s",
                    f"{item.get('memory_mb', '')} MB",
                    _when(item.get("published_at")),
                    item.get("version_description", ""),
                )
            )
        Console().print(table)

    _run(ctx, work)


@versions.command("rm")
@click.argument("name")
@click.argument("version")
@click.pass_context
def delete_version(ctx: click.Context, name: str, version: str) -> None:
    """Delete VERSION of the function NAME (refused while an alias routes to it)."""

    async def work(client: Client) -> None:
        await client.delete_version(name, version)
        click.echo(f"deleted {name} version {version}")

    _run(ctx, work)
