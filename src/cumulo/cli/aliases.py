"""``cumulo aliases``: aliases of a function, optionally splitting the calls between
versions."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click
from rich import box
from rich.console import Console
from rich.table import Table

from cumulo.cli.common import _cells, _echo_json, _option, _run, _when
from cumulo.client import Client


def _parse_weights(
    ctx: click.Context, param: click.Parameter, value: tuple[str, ...]
) -> dict[str, float] | None:
    """``--weight VERSION=FRACTION`` (repeatable) as ``{version: fraction}``; None when not
    given."""
    if not value:
        return None
    weights: dict[str, float] = {}
    for pair in value:
        version, sep, fraction = pair.partition("=")
        try:
            weights[version.strip()] = float(fraction)
        except ValueError:
            sep = ""
        if not sep or not version.strip():
            raise click.BadParameter(f"{pair!r} is not VERSION=FRACTION (e.g. 2=0.1)")
    return weights


def _weight_option(envvar: str) -> Callable[[Any], Any]:
    return _option(
        "--weight",
        "weights",
        envvar=envvar,
        multiple=True,
        metavar="VERSION=FRACTION",
        callback=_parse_weights,
        help="Send this share of the calls to another version; repeat for more (below 1 in all).",
    )


def _routing(alias: dict[str, Any]) -> str:
    """``1 (90%), 2 (10%)``: where an alias sends the calls."""
    weights: dict[str, float] = alias.get("additional_weights") or {}
    if not weights:
        return str(alias.get("function_version"))
    main_share = 1 - sum(weights.values())
    shares = [(str(alias.get("function_version")), main_share), *sorted(weights.items())]
    return ", ".join(f"{version} ({share:.0%})" for version, share in shares)


def _echo_alias(alias: dict[str, Any], as_json: bool) -> None:
    if as_json:
        _echo_json(alias)
    else:
        click.echo(f"{alias['name']} -> {_routing(alias)}")


@click.group()
def aliases() -> None:
    """Aliases of a function: a name for a version, optionally splitting the calls."""


@aliases.command("create")
@click.argument("name")
@click.argument("alias")
@_option(
    "--version",
    "function_version",
    envvar="CUMULO_ALIASES_VERSION",
    required=True,
    metavar="V",
    help="The version it names: a published version's number or $LATEST.",
)
@_weight_option("CUMULO_ALIASES_WEIGHT")
@_option("--description", envvar="CUMULO_ALIASES_DESCRIPTION", default="")
@_option("--json", "as_json", envvar="CUMULO_ALIASES_JSON", is_flag=True, help="Print JSON.")
@click.pass_context
def create_alias(
    ctx: click.Context,
    name: str,
    alias: str,
    function_version: str,
    weights: dict[str, float] | None,
    description: str,
    as_json: bool,
) -> None:
    """Create ALIAS of the function NAME."""

    async def work(client: Client) -> None:
        made = await client.create_alias(name, alias, function_version, weights, description)
        _echo_alias(made, as_json)

    _run(ctx, work)


@aliases.command("ls")
@click.argument("name")
@_option("--json", "as_json", envvar="CUMULO_ALIASES_JSON", is_flag=True, help="Print JSON.")
@click.pass_context
def list_aliases(ctx: click.Context, name: str, as_json: bool) -> None:
    """List the aliases of the function NAME."""

    async def work(client: Client) -> None:
        items = await client.list_aliases(name)
        if as_json:
            _echo_json(items)
            return
        table = Table("ALIAS", "ROUTES TO", "UPDATED", "DESCRIPTION", box=box.SIMPLE)
        for item in items:
            table.add_row(
                *_cells(
                    item.get("name"),
                    _routing(item),
                    _when(item.get("updated_at")),
                    item.get("description", ""),
                )
            )
        Console().print(table)

    _run(ctx, work)


@aliases.command("show")
@click.argument("name")
@click.argument("alias")
@_option("--json", "as_json", envvar="CUMULO_ALIASES_JSON", is_flag=True, help="Print JSON.")
@click.pass_context
def show_alias(ctx: click.Context, name: str, alias: str, as_json: bool) -> None:
    """Show ALIAS of the function NAME and where it sends the calls."""

    async def work(client: Client) -> None:
        _echo_alias(await client.get_alias(name, alias), as_json)

    _run(ctx, work)


@aliases.command("update")
@click.argument("name")
@click.argument("alias")
@_option(
    "--version",
    "function_version",
    envvar="CUMULO_ALIASES_VERSION",
    metavar="V",
    help="Point it at this version.",
)
@_weight_option("CUMULO_ALIASES_WEIGHT")
@_option(
    "--no-weights",
    envvar="CUMULO_ALIASES_NO_WEIGHTS",
    is_flag=True,
    help="Send every call to the main version.",
)
@_option("--description", envvar="CUMULO_ALIASES_DESCRIPTION")
@_option("--json", "as_json", envvar="CUMULO_ALIASES_JSON", is_flag=True, help="Print JSON.")
@click.pass_context
def update_alias(
    ctx: click.Context,
    name: str,
    alias: str,
    function_version: str | None,
    weights: dict[str, float] | None,
    no_weights: bool,
    description: str | None,
    as_json: bool,
) -> None:
    """Change ALIAS of the function NAME; what is not given stays as it is."""
    if no_weights and weights is not None:
        raise click.UsageError("--weight and --no-weights exclude each other")

    async def work(client: Client) -> None:
        updated = await client.update_alias(
            name,
            alias,
            function_version=function_version,
            additional_weights={} if no_weights else weights,
            description=description,
        )
        _echo_alias(updated, as_json)

    _run(ctx, work)


@aliases.command("rm")
@click.argument("name")
@click.argument("alias")
@click.pass_context
def delete_alias(ctx: click.Context, name: str, alias: str) -> None:
    """Delete ALIAS of the function NAME."""

    async def work(client: Client) -> None:
        await client.delete_alias(name, alias)
        click.echo(f"deleted alias {alias} of {name}")

    _run(ctx, work)
