"""``cumulo layers``: versioned zips of shared code and packages."""

from __future__ import annotations

from pathlib import Path

import click
from rich import box
from rich.console import Console
from rich.table import Table

from cumulo.bundle import BundleError, load_path
from cumulo.cli.common import ExitCode, _cells, _echo_json, _fail, _option, _run, _when
from cumulo.client import Client


@click.group()
def layers() -> None:
    """Layers: a zip whose python/ folder (else its root) goes on the import path of the
    functions that list it (deploy --layer NAME:VERSION); its requirements.txt is
    installed like a function's."""


@layers.command("publish")
@click.argument("path", type=click.Path(exists=True, path_type=Path))
@_option("--name", envvar="CUMULO_LAYER_NAME", help="Layer name. Default: the folder's name.")
@_option("--description", envvar="CUMULO_LAYER_DESCRIPTION", default="")
@click.pass_context
def publish(ctx: click.Context, path: Path, name: str | None, description: str) -> None:
    """Publish PATH (a folder or a .zip) as the next version of a layer; print its number."""
    try:
        config, zip_bytes = load_path(path)
    except BundleError as exc:
        _fail("InvalidBundle", str(exc), ExitCode.USAGE)
    layer_name = name or str(config["name"])

    async def work(client: Client) -> None:
        layer = await client.publish_layer(layer_name, zip_bytes=zip_bytes, description=description)
        click.echo(layer["version"])
        state = layer.get("state")
        note = " (installing its requirements.txt)" if state == "pending" else ""
        click.echo(f"published layer {layer_name} version {layer['version']}{note}", err=True)

    _run(ctx, work)


@layers.command("ls")
@click.argument("name", required=False)
@_option("--json", "as_json", envvar="CUMULO_LAYERS_JSON", is_flag=True, help="Print JSON.")
@click.pass_context
def list_layers(ctx: click.Context, name: str | None, as_json: bool) -> None:
    """List the newest version of each layer, or every version of NAME."""

    async def work(client: Client) -> None:
        items = await (client.list_layer_versions(name) if name else client.list_layers())
        if as_json:
            _echo_json(items)
            return
        table = Table("NAME", "VERSION", "STATE", "SIZE", "PUBLISHED", "DESCRIPTION",
                      box=box.SIMPLE)  # fmt: skip
        for item in items:
            table.add_row(
                *_cells(
                    item["name"],
                    item["version"],
                    item.get("state", ""),
                    f"{(item.get('unpacked_bytes') or 0) / 1e6:.1f} MB",
                    _when(item.get("created_at")),
                    item.get("description", ""),
                )
            )
        Console().print(table)

    _run(ctx, work)


@layers.command("rm")
@click.argument("name")
@click.argument("version", type=click.IntRange(min=1))
@click.pass_context
def delete(ctx: click.Context, name: str, version: int) -> None:
    """Delete VERSION of layer NAME (refused while a function or version uses it)."""

    async def work(client: Client) -> None:
        await client.delete_layer_version(name, version)
        click.echo(f"deleted layer {name} version {version}")

    _run(ctx, work)
