"""The pool's end of a zygote: :class:`ZygoteHandle` starts one, asks it for forks and
learns how its instances end.

The zygote itself (what runs in that process) is :mod:`cumulo_runtime.zygote`, under
``runtime/guest``: a process per function revision that has imported the handler's module,
with the function's code, environment and layers on its path, and forks instances on
request. Messages are described in :mod:`cumulo_runtime.protocol`.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import logging
import os
import shutil
import socket
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cumulo.runtime.guest.cumulo_runtime import protocol

logger = logging.getLogger(__name__)

#: Module run with ``python -m`` to start a zygote (on the clean interpreter).
ZYGOTE_MODULE = "cumulo_runtime.zygote"

#: What a fork request yields: the instance's pid and a future of its exit code.
_Forked = tuple[int, "asyncio.Future[int | None]"]
_FORK_TIMEOUT_S = 10.0


#: Python's flags for zygotes and instances: isolated (no ``PYTHON*`` variables, no user
#: site, no current directory on the path) and writing no ``.pyc`` into read-only trees.
ISOLATED_FLAGS = ("-I", "-B")


def site_dir_args(site_dirs: Sequence[Path]) -> list[str]:
    """``--site-dir D`` for each folder, in order (the runtime's command-line form)."""
    return [arg for site_dir in site_dirs for arg in ("--site-dir", str(site_dir))]


class ZygoteError(Exception):
    """The zygote could not be started, or did not answer a fork request."""


class ZygoteHandle:
    """The pool's end of one zygote. Use :meth:`start`; then :meth:`fork` any number of
    times; :meth:`close` when done. Not safe to share between event loops."""

    def __init__(self, process: asyncio.subprocess.Process, channel: socket.socket) -> None:
        self.process = process
        self.pid = process.pid
        self.import_error: str | None = None
        self.directory: Path | None = None
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
        site_dirs: Sequence[Path] = (),
        timeout_s: float,
        module: str = ZYGOTE_MODULE,
        name: str = "",
        directory: Path | None = None,
    ) -> ZygoteHandle:
        """Start a zygote on ``python`` (cumulo's clean interpreter) with ``code_dir`` and
        then ``site_dirs`` on its path, and wait until it has imported the handler's module
        (an import error does not fail the start: see :attr:`import_error`). ``directory``
        (its ``HOME``, with ``TMPDIR`` inside) is the zygote's own and goes when it is closed.
        Raises :class:`ZygoteError` if it exits or does not get ready within ``timeout_s``."""
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            process = await asyncio.create_subprocess_exec(
                python,
                *ISOLATED_FLAGS,
                "-m",
                module,
                "--control-fd",
                str(theirs.fileno()),
                "--code-dir",
                str(code_dir),
                "--handler",
                handler,
                *site_dir_args(site_dirs),
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
            if directory is not None:
                shutil.rmtree(directory, ignore_errors=True)
            raise ZygoteError(f"cannot start a zygote with {python}: {exc}") from exc
        finally:
            theirs.close()
        ours.setblocking(False)
        zygote = cls(process, ours)
        zygote.directory = directory
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
        if self.directory is not None:
            directory, self.directory = self.directory, None
            await asyncio.to_thread(shutil.rmtree, directory, True)

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
