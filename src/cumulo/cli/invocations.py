"""``cumulo invoke``, ``status``, ``logs``, ``terminate`` and ``events``: invocations."""

from __future__ import annotations

import contextlib
import json
import sys
from pathlib import Path
from typing import Any

import click
from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from cumulo.cli.common import ExitCode, _cells, _duration, _echo_json, _option, _run, _when
from cumulo.client import TERMINAL_STATUSES, Client

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


@click.command()
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


@click.command()
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


@click.command()
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


@click.command()
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


@click.command()
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
