"""The pool's handle on one instance: its channels, its output, its process group.

An instance is made by :func:`fork_instance` (from a zygote, the normal way) or
:func:`spawn_instance` (a fresh interpreter, when no zygote can be had). Either way the pool
creates the channels: a control socketpair and two pipes whose read ends it keeps. Each
instance is its own session and process group (pgid = pid), so killing the group takes
everything the handler started with it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal
import socket
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cumulo.models import LogStream
from cumulo.runtime.base import LogSink, RunRequest
from cumulo.runtime.guest.cumulo_runtime import protocol
from cumulo.runtime.zygote import ISOLATED_FLAGS, ZygoteHandle, site_dir_args

logger = logging.getLogger(__name__)

DEFAULT_PATH = "/usr/local/bin:/usr/bin:/bin"

#: How long to wait for the zygote's report of how an instance ended, after its EOF.
_EXIT_REPORT_S = 0.5

InstanceKey = tuple[str, int]  # (function id, revision)


def instance_env(
    request: RunRequest, instance_dir: Path, interpreter_bin: Path | None = None
) -> dict[str, str]:
    """The exact environment of an instance (and of its zygote, with the zygote's own
    folder, so that what a module reads at import time is there already). Precedence,
    lowest first: defaults (``PATH``, ``LANG``, ``PYTHONUNBUFFERED``), the function's
    ``environment``, ``request.platform_env``, then the platform's variables, which cannot be
    overridden: identity, ``TMPDIR`` and ``HOME`` in ``instance_dir``, ``PYTHONPATH`` (code,
    environment, layers: what the instance itself has, for the ``python`` it starts), and
    the ``bin`` folders of the environment, the layers and the clean interpreter in front of
    ``PATH``."""
    function = request.function
    env = {"PATH": DEFAULT_PATH, "LANG": "C.UTF-8", "PYTHONUNBUFFERED": "1"}
    env.update(function.environment)
    env.update(request.platform_env)
    bins = [str(d / "bin") for d in request.site_dirs if (d / "bin").is_dir()]
    if interpreter_bin is not None:
        bins.append(str(interpreter_bin))
    env.update(
        {
            "CUMULO_FUNCTION_NAME": function.name,
            "CUMULO_NAMESPACE": function.namespace,
            "CUMULO_FUNCTION_VERSION": request.function_version,
            "CUMULO_MEMORY_MB": str(function.memory_mb),
            "CUMULO_TIMEOUT_S": f"{function.timeout_s:g}",
            "SCF_FUNCTIONNAME": function.name,
            "SCF_NAMESPACE": function.namespace,
            "SCF_FUNCTIONVERSION": request.function_version,
            "TENCENTCLOUD_RUNENV": "SCF",
            "SCF_RUNTIME": f"Python{sys.version_info.major}.{sys.version_info.minor}",
            "SCF_FUNCTIONMEMORYSIZE": str(function.memory_mb),
            "USER_CODE_ROOT": str(request.code_dir),
            "TMPDIR": str(instance_dir / "tmp"),
            "HOME": str(instance_dir),
            "PYTHONPATH": os.pathsep.join(str(d) for d in (request.code_dir, *request.site_dirs)),
            "PATH": os.pathsep.join([*bins, env["PATH"]]),
        }
    )
    return env


@dataclass(frozen=True, slots=True)
class Memory:
    rss_mb: float
    peak_mb: float


class OutputReader:
    """Lines of one stream of one instance, handed to the current run's sink."""

    def __init__(self, stream: LogStream, pid: int) -> None:
        self.stream = stream
        self.pid = pid
        self.sink: LogSink | None = None
        self.marker = asyncio.Event()
        self.eof = asyncio.Event()
        self._splitter = protocol.LineSplitter()

    def feed(self, data: bytes) -> None:
        for line in self._splitter.feed(data):
            if line is None:
                self.marker.set()
            else:
                self._emit(line)

    def finish(self) -> None:
        for line in self._splitter.close():
            self._emit(line)
        self.eof.set()
        self.marker.set()

    def _emit(self, line: str) -> None:
        if self.sink is None:
            # Between runs: something the handler left running is still writing.
            logger.debug("instance %d %s between runs: %s", self.pid, self.stream, line)
            return
        try:
            self.sink(self.stream, line)
        except Exception:
            logger.exception("log sink failed for instance %d", self.pid)


class _PipeProtocol(asyncio.Protocol):
    def __init__(self, reader: OutputReader) -> None:
        self.reader = reader

    def data_received(self, data: bytes) -> None:
        self.reader.feed(data)

    def connection_lost(self, exc: Exception | None) -> None:
        self.reader.finish()


