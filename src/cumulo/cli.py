"""``cumulo``: the command line. A thin shell over :class:`cumulo.client.Client`.

Every flag has a ``CUMULO_*`` environment twin, shown in ``--help``. Data goes to stdout
(a result, a request_id, log lines written to stdout), everything else to stderr, so
``id=$(cumulo invoke etl --async)`` works. Errors print ``error: <code>: <message>`` on
stderr and exit with one of the :class:`ExitCode` values; never a traceback.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import json
import logging
import os
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import click
from rich import box
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn
from rich.table import Table
from rich.text import Text

from cumulo import __version__
from cumulo.bundle import (
    BundleError,
    deploy_bundle,
    examples_in,
    load_function_dir,
    load_path,
)
from cumulo.client import (
    DEFAULT_URL,
    TERMINAL_STATUSES,
    ApiError,
    Client,
    ConnectionFailed,
)
from cumulo.settings import DEFAULT_PORT, Settings


class ExitCode(enum.IntEnum):
    OK = 0
    #: The invocation ran and failed, timed out or was terminated.
    FAILED = 1
    #: Bad flags or arguments, or a path that cannot be packaged.
    USAGE = 2
    #: The server answered with an error.
    API_ERROR = 3
    #: The server could not be reached.
    CONNECTION = 4
    INTERRUPTED = 130


@dataclass(frozen=True, slots=True)
class ClientOptions:
    url: str
    token: str | None
    namespace: str


def _option(*decls: str, envvar: str, **kwargs: Any) -> Callable[[Any], Any]:
    """A click option whose environment twin is shown in ``--help``."""
    return click.option(*decls, envvar=envvar, show_envvar=True, **kwargs)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@_option(
    "--url", envvar="CUMULO_URL", default=DEFAULT_URL, show_default=True, help="The cumulo server."
)
@_option(
    "--token",
    envvar="CUMULO_TOKEN",
    help="API token. Default: the admin token in $CUMULO_DATA_DIR or ./.cumulo.",
)
@_option(
    "--namespace",
    "-n",
    envvar="CUMULO_NAMESPACE",
    default="default",
    show_default=True,
    help="The namespace to work in.",
)
@click.version_option(__version__, prog_name="cumulo")
@click.pass_context
def main(ctx: click.Context, url: str, token: str | None, namespace: str) -> None:
    """cumulo: self-hosted serverless functions built for async execution."""
    ctx.obj = ClientOptions(url=url, token=token, namespace=namespace)


def _run(ctx: click.Context, work: Callable[[Client], Awaitable[ExitCode | None]]) -> NoReturn:
    """Run ``work`` with a client (the one ``asyncio.run`` of the command) and exit with its
    code, translating every error into a one-line message and an exit code."""
    options = ctx.find_object(ClientOptions)
    if options is None:
        raise click.UsageError("run commands through the cumulo group")

    async def with_client() -> ExitCode | None:
        async with Client(options.url, options.token, options.namespace) as client:
            return await work(client)

    try:
        code = asyncio.run(with_client())
    except ConnectionFailed as exc:
        _fail(exc.code, exc.message, ExitCode.CONNECTION)
    except ApiError as exc:
        _fail(exc.code, exc.message, ExitCode.API_ERROR)
    except BundleError as exc:
        _fail("InvalidBundle", str(exc), ExitCode.USAGE)
    except TimeoutError as exc:
        _fail("Timeout", str(exc), ExitCode.API_ERROR)
    except KeyboardInterrupt:
        ctx.exit(ExitCode.INTERRUPTED)
    except BrokenPipeError:
        # The reader went away (`cumulo logs ID | head`): stop quietly, and keep Python from
        # complaining again when it flushes stdout at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        ctx.exit(ExitCode.OK)
    ctx.exit(code or ExitCode.OK)


def _fail(code: str, message: str, exit_code: ExitCode) -> NoReturn:
    click.echo(f"error: {code}: {message}", err=True)
    sys.exit(exit_code)


# -- server ------------------------------------------------------------------------------


@main.command()
@_option(
    "--data-dir",
    envvar="CUMULO_DATA_DIR",
    default=Path(".cumulo"),
    show_default=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Where the database, code packages and admin token live.",
)
@_option("--host", envvar="CUMULO_HOST", default="127.0.0.1", show_default=True)
@_option(
    "--port",
    envvar="CUMULO_PORT",
    default=DEFAULT_PORT,
    show_default=True,
    type=click.IntRange(1, 65535),
)
@_option(
    "--store",
    envvar="CUMULO_STORE",
    metavar="URL",
    help="SQLAlchemy URL (postgresql://...). Default: SQLite in the data dir.",
)
@_option(
    "--bus",
    envvar="CUMULO_BUS",
    default="memory://",
    show_default=True,
    metavar="URL",
    help="memory:// (in-process; the only bus of this version).",
)
@_option(
    "--max-instances",
    envvar="CUMULO_MAX_INSTANCES",
    default=256,
    show_default=True,
    type=click.IntRange(1, 100_000),
    help="Instances that may run at once on this node; more events wait queued.",
)
@_option(
    "--instance-idle",
    envvar="CUMULO_INSTANCE_IDLE",
    default=300.0,
    show_default=True,
    type=click.FloatRange(min=1),
    metavar="SECONDS",
    help="An idle (warm) instance is reclaimed after this long.",
)
@_option(
    "--retention",
    envvar="CUMULO_RETENTION",
    default=72 * 3600.0,
    show_default=True,
    type=click.FloatRange(min=60),
    metavar="SECONDS",
    help="Finished invocations and their logs are purged after this long.",
)
@_option(
    "--max-async-timeout",
    envvar="CUMULO_MAX_ASYNC_TIMEOUT",
    default=86_400.0,
    show_default=True,
    type=click.FloatRange(min=1),
    metavar="SECONDS",
    help="Longest timeout_s an async-run function may have.",
)
@_option(
    "--examples",
    envvar="CUMULO_EXAMPLES",
    metavar="DIR",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="At start, deploy every sub-folder of DIR holding a cumulo.json (unless a "
    "function of that name exists).",
)
@_option(
    "--metrics-public",
    envvar="CUMULO_METRICS_PUBLIC",
    is_flag=True,
    help="Serve /metrics without a token.",
)
@_option(
    "--tls-cert",
    envvar="CUMULO_TLS_CERT",
    metavar="PEM",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Serve HTTPS with this certificate chain (needs --tls-key).",
)
@_option(
    "--tls-key",
    envvar="CUMULO_TLS_KEY",
    metavar="PEM",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="The private key of --tls-cert.",
)
@_option(
    "--secret-key",
    envvar="CUMULO_SECRET_KEY",
    metavar="KEY",
    help="The key that encrypts API-key secrets (default: made once in DATA_DIR/secret.key). "
    "Give every node of a cluster the same one.",
)
@_option(
    "--scf-max-skew",
    envvar="CUMULO_SCF_MAX_SKEW",
    default=300.0,
    show_default=True,
    type=click.FloatRange(min=1),
    metavar="SECONDS",
    help="How far an SCF API call's X-TC-Timestamp may be from this server's clock.",
)
@_option(
    "--log-level",
    envvar="CUMULO_LOG_LEVEL",
    default="info",
    show_default=True,
    type=click.Choice(["debug", "info", "warning", "error"]),
)
def server(
    data_dir: Path,
    host: str,
    port: int,
    store: str | None,
    bus: str,
    max_async_timeout: float,
    max_instances: int,
    instance_idle: float,
    retention: float,
    examples: Path | None,
    metrics_public: bool,
    tls_cert: Path | None,
    tls_key: Path | None,
    secret_key: str | None,
    scf_max_skew: float,
    log_level: str,
) -> None:
    """Run a cumulo server (blocks; prints the admin token on first start)."""
    if (tls_cert is None) != (tls_key is None):
        _fail("InvalidParameter", "--tls-cert and --tls-key go together", ExitCode.USAGE)
    settings = Settings(
        data_dir=data_dir,
        host=host,
        port=port,
        store_url=store,
        bus_url=bus,
        max_async_timeout_s=max_async_timeout,
        max_instances=max_instances,
        instance_idle_s=instance_idle,
        retention_s=retention,
        metrics_public=metrics_public,
        examples_dir=examples,
        tls_certfile=tls_cert,
        tls_keyfile=tls_key,
        secret_key=secret_key,
        scf_max_skew_s=scf_max_skew,
    )
    logging.basicConfig(
        level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    if examples is not None:
        try:
            # Package them now: a broken example should stop the start with a clear message.
            for folder in examples_in(examples):
                load_function_dir(folder)
        except BundleError as exc:
            _fail("InvalidBundle", str(exc), ExitCode.USAGE)
    # Imported here: the client commands should not pay for loading the server.
    from cumulo.app import serve

    serve(settings)


# -- functions ---------------------------------------------------------------------------


@main.command()
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


@main.command("ls")
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


@main.command("rm")
@click.argument("name")
@click.pass_context
def remove(ctx: click.Context, name: str) -> None:
    """Delete the function NAME."""

    async def work(client: Client) -> None:
        await client.delete_function(name)
        click.echo(f"deleted {name}")

    _run(ctx, work)


def _echo_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, ensure_ascii=False))


def _when(value: Any) -> str:
    """An API time (ISO 8601 text or Unix seconds) for a table cell: to the second, UTC."""
    if isinstance(value, int | float):
        return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(value))
    return str(value or "")[:19].replace("T", " ")


def _duration(duration_ms: Any) -> str:
    if not isinstance(duration_ms, int | float):
        return ""
    if duration_ms < 1000:
        return f"{duration_ms:.0f} ms"
    return f"{duration_ms / 1000:.2f} s"


def _cells(*values: Any) -> list[Text]:
    """Table cells as plain text: user data must never be read as rich markup."""
    return [value if isinstance(value, Text) else Text(str(value)) for value in values]


# -- invocations -------------------------------------------------------------------------

_STATUS_STYLES = {
    "queued": "dim",
    "running": "cyan",
    "succeeded": "green",
    "failed": "red",
    "timed_out": "red",
    "terminated": "yellow",
}


def _status(status: Any) -> Text:
    return Text(str(status), style=_STATUS_STYLES.get(str(status), ""))


def _parse_event(ctx: click.Context, param: click.Parameter, value: str | None) -> Any:
    """``--event``: JSON text, ``@file`` (JSON in a file) or ``@-`` (JSON on stdin)."""
    if value is None:
        return None
    text = value
    if value.startswith("@"):
        source = value[1:]
        try:
            text = sys.stdin.read() if source == "-" else Path(source).read_text("utf-8")
        except OSError as exc:
            raise click.BadParameter(f"cannot read {source}: {exc.strerror}") from exc
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise click.BadParameter(
            f"not valid JSON ({exc}); quote it: --event '{{\"k\": 1}}'"
        ) from exc


@main.command()
@click.argument("name")
@_option(
    "--event",
    "-e",
    envvar="CUMULO_INVOKE_EVENT",
    metavar="JSON|@FILE",
    callback=_parse_event,
    help="The event: JSON, @file or @- for stdin. Default: {}.",
)
@_option(
    "--async",
    "run_async",
    envvar="CUMULO_INVOKE_ASYNC",
    is_flag=True,
    help="Return at once and print only the request_id.",
)
@_option(
    "--idempotency-key",
    envvar="CUMULO_INVOKE_IDEMPOTENCY_KEY",
    metavar="KEY",
    help="Repeating a key returns the first request_id and runs nothing.",
)
@_option(
    "--qualifier",
    "-q",
    envvar="CUMULO_INVOKE_QUALIFIER",
    metavar="VERSION|ALIAS",
    help="Run a published version or an alias. Default: $LATEST.",
)
@click.pass_context
def invoke(
    ctx: click.Context,
    name: str,
    event: Any,
    run_async: bool,
    idempotency_key: str | None,
    qualifier: str | None,
) -> None:
    """Invoke the function NAME. Sync: print the result as JSON (a failed run prints its
    error and exits 1). Async, and always for an async-run function: print the request_id."""

    async def work(client: Client) -> ExitCode | None:
        answer = await client.invoke(
            name,
            event,
            type="async" if run_async else "sync",
            idempotency_key=idempotency_key,
            qualifier=qualifier,
        )
        status = answer.get("status")
        if status not in TERMINAL_STATUSES:
            click.echo(answer["request_id"])
            if not run_async:
                click.echo(
                    f"{name} is an async-run function: it runs in the background; "
                    f"follow it with `cumulo logs -f {answer['request_id']}`",
                    err=True,
                )
            return None
        if status == "succeeded":
            _echo_json(answer.get("result"))
            return None
        _echo_failure(answer)
        return ExitCode.FAILED

    _run(ctx, work)


def _echo_failure(invocation: dict[str, Any]) -> None:
    error = invocation.get("error") or {}
    if error.get("traceback"):
        click.echo(str(error["traceback"]).rstrip(), err=True)
    code = error.get("type") or invocation.get("status")
    message = error.get("message") or f"invocation {invocation.get('request_id')} {code}"
    click.echo(f"error: {code}: {message}", err=True)


@main.command()
@click.argument("request_id")
@_option("--json", "as_json", envvar="CUMULO_STATUS_JSON", is_flag=True, help="Print JSON.")
@click.pass_context
def status(ctx: click.Context, request_id: str, as_json: bool) -> None:
    """Show an invocation: status, result or error, timings."""

    async def work(client: Client) -> None:
        invocation = await client.get_invocation(request_id)
        if as_json:
            _echo_json(invocation)
            return
        error = invocation.get("error") or {}
        attempt = f"{invocation.get('attempt')} of {invocation.get('max_attempts')}"
        rows: list[tuple[str, Any]] = [
            ("request_id", invocation.get("request_id")),
            ("function", invocation.get("function")),
            ("status", _status(invocation.get("status"))),
            ("type", invocation.get("type")),
            ("async_run", invocation.get("async_run")),
            ("attempt", attempt),
            ("created", _when(invocation.get("created_at"))),
            ("started", _when(invocation.get("started_at"))),
            ("finished", _when(invocation.get("finished_at"))),
            ("duration", _duration(invocation.get("duration_ms"))),
            ("peak memory", f"{invocation.get('peak_memory_mb') or 0:.1f} MB"),
        ]
        if invocation.get("status") == "succeeded":
            rows.append(("result", json.dumps(invocation.get("result"), ensure_ascii=False)))
        if error:
            rows.append(("error", f"{error.get('type')}: {error.get('message')}"))
        table = Table(show_header=False, box=None)
        table.add_column(style="bold")
        table.add_column(overflow="fold")
        for label, value in rows:
            table.add_row(*_cells(label, "" if value is None else value))
        Console().print(table)

    _run(ctx, work)


@main.command()
@click.argument("request_id")
@_option(
    "--follow",
    "-f",
    envvar="CUMULO_LOGS_FOLLOW",
    is_flag=True,
    help="Print lines as they are written, until the run ends; exit 1 unless it succeeded.",
)
@_option(
    "--after",
    envvar="CUMULO_LOGS_AFTER",
    default=0,
    type=click.IntRange(min=0),
    metavar="SEQ",
    help="Only lines after this sequence number.",
)
@click.pass_context
def logs(ctx: click.Context, request_id: str, follow: bool, after: int) -> None:
    """Print an invocation's log lines: its stdout to stdout, the rest to stderr."""

    async def work(client: Client) -> ExitCode | None:
        if not follow:
            for line in await client.logs(request_id, after=after):
                _echo_line(line)
            return None
        stream = client.follow_logs(request_id, last_event_id=after or None)
        async with contextlib.aclosing(stream) as lines:
            async for kind, data in lines:
                if kind == "log":
                    _echo_line(data)
                    continue
                final = data.get("status")
                click.echo(f"status: {final}", err=True)
                return ExitCode.OK if final == "succeeded" else ExitCode.FAILED
        return None

    _run(ctx, work)


