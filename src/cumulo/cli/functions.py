"""``cumulo deploy``, ``ls`` and ``rm``: the functions of a namespace."""

from __future__ import annotations

import contextlib
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
    help="Longest run: up to 900 s, or 86,400 s (24 h) for an async-run function.",
)
@_option(
    "--memory",
    "memory_mb",
    envvar="CUMULO_DEPLOY_MEMORY",
    metavar="MB",
    type=click.IntRange(64, 3072),
    help="Memory limit of an instance, 64 to 3072 MB (default 128).",
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
@_option(
    "--max-qps",
    envvar="CUMULO_DEPLOY_MAX_QPS",
    type=click.IntRange(min=1),
    help="Async-run calls accepted per second (default 1,000); more get 429.",
)
@_option(
    "--max-concurrency",
    envvar="CUMULO_DEPLOY_MAX_CONCURRENCY",
    type=click.IntRange(min=1),
    help="Runs at once; more events wait queued (default: no limit but the server's).",
)
@_option(
    "--retry-attempts",
    envvar="CUMULO_DEPLOY_RETRY_ATTEMPTS",
    type=click.IntRange(0, 8),
    help="Retries of a failed normal async run (default 2; async-run functions never retry).",
)
@_option("--description", envvar="CUMULO_DEPLOY_DESCRIPTION", help="Free text.")
@_option(
    "--layer",
    "layers",
    envvar="CUMULO_DEPLOY_LAYERS",
    multiple=True,
    metavar="NAME:VERSION",
    help="A layer version on the function's import path; repeat (the first listed wins).",
)
@_option(
    "--install-dependency/--no-install-dependency",
    envvar="CUMULO_DEPLOY_INSTALL_DEPENDENCY",
    default=None,
    help="Install the package's requirements.txt (default), or leave vendored packages alone.",
)
@_option(
    "--wait/--no-wait",
    envvar="CUMULO_DEPLOY_WAIT",
    default=True,
    show_default=True,
    help="Show the build of requirements.txt live and wait until the function is active.",
)
@click.pass_context
def deploy(
    ctx: click.Context,
    /,
    path: Path,
    env: tuple[str, ...],
    layers: tuple[str, ...],
    wait: bool,
    **flags: Any,
) -> None:
    """Create or update a function from PATH: a folder (with an optional cumulo.json),
    a .zip or a single .py file. Flags win over cumulo.json. A requirements.txt in it is
    installed by the server: the build's log is shown as it runs, and the command exits 1
    when the build fails (a function that had code keeps serving it)."""
    environment = _parse_env(env)
    try:
        config, zip_bytes = load_path(path)
    except BundleError as exc:
        _fail("InvalidBundle", str(exc), ExitCode.USAGE)
    config.update({key: value for key, value in flags.items() if value is not None})
    if environment:
        config["environment"] = {**config.get("environment", {}), **environment}
    if layers:
        config["layers"] = [_parse_layer(layer) for layer in layers]

    async def work(client: Client) -> ExitCode:
        with _UploadBar(f"uploading {config['name']}") as bar:
            action, function = await deploy_bundle(client, config, zip_bytes, bar)
        mode = "async-run" if function.get("async_run") else "normal"
        click.echo(
            f"{action} {function['name']} (revision {function.get('revision')}, {mode}, "
            f"{function.get('code_size_bytes', len(zip_bytes))} bytes, "
            f"sha256 {str(function.get('code_sha256', ''))[:12]})"
        )
        if function.get("state") != "pending" or not wait:
            if function.get("state") == "pending":
                click.echo(f"{function['name']} is pending: `cumulo build-log "
                           f"{function['name']} -f` follows its build", err=True)  # fmt: skip
            return ExitCode.OK
        return await follow_build(client, function["name"])

    _run(ctx, work)


async def follow_build(client: Client, name: str) -> ExitCode:
    """Print the function's build log live (to stderr) until it ends; then its state."""
    stream = client.follow_build_logs(name)
    async with contextlib.aclosing(stream) as events:
        async for kind, data in events:
            if kind == "log":
                click.echo(f"  {data.get('text', '')}", err=True)
    function = await client.get_function(name)
    state = function.get("state")
    if state == "active":
        build = await client.get_build(name)
        size = build.get("installed_bytes") or 0
        what = "reused" if build.get("reused") else "installed"
        click.echo(
            f"{name} is active ({len(build.get('packages', []))} package(s) {what}, "
            f"{size / 1e6:.1f} MB, build {_seconds(build.get('duration_ms'))})"
        )
        return ExitCode.OK
    reason = function.get("state_reason") or "see the build log"
    click.echo(f"error: BuildFailed: {name}: {reason}", err=True)
    if function.get("ready"):
        click.echo(f"{name} keeps serving its previous code", err=True)
    return ExitCode.FAILED


@click.command("build-log")
@click.argument("name")
@_option(
    "--follow",
    "-f",
    envvar="CUMULO_BUILD_LOG_FOLLOW",
    is_flag=True,
    help="Follow the build live until it ends; exit 1 if it failed.",
)
@click.pass_context
def build_log(ctx: click.Context, name: str, follow: bool) -> None:
    """Print the log of the function NAME's latest build (its requirements.txt install)."""

    async def work(client: Client) -> ExitCode | None:
        if follow:
            return await follow_build(client, name)
        for line in await client.build_logs(name):
            click.echo(line.get("text", ""))
        return None

    _run(ctx, work)


def _parse_layer(text: str) -> dict[str, Any]:
    name, sep, version = text.rpartition(":")
    if not sep or not name or not version.isdigit():
        raise click.BadParameter(f"{text!r} is not NAME:VERSION", param_hint="--layer")
    return {"name": name, "version": int(version)}


def _seconds(duration_ms: Any) -> str:
    return f"{duration_ms / 1000:.1f} s" if isinstance(duration_ms, int | float) else "?"


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
            "NAME", "STATE", "ASYNC RUN", "HANDLER", "TIMEOUT", "MEMORY", "REV", "UPDATED",
            box=box.SIMPLE,
        )  # fmt: skip
        for function in functions:
            table.add_row(
                function["name"],
                function.get("state", ""),
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
