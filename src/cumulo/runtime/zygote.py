"""The zygote: a process per function revision that has imported the handler and forks
instances on request; and :class:`ZygoteHandle`, the pool's end of it.

The zygote (``python -m cumulo.runtime.zygote --control-fd N --code-dir D --handler H``)
imports the runtime and the handler's module once, freezes the heap (``gc.freeze()``, so
forked instances share its pages), and then, single-threaded, waits for fork requests on its
``SOCK_SEQPACKET`` socket (messages in :mod:`cumulo.runtime.protocol`). It becomes a child
subreaper, so processes that instances leave behind are reaped here and a killed process
group disappears at once. It exits when the pool closes the socket; instances live on in
their own sessions until the pool kills them (or they see their own control socket close).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import ctypes
import gc
import json
import logging
import os
import selectors
import signal
import socket
import sys
import traceback
from pathlib import Path
from typing import Any, NoReturn

from cumulo.runtime import bootstrap, protocol

logger = logging.getLogger(__name__)

#: Module run with ``python -m`` to start a zygote.
ZYGOTE_MODULE = "cumulo.runtime.zygote"

_PR_SET_CHILD_SUBREAPER = 36

#: What a fork request yields: the instance's pid and a future of its exit code.
_Forked = tuple[int, "asyncio.Future[int | None]"]
_FORK_TIMEOUT_S = 10.0


class ZygoteError(Exception):
    """The zygote could not be started, or did not answer a fork request."""


# -- inside the zygote -------------------------------------------------------------------


class _Zygote:
    def __init__(self, channel: socket.socket, handler: str) -> None:
        self.channel = channel
        self.handler = handler
        self.children: set[int] = set()
        self.wake_r, self.wake_w = os.pipe()
        os.set_blocking(self.wake_r, False)
        os.set_blocking(self.wake_w, False)
        self.selector = selectors.DefaultSelector()

    def serve(self) -> None:
        signal.set_wakeup_fd(self.wake_w)
        # A Python-level handler is needed for the wakeup fd to be written on SIGCHLD.
        signal.signal(signal.SIGCHLD, lambda signum, frame: None)
        self.selector.register(self.channel, selectors.EVENT_READ)
        self.selector.register(self.wake_r, selectors.EVENT_READ)
        while True:
            for key, _ in self.selector.select():
                if key.fileobj is self.channel:
                    message, fds, _, _ = socket.recv_fds(
                        self.channel, protocol.MAX_ZYGOTE_MESSAGE_BYTES, 3
                    )
                    if not message:
                        return  # the pool is gone or done with us
                    self._fork(message, fds)
                else:
                    with contextlib.suppress(BlockingIOError):
                        while os.read(self.wake_r, 4096):
                            pass
            self._reap()

    def _send(self, message: dict[str, Any]) -> None:
        self.channel.send(json.dumps(message).encode())

    def _fork(self, message: bytes, fds: list[int]) -> None:
        try:
            request = protocol.decode_body(message)
            if len(fds) != 3:
                raise ValueError(f"a fork request needs 3 file descriptors, got {len(fds)}")
            for stream in (sys.stdout, sys.stderr):
                stream.flush()  # or the child would write our buffered output again
            pid = os.fork()
        except (OSError, ValueError) as exc:
            for fd in fds:
                os.close(fd)
            self._send({"error": f"{type(exc).__name__}: {exc}"})
            return
        if pid == 0:
            try:
                self._become_instance(request, fds)
            except BaseException:
                traceback.print_exc()
            finally:
                os._exit(70)
        for fd in fds:
            os.close(fd)
        self.children.add(pid)
        self._send({"pid": pid})

    def _become_instance(self, request: dict[str, Any], fds: list[int]) -> NoReturn:
        control_fd, stdout_fd, stderr_fd = fds
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        self.selector.close()
        self.channel.close()
        os.close(self.wake_r)
        os.close(self.wake_w)
        os.setsid()
        bootstrap.die_with_parent()
        os.dup2(stdout_fd, 1)
        os.dup2(stderr_fd, 2)
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.dup2(control_fd, 3)
        os.closerange(4, os.sysconf("SC_OPEN_MAX"))
        os.set_inheritable(3, False)  # the handler's children must not keep it open
        control = socket.socket(fileno=3)
        bootstrap.become_instance(request["instance_dir"], request["env"])
        bootstrap.serve(control, self.handler)

    def _reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            if pid in self.children:
                self.children.discard(pid)
                self._send({"exited": pid, "status": status})


def _become_subreaper() -> None:
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)


def main(argv: list[str] | None = None) -> None:
    """Entry point of the zygote process."""
    parser = argparse.ArgumentParser(prog="python -m cumulo.runtime.zygote")
    parser.add_argument("--control-fd", type=int, required=True)
    parser.add_argument("--code-dir", required=True)
    parser.add_argument("--handler", required=True)
    args = parser.parse_args(argv)
    os.set_inheritable(args.control_fd, False)
    channel = socket.socket(fileno=args.control_fd)
    bootstrap.die_with_parent()
    _become_subreaper()
    sys.path.insert(0, args.code_dir)
    import_error = bootstrap.preload(args.handler)
    zygote = _Zygote(channel, args.handler)
    gc.collect()
    gc.freeze()
    zygote._send({"ready": True, "pid": os.getpid(), "import_error": import_error})
    with contextlib.suppress(BrokenPipeError, ConnectionResetError):
        zygote.serve()


# -- in the pool -------------------------------------------------------------------------


class ZygoteHandle:
    """The pool's end of one zygote. Use :meth:`start`; then :meth:`fork` any number of
    times; :meth:`close` when done. Not safe to share between event loops."""

    def __init__(self, process: asyncio.subprocess.Process, channel: socket.socket) -> None:
        self.process = process
        self.pid = process.pid
        self.import_error: str | None = None
        self._channel = channel
        self._loop = asyncio.get_running_loop()
        self._ready: asyncio.Future[dict[str, Any]] = self._loop.create_future()
        self._forks: collections.deque[asyncio.Future[_Forked]] = collections.deque()
        self._exits: dict[int, asyncio.Future[int | None]] = {}
        self._dead = False
        self._send_lock = asyncio.Lock()
        self._writable: asyncio.Future[None] | None = None
        self._output_task: asyncio.Task[None] | None = None
        self._loop.add_reader(channel.fileno(), self._on_readable)

    @classmethod
    async def start(
        cls,
        *,
        python: str,
        code_dir: Path,
        handler: str,
        env: dict[str, str],
        timeout_s: float,
        module: str = ZYGOTE_MODULE,
        name: str = "",
    ) -> ZygoteHandle:
        """Start a zygote and wait until it has imported the handler's module (an import
        error does not fail the start: see :attr:`import_error`). Raises
        :class:`ZygoteError` if it exits or does not get ready within ``timeout_s``."""
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            process = await asyncio.create_subprocess_exec(
                python,
                "-m",
                module,
                "--control-fd",
                str(theirs.fileno()),
                "--code-dir",
                str(code_dir),
                "--handler",
                handler,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
                pass_fds=(theirs.fileno(),),
                env=env,
                cwd=code_dir,
                start_new_session=True,
            )
        except OSError as exc:
            ours.close()
            raise ZygoteError(f"cannot start a zygote with {python}: {exc}") from exc
        finally:
            theirs.close()
        ours.setblocking(False)
        zygote = cls(process, ours)
        zygote._output_task = asyncio.create_task(zygote._log_output(name or handler))
        try:
            ready = await asyncio.wait_for(zygote._ready, timeout_s)
        except (TimeoutError, ZygoteError) as exc:
            await zygote.close()
            raise ZygoteError(f"zygote for {name or handler} did not start: {exc}") from exc
        zygote.import_error = ready.get("import_error")
        return zygote

    @property
    def alive(self) -> bool:
        return not self._dead and self.process.returncode is None

    async def fork(
        self, fds: list[int], request: dict[str, Any]
    ) -> tuple[int, asyncio.Future[int | None]]:
        """Fork an instance that gets ``fds`` (control socket, stdout, stderr) and ``request``
        (``instance_dir``, ``env``). Returns its pid and a future of its exit code (negative:
        killed by that signal; ``None``: unknown, the zygote went away first). The caller
        still owns and must close ``fds``. Raises :class:`ZygoteError`."""
        payload = json.dumps(request).encode()
        # Answers come back in the order requests went out; the lock keeps that order while
        # a send waits for room in the socket buffer (a burst of requests can fill it).
        async with self._send_lock:
            if not self.alive:
                raise ZygoteError("the zygote is gone")
            answer: asyncio.Future[_Forked] = self._loop.create_future()
            self._forks.append(answer)
            try:
                await self._send(payload, fds)
            except BaseException as exc:
                with contextlib.suppress(ValueError):
                    self._forks.remove(answer)
                if isinstance(exc, OSError):
                    self._mark_dead()
                    raise ZygoteError(f"cannot reach the zygote: {exc}") from exc
                raise
        try:
            return await asyncio.wait_for(answer, _FORK_TIMEOUT_S)
        except TimeoutError as exc:
            raise ZygoteError("the zygote did not answer a fork request") from exc

    @property
    def children(self) -> int:
        """Instances forked by this zygote whose end it has not reported yet."""
        return len(self._exits)

    async def _send(self, payload: bytes, fds: list[int]) -> None:
        while True:
            try:
                socket.send_fds(self._channel, [payload], fds)
                return
            except BlockingIOError:
                pass
            writable: asyncio.Future[None] = self._loop.create_future()
            self._writable = writable
            self._loop.add_writer(self._channel.fileno(), _resolve, writable)
            try:
                await writable
            finally:
                self._writable = None
                if not self._dead:
                    self._loop.remove_writer(self._channel.fileno())

    async def close(self) -> None:
        """Stop the zygote (its instances are not touched) and wait for it. Idempotent."""
        self._mark_dead()
        if self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.kill()
        await self.process.wait()
        if self._output_task is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._output_task, 1.0)

    def _on_readable(self) -> None:
        try:
            message = self._channel.recv(protocol.MAX_ZYGOTE_MESSAGE_BYTES)
        except BlockingIOError:
            return
        except OSError:
            message = b""
        if not message:
            self._mark_dead()
            return
        try:
            self._dispatch(protocol.decode_body(message))
        except (ValueError, KeyError, TypeError):
            logger.exception("zygote %d sent a bad message; stopping it", self.pid)
            self._mark_dead()

    def _dispatch(self, message: dict[str, Any]) -> None:
        if message.get("ready"):
            if not self._ready.done():
                self._ready.set_result(message)
        elif "exited" in message:
            exit_future = self._exits.pop(int(message["exited"]), None)
            if exit_future is not None and not exit_future.done():
                exit_future.set_result(os.waitstatus_to_exitcode(int(message["status"])))
        elif "pid" in message:
            pid = int(message["pid"])
            # Created here, not in fork(): its "exited" may come before fork() resumes.
            exit_code: asyncio.Future[int | None] = self._loop.create_future()
            self._exits[pid] = exit_code
            answer = self._forks.popleft()
            if not answer.done():
                answer.set_result((pid, exit_code))
        elif "error" in message:
            answer = self._forks.popleft()
            if not answer.done():
                answer.set_exception(ZygoteError(f"fork failed: {message['error']}"))

    def _mark_dead(self) -> None:
        if self._dead:
            return
        self._dead = True
        self._loop.remove_reader(self._channel.fileno())
        self._loop.remove_writer(self._channel.fileno())
        if self._writable is not None and not self._writable.done():
            self._writable.set_exception(ConnectionError("the zygote is gone"))
        self._channel.close()
        if not self._ready.done():
            self._ready.set_exception(ZygoteError("it exited"))
            self._ready.exception()  # retrieved: start() may not be waiting any more
        while self._forks:
            answer = self._forks.popleft()
            if not answer.done():
                answer.set_exception(ZygoteError("the zygote exited"))
        for exit_future in self._exits.values():
            if not exit_future.done():
                exit_future.set_result(None)
        self._exits.clear()

    async def _log_output(self, name: str) -> None:
        """Relay what the zygote prints (import-time output, its own errors) to our log."""
        stream = self.process.stdout
        if stream is None:
            return
        while chunk := await stream.read(64 * 1024):
            for line in chunk.decode("utf-8", "replace").splitlines():
                logger.info("zygote %s (pid %d): %s", name, self.pid, line)
        # EOF: the zygote is gone (or about to be); a fork request would fail.
        self._mark_dead()


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


if __name__ == "__main__":
    main()
