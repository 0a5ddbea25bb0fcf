"""The loop that runs inside an instance: read an invocation, call the handler, answer.

Stdlib only and small, because it is imported by every zygote before it forks. An instance is
normally a fork of its function's zygote (:mod:`cumulo_runtime.zygote`), which calls
:func:`become_instance` and :func:`serve`; as a fallback the pool spawns one directly with
``python -I -B -m cumulo_runtime.bootstrap --control-fd N --code-dir D --handler H
[--site-dir S ...]``, which reads a setup frame from the control socket first. The wire format
is in :mod:`cumulo_runtime.protocol`.

Both start on cumulo's clean interpreter (a virtual environment with nothing installed but a
``.pth`` naming this runtime's folder), so ``sys.path`` holds the standard library and this
runtime; :func:`set_import_path` then puts the function's code, its environment and its
layers in front, in that order.

The handler runs in the main thread, so it may install its own signal handlers (a graceful
terminate sends SIGTERM to the instance's process group).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import inspect
import io
import json
import os
import socket
import sys
import time
import traceback
from collections.abc import Callable, Mapping
from typing import Any, NoReturn

from . import protocol

Handler = Callable[[Any, "Context"], Any]


class Context(dict[str, Any]):
    """What the handler gets as ``context``: a dict (so ``context["request_id"]`` and
    ``json.dumps(context)`` work) whose keys are also attributes (``context.request_id``)."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(f"context has no attribute {name!r}") from None

    #: Unix time (s) past which the platform kills the run; not one of the mapping's keys.
    deadline_s: float = 0.0

    def get_remaining_time_in_millis(self) -> int:
        """Milliseconds left before the platform kills this run (0 once past the deadline)."""
        return max(0, int((self.deadline_s - time.time()) * 1000))

    @classmethod
    def build(cls, request_id: str, fields: Mapping[str, Any]) -> Context:
        context = cls(
            request_id=request_id,
            function_name=fields["function_name"],
            namespace=fields["namespace"],
            function_version=fields["function_version"],
            memory_limit_in_mb=fields["memory_limit_in_mb"],
            time_limit_in_ms=fields["time_limit_in_ms"],
            environment=dict(os.environ),
            # SCF's spellings, so that handlers written for SCF read what they expect.
            environ=";".join(f"{k}={v}" for k, v in os.environ.items()),
            tencentcloud_region=os.environ.get("TENCENTCLOUD_REGION", ""),
            tencentcloud_appid=os.environ.get("TENCENTCLOUD_APPID", ""),
            tencentcloud_uin=os.environ.get("TENCENTCLOUD_UIN", ""),
        )
        context.deadline_s = float(fields["deadline"])
        return context


def split_handler(spec: str) -> tuple[str, str]:
    """``"index.main_handler"`` → ``("index", "main_handler")``; ``"pkg/mod.f"`` → ``("pkg.mod",
    "f")``. Raises ``ValueError`` when there is no ``.`` separating module and function."""
    module, dot, func = spec.replace("/", ".").rpartition(".")
    if not dot or not module or not func:
        raise ValueError(f"handler {spec!r} must look like 'file.function'")
    return module, func


def set_import_path(code_dir: str, site_dirs: list[str]) -> None:
    """Put the function's code first on ``sys.path``, then ``site_dirs`` (its environment,
    then its layers, the first listed winning), and run the ``.pth`` files of those (some
    installed packages need theirs)."""
    import site

    sys.path[0:0] = [code_dir, *site_dirs]
    for site_dir in site_dirs:
        # Already on the path, so not added again: only its .pth files are read.
        site.addsitedir(site_dir)


def preload(spec: str) -> str | None:
    """Import the handler's module now, so forks inherit it. Returns ``None``, or a one-line
    description of why the import failed (the instance re-imports and reports the error)."""
    try:
        module, _ = split_handler(spec)
        importlib.import_module(module)
    except BaseException as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


def resolve(spec: str) -> Handler:
    """The handler function. Raises whatever importing its module raises, or
    ``AttributeError`` / ``TypeError`` when the name is missing or not callable."""
    module_name, func_name = split_handler(spec)
    module = importlib.import_module(module_name)
    try:
        func = getattr(module, func_name)
    except AttributeError:
        raise AttributeError(
            f"handler {spec!r} not found: module {module_name!r} has no attribute {func_name!r}"
        ) from None
    if not callable(func):
        raise TypeError(f"handler {spec!r} is not callable")
    return func  # type: ignore[no-any-return]