def _echo_line(line: dict[str, Any]) -> None:
    click.echo(line.get("text", ""), err=line.get("stream") != "stdout")


@main.command()
@click.argument("request_id")
@_option(
    "--grace",
    envvar="CUMULO_TERMINATE_GRACE",
    is_flag=True,
    help="SIGTERM first, SIGKILL after the server's grace period.",
)
@_option(
    "--wait",
    envvar="CUMULO_TERMINATE_WAIT",
    is_flag=True,
    help="Return once the run has ended (up to 120 s).",
)
@click.pass_context
def terminate(ctx: click.Context, request_id: str, grace: bool, wait: bool) -> None:
    """Terminate an invocation (idempotent). The instance is repossessed."""

    async def work(client: Client) -> None:
        invocation = await client.terminate(request_id, grace=grace)
        if wait:
            invocation = await client.wait(request_id, timeout_s=120.0)
        click.echo(f"{request_id} {invocation.get('status')}")

    _run(ctx, work)


@main.command()
@click.argument("name", required=False)
@_option(
    "--status",
    "-s",
    "statuses",
    envvar="CUMULO_EVENTS_STATUS",
    metavar="S[,S]",
    help="Only these statuses: queued, running, succeeded, failed, timed_out, terminated.",
)
@_option(
    "--limit",
    envvar="CUMULO_EVENTS_LIMIT",
    default=20,
    show_default=True,
    type=click.IntRange(1, 1000),
)
@_option("--cursor", envvar="CUMULO_EVENTS_CURSOR", help="Continue an earlier listing.")
@_option("--json", "as_json", envvar="CUMULO_EVENTS_JSON", is_flag=True, help="Print JSON.")
@click.pass_context
def events(
    ctx: click.Context,
    name: str | None,
    statuses: str | None,
    limit: int,
    cursor: str | None,
    as_json: bool,
) -> None:
    """List the invocations of the function NAME (or of every function), newest first."""

    async def work(client: Client) -> None:
        page = await client.list_invocations(
            function=name, status=statuses, limit=limit, cursor=cursor
        )
        if as_json:
            _echo_json(page)
            return
        table = Table(
            "REQUEST_ID",
            "FUNCTION",
            "STATUS",
            "TYPE",
            "CREATED",
            "DURATION",
            "ERROR",
            box=box.SIMPLE,
        )
        table.columns[0].no_wrap = True
        for invocation in page.get("items", []):
            error = invocation.get("error") or {}
            table.add_row(
                *_cells(
                    invocation.get("request_id"),
                    invocation.get("function"),
                    _status(invocation.get("status")),
                    invocation.get("type"),
                    _when(invocation.get("created_at")),
                    _duration(invocation.get("duration_ms")),
                    error.get("type", ""),
                )
            )
        Console().print(table)
        if page.get("next_cursor"):
            click.echo(f"more: add --cursor {page['next_cursor']}", err=True)

    _run(ctx, work)


# -- API keys ----------------------------------------------------------------------------


@main.group()
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


# -- versions and aliases ----------------------------------------------------------------


@main.group()
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


@main.group()
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