def _protocol_for(reader: OutputReader) -> Callable[[], _PipeProtocol]:
    return lambda: _PipeProtocol(reader)


class Instance:
    """One live instance. ``pid`` is also its process group id."""

    def __init__(
        self,
        *,
        key: InstanceKey,
        env_key: frozenset[tuple[str, str]],
        pid: int,
        directory: Path,
        exit_code: asyncio.Future[int | None],
        zygote: ZygoteHandle | None,
    ) -> None:
        self.key = key
        self.env_key = env_key
        self.pid = pid
        self.directory = directory
        self.zygote = zygote
        self.stdout = OutputReader(LogStream.STDOUT, pid)
        self.stderr = OutputReader(LogStream.STDERR, pid)
        self.last_used = time.monotonic()
        self.runs = 0
        self._exit_code = exit_code
        self._control: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        self._transports: list[asyncio.BaseTransport] = []
        self._group_gone = False

    async def connect(self, control: socket.socket, stdout_fd: int, stderr_fd: int) -> None:
        """Take ownership of the pool's ends of the channels."""
        loop = asyncio.get_running_loop()
        for reader, fd in ((self.stdout, stdout_fd), (self.stderr, stderr_fd)):
            pipe = os.fdopen(fd, "rb", buffering=0)
            transport, _ = await loop.connect_read_pipe(_protocol_for(reader), pipe)
            self._transports.append(transport)
        self._control = await asyncio.open_unix_connection(sock=control)

    async def send(self, message: dict[str, Any]) -> bool:
        """Send one frame; False if the instance is gone."""
        if self._control is None:
            return False
        writer = self._control[1]
        try:
            writer.write(protocol.encode_frame(message))
            await writer.drain()
        except (ConnectionError, OSError):
            return False
        return True

    async def receive(self) -> dict[str, Any] | None:
        """The instance's answer; ``None`` when it closed the socket (it died)."""
        if self._control is None:
            return None
        reader = self._control[0]
        try:
            header = await reader.readexactly(protocol.HEADER_BYTES)
            body = await reader.readexactly(protocol.frame_length(header))
            return protocol.decode_body(body)
        except (asyncio.IncompleteReadError, ConnectionError, OSError):
            return None
        except ValueError:
            logger.exception("instance %d sent a bad frame", self.pid)
            return None

    def begin_output(self, sink: LogSink) -> None:
        for reader in (self.stdout, self.stderr):
            reader.marker.clear()
            reader.sink = sink

    async def end_output(self, timeout_s: float) -> None:
        """Wait until both streams reached the run's end marker (or EOF), then detach the
        sink. Lines that come later are not this run's."""
        waits = [asyncio.create_task(r.marker.wait()) for r in (self.stdout, self.stderr)]
        _, pending = await asyncio.wait(waits, timeout=timeout_s)
        for task in pending:
            task.cancel()
        if pending:
            logger.warning("instance %d: output did not end within %.1f s", self.pid, timeout_s)
        self.stdout.sink = self.stderr.sink = None

    def memory(self) -> Memory | None:
        """Resident and peak memory now; ``None`` once the process is gone."""
        try:
            status = Path(f"/proc/{self.pid}/status").read_text()
        except OSError:
            return None
        values = {}
        for line in status.splitlines():
            name, _, rest = line.partition(":")
            if name in ("VmRSS", "VmHWM"):
                values[name] = int(rest.split()[0]) / 1024  # kB → MB
        if "VmRSS" not in values:
            return None  # a zombie has no memory lines
        return Memory(rss_mb=values["VmRSS"], peak_mb=values.get("VmHWM", values["VmRSS"]))

    def reset_peak_memory(self) -> None:
        """Start VmHWM afresh, so a run's peak is its own (Linux ``clear_refs`` 5)."""
        with contextlib.suppress(OSError):
            Path(f"/proc/{self.pid}/clear_refs").write_text("5")

    def kill(self, sig: signal.Signals = signal.SIGKILL) -> None:
        """Signal the whole process group (never once it is known to be gone: the number
        could belong to someone else by then)."""
        if self._group_gone:
            return
        try:
            os.killpg(self.pid, sig)
        except ProcessLookupError:
            # Just forked, the instance may not have called setsid() yet: signal it alone.
            try:
                os.kill(self.pid, sig)
            except ProcessLookupError:
                self._group_gone = True
        except PermissionError:
            logger.warning("no permission to signal process group %d", self.pid)

    async def wait_gone(self, timeout_s: float) -> bool:
        """Wait until no process of the group is left (reaped). True if it is."""
        deadline = time.monotonic() + timeout_s
        delay_s = 0.002
        while not self._group_gone:
            try:
                os.killpg(self.pid, 0)
            except ProcessLookupError:
                if not _exists(self.pid):  # not merely before its setsid()
                    self._group_gone = True
                    break
            except PermissionError:
                return False
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(delay_s)
            delay_s = min(delay_s * 2, 0.02)
        return True

    async def exit_description(self) -> str:
        """How the instance ended, e.g. "instance exited with code 3" or "instance killed by
        signal SIGSEGV". Waits briefly for the report."""
        try:
            code = await asyncio.wait_for(asyncio.shield(self._exit_code), _EXIT_REPORT_S)
        except TimeoutError:
            code = None
        if code is None:
            return "instance exited unexpectedly"
        if code < 0:
            try:
                name = signal.Signals(-code).name
            except ValueError:
                name = str(-code)
            return f"instance killed by signal {name}"
        return f"instance exited with code {code}"

    async def close(self) -> None:
        """Kill the group, close the channels, wait for the output to drain, remove the
        instance's directory. Idempotent."""
        self.kill()
        if self._control is not None:
            self._control[1].close()
            self._control = None
        await self.wait_gone(1.0)
        readers = (self.stdout, self.stderr)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.gather(*(r.eof.wait() for r in readers)), 0.25)
        for transport in self._transports:
            transport.close()
        self._transports.clear()
        await asyncio.to_thread(shutil.rmtree, self.directory, True)


