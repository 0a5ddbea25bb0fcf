"""``cumulo deploy``, ``ls`` and ``rm``: the functions of a namespace."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
from rich import box
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn
from rich.table import Table

from cumulo.bundle import BundleError, deploy_bundle, load_path
from cumulo.cli.common import ExitCode, _echo_json, _fail, _option, _run, _when
from cumulo.client import Client


@click.command()
@click.argument("path", type=click.Path(exists=True, path_type=Path))
@_option(
    "--name",
    envvar="CUMULO_DEPLOY_NAME",
    help="Function name. Default: cumulo.json's name, else the folder or file name.",
)
@_option(
    "--handler",
    envvar="CUMULO_DEPLOY_HANDLER",
    metavar="FILE.FUNC",
    help="Default: cumulo.json's, else index.main_handler.",
)
@_option(
    "--timeout",
    "timeout_s",
    envvar="CUMULO_DEPLOY_TIMEOUT",
    metavar="SECONDS",
    type=click.FloatRange(min=0, min_open=True),
)
@_option(
    "--memory", "memory_mb", envvar="CUMULO_DEPLOY_MEMORY", metavar="MB", type=click.IntRange(min=1)
)
@_option(
    "--async-run/--no-async-run",
    envvar="CUMULO_DEPLOY_ASYNC_RUN",
    default=None,
    help="Make it an async-run function (up to 24 h per run). Fixed at creation.",
)
@_option(
    "--env",
    "env",
    envvar="CUMULO_DEPLOY_ENV",
    multiple=True,
    metavar="K=V",
    help="An environment variable of the function; repeat for more.",
)
@_option("--max-qps", envvar="CUMULO_DEPLOY_MAX_QPS", type=click.IntRange(min=1))
@_option("--max-concurrency", envvar="CUMULO_DEPLOY_MAX_CONCURRENCY", type=click.IntRange(min=1))
@_option("--retry-attempts", envvar="CUMULO_DEPLOY_RETRY_ATTEMPTS", type=click.IntRange(0, 8))
@_option("--description", envvar="CUMULO_DEPLOY_DESCRIPTION")
@click.pass_context
def deploy(ctx: click.Context, /, path: Path, env: tuple[str, ...], **flags: Any) -> None:
    """Create or update a function from PATH: a folder (with an optional cumulo.json),
    a .zip or a single .py file. Flags win over cumulo.json."""
    environment = _parse_env(env)
    try:
        config, zip_bytes = load_path(path)
    except BundleError as exc:
        _fail("InvalidBundle", str(exc), ExitCode.USAGE)
    config.update({key: value for key, value in flags.items() if value is not None})
    if environment:
        config["environment"] = {**config.get("environment", {}), **environment}

    async def work(client: Client) -> None:
        with _UploadBar(f"uploading {config['name']}") as bar:
            action, function = await deploy_bundle(client, config, zip_bytes, bar)
        mode = "async-run" if function.get("async_run") else "normal"
        click.echo(
            f"{action} {function['name']} (revision {function.get('revision')}, {mode}, "
            f"{function.get('code_size_bytes', len(zip_bytes))} bytes, "
            f"sha256 {str(function.get('code_sha256', ''))[:12]})"
        )

    _run(ctx, work)


class _UploadBar:
    """A rich progress bar on stderr, shown only when stderr is a terminal."""

    def __init__(self, label: str) -> None:
        console = Console(stderr=True)
        self._progress = Progress(
            "[progress.description]{task.description}",
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            console=console,
            transient=True,
            disable=not console.is_terminal,
        )
        self._task = self._progress.add_task(label, total=None)

    def __enter__(self) -> _UploadBar:
        self._progress.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._progress.stop()

    def __call__(self, sent_bytes: int, total_bytes: int) -> None:
        self._progress.update(self._task, completed=sent_bytes, total=total_bytes)


def _parse_env(pairs: tuple[str, ...]) -> dict[str, str]:
    environment: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{pair!r} is not K=V", param_hint="--env")
        environment[key] = value
    return environment


@click.command("ls")
@_option("--json", "as_json", envvar="CUMULO_LS_JSON", is_flag=True, help="Print JSON.")
@click.pass_context
def list_functions(ctx: click.Context, as_json: bool) -> None:
    """List the functions of the namespace (✓ marks async-run functions)."""

    async def work(client: Client) -> None:
        functions = await client.list_functions()
        if as_json:
            _echo_json(functions)
            return
        table = Table(
            "NAME", "ASYNC RUN", "HANDLER", "TIMEOUT", "MEMORY", "REV", "UPDATED", box=box.SIMPLE
        )
        for function in functions:
            table.add_row(
                function["name"],
                "✓" if function.get("async_run") else "",
                function.get("handler", ""),
                f"{function.get('timeout_s', '')} s",
                f"{function.get('memory_mb', '')} MB",
                str(function.get("revision", "")),
                _when(function.get("updated_at")),
            )
        Console().print(table)

    _run(ctx, work)


@click.command("rm")
@click.argument("name")
@click.pass_context
def remove(ctx: click.Context, name: str) -> None:
    """Delete the function NAME."""

    async def work(client: Client) -> None:
        await client.delete_function(name)
        click.echo(f"deleted {name}")

    _run(ctx, work)
