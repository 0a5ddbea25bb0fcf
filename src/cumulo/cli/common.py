"""What every ``cumulo`` command shares: the :func:`main` group and its client options,
:func:`_option` (a flag with its ``CUMULO_*`` twin), :class:`ExitCode`, :func:`_run` (the
one ``asyncio.run`` of a command, with errors translated to exit codes) and the output
helpers.
"""

from __future__ import annotations

import asyncio
import enum
import json
import os
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, NoReturn

import click
from rich.text import Text

from cumulo import __version__
from cumulo.bundle import BundleError
from cumulo.client import DEFAULT_URL, ApiError, Client, ConnectionFailed


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


# -- output ------------------------------------------------------------------------------


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