def _exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _channels() -> tuple[socket.socket, socket.socket, tuple[int, int], tuple[int, int]]:
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    return ours, theirs, os.pipe(), os.pipe()


async def fork_instance(
    zygote: ZygoteHandle, *, key: InstanceKey, directory: Path, env: Mapping[str, str]
) -> Instance:
    """A new instance forked from ``zygote``. Raises ``ZygoteError`` (nothing is left
    behind)."""
    ours, theirs, (out_r, out_w), (err_r, err_w) = _channels()
    request = {"instance_dir": str(directory), "env": dict(env)}
    try:
        pid, exit_code = await zygote.fork([theirs.fileno(), out_w, err_w], request)
    except BaseException:
        ours.close()
        for fd in (out_r, err_r):
            os.close(fd)
        raise
    finally:
        theirs.close()
        os.close(out_w)
        os.close(err_w)
    instance = Instance(
        key=key,
        env_key=env_key(env),
        pid=pid,
        directory=directory,
        exit_code=exit_code,
        zygote=zygote,
    )
    await instance.connect(ours, out_r, err_r)
    return instance


async def spawn_instance(
    *,
    python: str,
    request: RunRequest,
    key: InstanceKey,
    directory: Path,
    env: Mapping[str, str],
) -> Instance:
    """A new instance in a fresh interpreter (no zygote). Raises ``OSError``."""
    ours, theirs, (out_r, out_w), (err_r, err_w) = _channels()
    try:
        process = await asyncio.create_subprocess_exec(
            python,
            *ISOLATED_FLAGS,
            "-m",
            "cumulo_runtime.bootstrap",
            "--control-fd",
            str(theirs.fileno()),
            "--code-dir",
            str(request.code_dir),
            "--handler",
            request.function.handler,
            *site_dir_args(request.site_dirs),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=out_w,
            stderr=err_w,
            pass_fds=(theirs.fileno(),),
            env=dict(env),
            cwd=directory,
            start_new_session=True,
        )
    except BaseException:
        ours.close()
        for fd in (out_r, err_r):
            os.close(fd)
        raise
    finally:
        theirs.close()
        os.close(out_w)
        os.close(err_w)
    exit_code = asyncio.ensure_future(_exit_code(process))
    instance = Instance(
        key=key,
        env_key=env_key(env),
        pid=process.pid,
        directory=directory,
        exit_code=exit_code,
        zygote=None,
    )
    await instance.connect(ours, out_r, err_r)
    await instance.send({"instance_dir": str(directory), "env": dict(env)})
    return instance


async def _exit_code(process: asyncio.subprocess.Process) -> int | None:
    return await process.wait()


def env_key(env: Mapping[str, str]) -> frozenset[tuple[str, str]]:
    """What two instances of a function must share to be interchangeable: their
    environment less the per-instance directories."""
    return frozenset((k, v) for k, v in env.items() if k not in ("TMPDIR", "HOME"))