def invoke(message: Mapping[str, Any], spec: str) -> dict[str, Any]:
    """Run one invocation; the answer frame. ``SystemExit`` from the handler propagates."""
    try:
        handler = resolve(spec)
        event = json.loads(message["event"])
        context = Context.build(message["request_id"], message["context"])
        result = handler(event, context)
        if inspect.iscoroutine(result):
            import asyncio  # only async handlers pay for it (a zygote has usually loaded it)

            result = asyncio.run(result)
    except SystemExit:
        raise
    except BaseException as exc:
        return {"ok": False, "error": describe(exc)}
    try:
        text = json.dumps(result, allow_nan=False)
    except (TypeError, ValueError, RecursionError) as exc:
        return {
            "ok": False,
            "error": {
                "type": "ResultNotSerializable",
                "message": f"the handler returned a value that is not JSON: {exc}",
                "traceback": "",
            },
        }
    return {"ok": True, "result": text}


def describe(exc: BaseException) -> dict[str, str]:
    """``{type, message, traceback}`` of an exception, without this module's own frame."""
    tb = exc.__traceback__
    if tb is not None and tb.tb_frame.f_code is invoke.__code__:
        tb = tb.tb_next
    lines = traceback.format_exception(type(exc), exc, tb)
    return {"type": type(exc).__name__, "message": str(exc), "traceback": "".join(lines)}


def end_of_output() -> None:
    """Flush the handler's streams and mark the end of this run's output on fds 1 and 2."""
    for stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
        # The handler may have closed or broken a stream; nothing more will come from it.
        if stream is not None:
            with contextlib.suppress(OSError, ValueError):
                stream.flush()
    for fd in (1, 2):
        with contextlib.suppress(OSError):
            os.write(fd, protocol.END_MARKER)


_PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """Ask the kernel to SIGKILL this process when its parent dies (Linux), so that a server
    killed with ``kill -9`` takes its zygotes, and they their instances, along. If the parent
    is already gone, exit now."""
    parent = os.getppid()
    with contextlib.suppress(OSError, AttributeError):
        import ctypes
        import signal

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
    if os.getppid() != parent or parent == 1:
        os._exit(0)


def become_instance(instance_dir: str, env: Mapping[str, str]) -> None:
    """Turn this process into an instance: cwd, exact environment, line-buffered stdio on
    fds 1 and 2 (which the caller has already pointed at the pool's pipes)."""
    os.chdir(instance_dir)
    os.environ.clear()
    os.environ.update(env)
    if "tempfile" in sys.modules:
        import tempfile

        tempfile.tempdir = None  # it caches TMPDIR on first use; ours has just changed
    sys.stdout = _line_buffered(1)
    sys.stderr = _line_buffered(2)


def _line_buffered(fd: int) -> io.TextIOWrapper:
    raw = io.FileIO(fd, "w", closefd=False)
    return io.TextIOWrapper(
        io.BufferedWriter(raw), encoding="utf-8", errors="backslashreplace", line_buffering=True
    )


def serve(control: socket.socket, spec: str) -> NoReturn:
    """Answer invocations until the pool closes the control socket, then exit."""
    while True:
        message = protocol.recv_frame(control)
        if message is None:
            end_of_output()
            os._exit(0)
        try:
            answer = invoke(message, spec)
        except SystemExit as exc:
            end_of_output()
            os._exit(_exit_code(exc))
        end_of_output()
        protocol.send_frame(control, answer)


def _exit_code(exc: SystemExit) -> int:
    if exc.code is None:
        return 0
    if isinstance(exc.code, int):
        return exc.code
    print(exc.code, file=sys.stderr)
    return 1


def main(argv: list[str] | None = None) -> NoReturn:
    """Entry point of an instance spawned without a zygote."""
    parser = argparse.ArgumentParser(prog="python -m cumulo_runtime.bootstrap")
    parser.add_argument("--control-fd", type=int, required=True)
    parser.add_argument("--code-dir", required=True)
    parser.add_argument("--handler", required=True)
    parser.add_argument("--site-dir", action="append", default=[])
    args = parser.parse_args(argv)
    try:
        die_with_parent()
        os.set_inheritable(args.control_fd, False)  # the handler's children must not hold it
        control = socket.socket(fileno=args.control_fd)
        setup = protocol.recv_frame(control)
        if setup is None:
            os._exit(0)
        set_import_path(args.code_dir, args.site_dir)
        become_instance(setup["instance_dir"], setup["env"])
        serve(control, args.handler)
    except BaseException:
        traceback.print_exc()
        os._exit(70)


if __name__ == "__main__":
    main()
