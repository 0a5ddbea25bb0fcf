"""The process pool: instances forked from per-function zygotes, reused while healthy.

:class:`ProcessPool` implements :class:`cumulo.runtime.base.Pool`. One zygote per
``(function id, revision)`` forks instances; an instance runs one invocation at a time, goes
back to the idle set after a success and is repossessed (its process group killed) after
anything else. ``max_instances`` caps live instances server-wide: at the cap a new instance
first reclaims the least recently used idle one, else waits. A background task reclaims
instances idle longer than ``instance_idle_s``, and zygotes with no instance for as long.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal
import time
from collections.abc import Coroutine, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cumulo.models import LogStream, Status, TerminateMode
from cumulo.runtime import interpreter as clean
from cumulo.runtime.base import LogSink, PoolStats, RunOutcome, RunRequest
from cumulo.runtime.instance import (
    Instance,
    InstanceKey,
    env_key,
    fork_instance,
    instance_env,
    spawn_instance,
)
from cumulo.runtime.zygote import ZYGOTE_MODULE, ZygoteError, ZygoteHandle

logger = logging.getLogger(__name__)

#: A zygote imports the handler's module before it is ready; heavy imports take a while.
ZYGOTE_START_TIMEOUT_S = 60.0
#: Bounds on waiting for the last output of a run (it is normally there within a few ms).
_OUTPUT_AFTER_SUCCESS_S = 5.0
_OUTPUT_AFTER_KILL_S = 0.25
_GROUP_GONE_S = 1.0


@dataclass(slots=True)
class _Run:
    request: RunRequest
    on_log: LogSink
    #: ``None`` while the run waits for an instance (it can be terminated already).
    instance: Instance | None = None
    obtaining: asyncio.Task[tuple[Instance, bool]] | None = None
    terminate_mode: TerminateMode | None = None
    #: ``time.monotonic()`` at which a graceful terminate turns into SIGKILL.
    kill_at: float | None = None


@dataclass(frozen=True, slots=True)
class _Failure:
    status: Status
    type: str
    message: str
    platform_line: str


class ProcessPool:
    """See the module docstring. ``work_dir`` holds one directory per live instance and
    zygote (removed with it); ``memory_poll_s`` is how often a running instance's RSS is
    read. ``interpreter`` is the clean interpreter everything runs on (by default one made
    under ``work_dir/.interpreter``)."""

    #: Run with ``python -m`` to start a zygote (a class attribute so tests can break it).
    zygote_module = ZYGOTE_MODULE

    def __init__(
        self,
        *,
        work_dir: Path,
        max_instances: int,
        instance_idle_s: float,
        interpreter: clean.Interpreter | None = None,
        memory_poll_s: float = 0.05,
    ) -> None:
        if max_instances < 1:
            raise ValueError("max_instances must be at least 1")
        if instance_idle_s <= 0 or memory_poll_s <= 0:
            raise ValueError("instance_idle_s and memory_poll_s must be positive")
        self._instances_dir = work_dir
        self._max_instances = max_instances
        self._idle_s = instance_idle_s
        self._interpreter = interpreter or clean.locate(work_dir / ".interpreter")
        self._interpreter_checked = False
        self._poll_s = memory_poll_s
        self._zygotes: dict[InstanceKey, ZygoteHandle] = {}
        self._zygote_used: dict[InstanceKey, float] = {}
        self._zygote_locks: dict[InstanceKey, asyncio.Lock] = {}
        #: Zygotes that fork no more, waiting for their last instances to end.
        self._retired: list[ZygoteHandle] = []
        self._idle: dict[InstanceKey, list[Instance]] = {}
        self._live: dict[Instance, int] = {}  # → the function's generation when forked
        self._starting = 0
        self._generations: dict[str, int] = {}
        self._runs: dict[str, _Run] = {}
        self._cold_starts = 0
        self._capacity = asyncio.Event()
        self._background: set[asyncio.Task[None]] = set()
        self._reaper: asyncio.Task[None] | None = None
        self._closed = False

    async def run(self, request: RunRequest, on_log: LogSink) -> RunOutcome:
        if self._closed:
            raise RuntimeError("the pool is closed")
        if request.request_id in self._runs:
            raise ValueError(f"request {request.request_id} is already running here")
        if self._reaper is None:
            self._reaper = asyncio.create_task(self._reap_idle())
        run = _Run(request, on_log)
        self._runs[request.request_id] = run
        try:
            run.obtaining = asyncio.create_task(self._obtain(request))
            try:
                instance, cold = await run.obtaining
            except (OSError, ZygoteError) as exc:
                logger.error("no instance: %s", exc, extra=_fields(request))
                return _failed_to_start(str(exc))
            except asyncio.CancelledError:
                self._keep_if_obtained(run.obtaining)
                current = asyncio.current_task()
                if run.terminate_mode is None or (current and current.cancelling()):
                    raise
                return _terminated_before_start(run.terminate_mode)
            if run.terminate_mode is not None:  # terminated while it waited: never started
                self._release(instance)
                return _terminated_before_start(run.terminate_mode)
            run.instance = instance
            outcome: RunOutcome | None = None
            try:
                outcome = await self._supervise(run, instance, cold)
            finally:
                if outcome is not None and outcome.status is Status.SUCCEEDED:
                    self._release(instance)
                else:
                    self._discard(instance)
            return outcome
        finally:
            del self._runs[request.request_id]

    async def terminate(self, request_id: str, mode: TerminateMode, grace_s: float) -> bool:
        run = self._runs.get(request_id)
        if run is None:
            return False
        if mode is TerminateMode.FORCE and run.terminate_mode is not TerminateMode.FORCE:
            run.on_log(LogStream.PLATFORM, "terminated by request (force): SIGKILL sent")
            run.terminate_mode = mode
            run.kill_at = None
            self._stop_waiting(run)
            if run.instance is not None:
                run.instance.kill(signal.SIGKILL)
        elif mode is TerminateMode.GRACEFUL and run.terminate_mode is None:
            run.on_log(
                LogStream.PLATFORM,
                f"terminated by request (graceful): SIGTERM sent, SIGKILL in {grace_s:g} s",
            )
            run.terminate_mode = mode
            run.kill_at = time.monotonic() + grace_s
            self._stop_waiting(run)
            if run.instance is not None:
                run.instance.kill(signal.SIGTERM)
        return True

    def _keep_if_obtained(self, obtaining: asyncio.Task[tuple[Instance, bool]]) -> None:
        """``run()`` was cancelled just as its instance came: do not lose the instance."""
        if obtaining.done() and not obtaining.cancelled() and obtaining.exception() is None:
            self._release(obtaining.result()[0])

    @staticmethod
    def _stop_waiting(run: _Run) -> None:
        """A run terminated before it had an instance never starts."""
        if run.instance is None and run.obtaining is not None:
            run.obtaining.cancel()

    def stats(self) -> PoolStats:
        return PoolStats(
            instances_live=len(self._live),
            instances_idle=sum(len(idle) for idle in self._idle.values()),
            zygotes=sum(1 for zygote in self._zygotes.values() if zygote.alive),
            cold_starts_total=self._cold_starts,
        )

    async def forget(self, function_id: str) -> None:
        """The function was deleted or changed: kill its idle instances and its zygotes;
        its busy instances are repossessed when their run ends. Idempotent."""
        self._generations[function_id] = self._generations.get(function_id, 0) + 1
        closing = [
            self._discard(instance)
            for key, idle in list(self._idle.items())
            if key[0] == function_id
            for instance in list(idle)
        ]
        await asyncio.gather(*(task for task in closing if task is not None))
        for key in [key for key in self._zygotes if key[0] == function_id]:
            self._retire(key)

    async def close(self) -> None:
        """Kill every instance and zygote; wait for them. Idempotent."""
        self._closed = True
        if self._reaper is not None:
            self._reaper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reaper
        for instance in list(self._live):
            instance.kill()  # a busy run then ends as crashed and discards its instance
        for _ in range(200):
            if not self._runs:
                break
            await asyncio.sleep(0.01)
        for instance in list(self._live):
            self._discard(instance)
        # Instances first: their zygotes reap them, so their groups are gone at once.
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)
        zygotes = [*self._zygotes.values(), *self._retired]
        self._zygotes.clear()
        self._retired.clear()
        await asyncio.gather(*(zygote.close() for zygote in zygotes))

    # -- getting an instance ---------------------------------------------------------------

    async def _obtain(self, request: RunRequest) -> tuple[Instance, bool]:
        """An idle instance (cold=False) or a new one (cold=True), within the cap."""
        function = request.function
        key = (function.id, function.revision)
        wanted_env = env_key(instance_env(request, Path("/"), self._clean().bin_dir))
        while True:
            if self._closed:
                raise RuntimeError("the pool is closed")
            instance = self._take_idle(key, wanted_env)
            if instance is not None:
                return instance, False
            if len(self._live) + self._starting < self._max_instances:
                break
            victims = [i for idle in self._idle.values() for i in idle]
            if victims:
                self._discard(min(victims, key=lambda i: i.last_used))
                continue
            self._capacity.clear()
            await self._capacity.wait()
        self._starting += 1
        try:
            instance = await self._create(request, key)
        finally:
            self._starting -= 1
            # A start that failed frees its room: wake whoever waits for some.
            self._capacity.set()
        self._live[instance] = self._generations.get(function.id, 0)
        self._cold_starts += 1
        return instance, True

    def _take_idle(
        self, key: InstanceKey, wanted_env: frozenset[tuple[str, str]]
    ) -> Instance | None:
        idle = self._idle.get(key, [])
        for index in range(len(idle) - 1, -1, -1):  # most recently used first: warm caches
            if idle[index].env_key == wanted_env:
                return idle.pop(index)
        return None

    async def _create(self, request: RunRequest, key: InstanceKey) -> Instance:
        function = request.function
        directory = self._instances_dir / f"{function.name}-{os.urandom(6).hex()}"
        (directory / "tmp").mkdir(parents=True, mode=0o700)
        env = instance_env(request, directory, self._clean().bin_dir)
        try:
            for _ in range(2):  # a zygote that died since its last fork is replaced once
                zygote = await self._zygote_for(request, key)
                if zygote is None:
                    break
                try:
                    instance = await fork_instance(zygote, key=key, directory=directory, env=env)
                except ZygoteError as exc:
                    logger.warning("zygote failed to fork: %s", exc, extra=_fields(request))
                    continue
                self._zygote_used[key] = time.monotonic()
                return instance
            logger.warning("starting an instance without a zygote", extra=_fields(request))
            return await spawn_instance(
                python=str(self._clean().python),
                request=request,
                key=key,
                directory=directory,
                env=env,
            )
        except BaseException:
            await asyncio.to_thread(_remove_tree, directory)
            raise

    async def _zygote_for(self, request: RunRequest, key: InstanceKey) -> ZygoteHandle | None:
        """The live zygote of this revision, started if need be; ``None`` if it cannot."""
        async with self._zygote_locks.setdefault(key, asyncio.Lock()):
            zygote = self._zygotes.get(key)
            if zygote is not None and zygote.alive:
                return zygote
            if zygote is not None:
                self._retire(key)
            interpreter = self._clean()
            directory = self._instances_dir / f"{request.function.name}-z-{os.urandom(6).hex()}"
            (directory / "tmp").mkdir(parents=True, mode=0o700)
            try:
                zygote = await ZygoteHandle.start(
                    python=str(interpreter.python),
                    code_dir=request.code_dir,
                    handler=request.function.handler,
                    env=instance_env(request, directory, interpreter.bin_dir),
                    site_dirs=request.site_dirs,
                    timeout_s=ZYGOTE_START_TIMEOUT_S,
                    module=self.zygote_module,
                    name=_name(request),
                    directory=directory,
                )
            except ZygoteError as exc:
                logger.warning("%s", exc, extra=_fields(request))
                return None
            if zygote.import_error:
                logger.info(
                    "the zygote could not import the handler: %s",
                    zygote.import_error,
                    extra=_fields(request),
                )
            self._zygotes[key] = zygote
            self._zygote_used[key] = time.monotonic()
            return zygote

    def _clean(self) -> clean.Interpreter:
        """The clean interpreter, checked (and made if need be) on first use."""
        if not self._interpreter_checked:
            clean.ensure(self._interpreter)
            self._interpreter_checked = True
        return self._interpreter

    # -- running ---------------------------------------------------------------------------

    async def _supervise(self, run: _Run, instance: Instance, cold: bool) -> RunOutcome:
        request = run.request
        function = request.function
        instance.reset_peak_memory()
        instance.begin_output(run.on_log)
        message = {
            "request_id": request.request_id,
            "event": request.event,
            "context": {
                "function_name": function.name,
                "namespace": function.namespace,
                "function_version": request.function_version,
                "memory_limit_in_mb": function.memory_mb,
                "time_limit_in_ms": int(request.timeout_s * 1000),
                "deadline": time.time() + request.timeout_s,
            },
        }
        started = time.monotonic()
        deadline = started + request.timeout_s
        exchange = asyncio.create_task(_exchange(instance, message))
        peak_mb = 0.0
        failure: _Failure | None = None
        try:
            while not exchange.done():
                now = time.monotonic()
                wait_s = min(self._poll_s, max(0.0, deadline - now))
                if run.kill_at is not None:
                    wait_s = min(wait_s, max(0.0, run.kill_at - now))
                await asyncio.wait([exchange], timeout=wait_s)
                if exchange.done():
                    break
                memory = instance.memory()
                if memory is not None:
                    peak_mb = max(peak_mb, memory.peak_mb)
                    if memory.rss_mb > function.memory_mb and run.terminate_mode is None:
                        failure = _memory_exceeded(function.memory_mb, memory.rss_mb)
                        break
                now = time.monotonic()
                if now >= deadline and run.terminate_mode is None:
                    failure = _timed_out(request.timeout_s)
                    break
                if run.kill_at is not None and now >= run.kill_at:
                    run.kill_at = None
                    instance.kill(signal.SIGKILL)
        finally:
            if not exchange.done():
                instance.kill(signal.SIGKILL)  # before anything else: the limit is exact
                exchange.cancel()
        duration_ms = (time.monotonic() - started) * 1000
        await asyncio.wait([exchange])
        answer = None if exchange.cancelled() else exchange.result()
        memory = instance.memory()
        if memory is not None:
            peak_mb = max(peak_mb, memory.peak_mb)

        def outcome(
            status: Status, result: str | None, error: Mapping[str, Any] | None
        ) -> RunOutcome:
            return RunOutcome(
                status=status,
                result=result,
                error=error,
                duration_ms=duration_ms,
                peak_memory_mb=round(peak_mb, 1),
                cold_start=cold,
                instance_pid=instance.pid,
            )

        if failure is None and run.terminate_mode is None and answer is not None and answer["ok"]:
            await instance.end_output(_OUTPUT_AFTER_SUCCESS_S)
            return outcome(Status.SUCCEEDED, str(answer["result"]), None)

        # Anything else repossesses the instance: its whole group goes before we answer.
        instance.kill(signal.SIGKILL)
        await instance.wait_gone(_GROUP_GONE_S)
        await instance.end_output(_OUTPUT_AFTER_KILL_S)
        if run.terminate_mode is not None:
            mode = run.terminate_mode.value
            error = _error("Terminated", f"the invocation was terminated by request ({mode})")
            return outcome(Status.TERMINATED, None, error)
        if failure is None:
            if answer is not None:  # the handler raised
                return outcome(Status.FAILED, None, dict(answer["error"]))
            how = await instance.exit_description()
            failure = _Failure(Status.FAILED, "InstanceCrashed", how, how)
        run.on_log(LogStream.PLATFORM, failure.platform_line)
        return outcome(failure.status, None, _error(failure.type, failure.message))

    # -- keeping instances -----------------------------------------------------------------

    def _release(self, instance: Instance) -> None:
        """A healthy instance back to the idle set (or away, if its function was forgotten)."""
        generation = self._live.get(instance)
        if self._closed or generation != self._generations.get(instance.key[0], 0):
            self._discard(instance)
            return
        instance.last_used = time.monotonic()
        instance.runs += 1
        self._idle.setdefault(instance.key, []).append(instance)
        self._capacity.set()

    def _discard(self, instance: Instance) -> asyncio.Task[None] | None:
        """Kill the instance now; close its channels and directory in the background (the
        task returned, ``None`` if it was discarded before)."""
        instance.kill()
        idle = self._idle.get(instance.key)
        if idle is not None and instance in idle:
            idle.remove(instance)
            if not idle:
                del self._idle[instance.key]
        self._capacity.set()
        if self._live.pop(instance, None) is None:
            return None
        return self._in_background(self._close_instance(instance))

    async def _close_instance(self, instance: Instance) -> None:
        await instance.close()
        self._close_retired()

    def _retire(self, key: InstanceKey) -> None:
        """Fork no more from this zygote; stop it once every instance it forked is gone (it
        reaps them: stopped earlier, they would linger as zombies)."""
        zygote = self._zygotes.pop(key, None)
        self._zygote_used.pop(key, None)
        if zygote is not None:
            self._retired.append(zygote)
            self._close_retired()

    def _close_retired(self) -> None:
        for zygote in list(self._retired):
            if zygote.children == 0 or not zygote.alive:
                self._retired.remove(zygote)
                self._in_background(zygote.close())

    def _in_background(self, work: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.create_task(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return task

    async def _reap_idle(self) -> None:
        """Forever: reclaim instances and zygotes unused for ``instance_idle_s``."""
        interval_s = min(max(self._idle_s / 4, 0.05), 5.0)
        while True:
            await asyncio.sleep(interval_s)
            try:
                self._reclaim_idle()
            except Exception:
                logger.exception("reclaiming idle instances failed; trying again later")

    def _reclaim_idle(self) -> None:
        now = time.monotonic()
        for idle in list(self._idle.values()):
            for instance in list(idle):
                if now - instance.last_used > self._idle_s:
                    self._discard(instance)
        in_use = {instance.key for instance in self._live}
        for key, zygote in list(self._zygotes.items()):
            unused_s = now - self._zygote_used.get(key, now)
            if not zygote.alive or (key not in in_use and unused_s > self._idle_s):
                self._retire(key)
        self._close_retired()


async def _exchange(instance: Instance, message: dict[str, Any]) -> dict[str, Any] | None:
    if not await instance.send(message):
        return None
    return await instance.receive()


def _error(type_: str, message: str) -> dict[str, str]:
    return {"type": type_, "message": message, "traceback": ""}


def _timed_out(timeout_s: float) -> _Failure:
    message = f"the invocation timed out after {timeout_s:g} s (the function's limit)"
    line = f"timed out after {timeout_s:g} s: SIGKILL sent"
    return _Failure(Status.TIMED_OUT, "TimeoutError", message, line)


def _memory_exceeded(limit_mb: int, rss_mb: float) -> _Failure:
    message = f"the instance used {rss_mb:.0f} MB, over the function's limit of {limit_mb} MB"
    line = f"memory limit of {limit_mb} MB exceeded ({rss_mb:.0f} MB resident): SIGKILL sent"
    return _Failure(Status.FAILED, "MemoryLimitExceeded", message, line)


def _failed_to_start(reason: str) -> RunOutcome:
    return RunOutcome(
        status=Status.FAILED,
        result=None,
        error=_error("InstanceCrashed", f"the instance failed to start: {reason}"),
        duration_ms=0.0,
        peak_memory_mb=0.0,
        cold_start=True,
        instance_pid=0,
    )


def _terminated_before_start(mode: TerminateMode) -> RunOutcome:
    return RunOutcome(
        status=Status.TERMINATED,
        result=None,
        error=_error("Terminated", f"the invocation was terminated by request ({mode.value})"),
        duration_ms=0.0,
        peak_memory_mb=0.0,
        cold_start=False,
        instance_pid=0,
    )


def _name(request: RunRequest) -> str:
    function = request.function
    return f"{function.namespace}/{function.name}@{function.revision}"


def _fields(request: RunRequest) -> dict[str, object]:
    """Structured fields for log records about this run."""
    function = request.function
    return {
        "request_id": request.request_id,
        "namespace": function.namespace,
        "function": function.name,
        "revision": function.revision,
    }


def _remove_tree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
