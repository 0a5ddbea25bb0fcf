"""The dispatcher: claims queued invocations, runs them in the pool, writes their outcome.

It owns the node's run slots: at most ``settings.max_instances`` runs at once on the node, and
at most ``function.max_concurrency`` per function; what does not fit stays ``queued`` in the
store. On a shared store (a cluster) the claim also counts the function's rows running on
every node, so ``max_concurrency`` holds cluster-wide for async runs; sync runs have no
running row and count on their node only. Claimed rows are leased to this node and the
lease is renewed by a heartbeat; every terminal write is fenced on the lease, so a node that
lost its lease cannot overwrite the outcome recovery wrote.

Rows of a function that has no code to run yet (its first build is still running, or
failed) are not claimed: they wait, queued, until a build makes it ready.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path

import orjson

from cumulo.bus.base import Bus
from cumulo.deps.environments import Environments
from cumulo.deps.installer import InstallError
from cumulo.engine.functions import Functions
from cumulo.engine.layers import Layers
from cumulo.engine.logs import LogCollector, LogWriter, last_seq, subject
from cumulo.engine.outcome import apply_outcome
from cumulo.engine.versions import Versions
from cumulo.errors import CumuloError, FunctionNotFound, NotFound
from cumulo.metrics import Metrics
from cumulo.models import LATEST, Function, FunctionState, Invocation, Status, TerminateMode
from cumulo.runtime.base import Pool, RunOutcome, RunRequest
from cumulo.runtime.codecache import CodeCache
from cumulo.settings import Settings
from cumulo.store.base import Store

log = logging.getLogger(__name__)


class Dispatcher:
    def __init__(
        self,
        *,
        settings: Settings,
        store: Store,
        bus: Bus,
        pool: Pool,
        functions: Functions,
        versions: Versions,
        codes: CodeCache,
        environments: Environments,
        layers: Layers,
        logs: LogCollector,
        metrics: Metrics,
    ) -> None:
        self._s = settings
        self._store = store
        self._bus = bus
        self._pool = pool
        self._functions = functions
        self._versions = versions
        self._codes = codes
        self._environments = environments
        self._layers = layers
        self._logs = logs
        self._metrics = metrics
        self._node = settings.node_id
        #: Other nodes may run rows too: claims of limited functions count them in the store.
        self._shared_store = not store.exclusive
        self._wake = asyncio.Event()
        self._slot_freed = asyncio.Event()
        self._active = 0
        self._per_function: Counter[str] = Counter()
        self._limited: dict[str, int] = {}
        #: Functions whose config this node has read (so their limit is known).
        self._known: set[str] = set()
        #: Functions with no code to run yet: id → (namespace, name), read again each
        #: discovery round (another node's build may have made them ready).
        self._not_ready: dict[str, tuple[str, str]] = {}
        #: Functions whose first build failed: nothing of theirs is claimed.
        self._failed: set[str] = set()
        self._leased: dict[str, Invocation] = {}
        self._terminating: dict[str, TerminateMode] = {}
        #: Runs whose lease the heartbeat found gone (recovery elsewhere owns their fate).
        self._lost: set[str] = set()
        #: Functions that may have claimable rows, in claim order (a dict as ordered set).
        self._with_work: dict[str, None] = {}
        self._discover_at = 0.0
        self._tasks: set[asyncio.Task[None]] = set()
        self._loops: list[asyncio.Task[None]] = []
        self._stopping = False

    # -- life cycle ---------------------------------------------------------------------
    async def start(self) -> None:
        await self._learn_functions()
        sub = await self._bus.subscribe(f"terminate.{self._node}")
        self._loops = [
            asyncio.create_task(self._claim_loop(), name="dispatcher-claim"),
            asyncio.create_task(self._heartbeat_loop(), name="dispatcher-heartbeat"),
            asyncio.create_task(self._terminate_loop(sub), name="dispatcher-terminate"),
        ]

    async def stop(self) -> None:
        """Stop claiming; runs in progress are left to end (their leases lapse if we die)."""
        self._stopping = True
        self._wake.set()
        for task in self._loops:
            task.cancel()
        await asyncio.gather(*self._loops, return_exceptions=True)

    def know(self, fn: Function) -> None:
        """Note a function's concurrency limit (called on create/change and when claimed)."""
        self._known.add(fn.id)
        if fn.max_concurrency:
            self._limited[fn.id] = fn.max_concurrency
        else:
            self._limited.pop(fn.id, None)
        if not fn.ready and fn.version == LATEST:
            if fn.state is FunctionState.PENDING:
                self._not_ready[fn.id] = (fn.namespace, fn.name)
            else:  # failed: its waiting rows were settled; nothing to watch until an upload
                self._not_ready.pop(fn.id, None)
                self._failed.add(fn.id)
        else:
            self._failed.discard(fn.id)
            if self._not_ready.pop(fn.id, None) is not None:
                self.hint(fn.id)  # its queued rows can run now

    async def _learn_functions(self) -> None:
        """Read every function's config (and limit) from the store."""
        for ns in await self._store.list_namespaces():
            for fn in await self._store.list_functions(ns.name):
                self.know(fn)

    # -- sync ---------------------------------------------------------------------------
    async def run_sync(self, fn: Function, inv: Invocation) -> Invocation:
        """Run a sync invocation now (waiting for a slot if the node or function is full) and
        record its terminal row."""
        self.know(fn)
        while not self._fits(fn.id):
            # No await between the check and the clear: a freed slot cannot be missed.
            self._slot_freed.clear()
            await self._slot_freed.wait()
        slot = _Slot(self, fn.id)
        try:
            running = replace(inv, status=Status.RUNNING, started_at=time.time(), attempt=1)
            self._leased[inv.request_id] = running
            writer = self._logs.open(inv.request_id)
            outcome = await self._run(fn, running, writer, slot)
            done = apply_outcome(running, outcome, now=time.time(), base_delay_s=0, max_delay_s=0)
            await writer.flushed()
            [stored] = await self._store.enqueue([done])
            self._logs.forget(inv.request_id)
            self._metrics.observe(done)
            await self._publish_status(done)
            return stored
        finally:
            self._leased.pop(inv.request_id, None)
            slot.release()

    # -- async --------------------------------------------------------------------------
    async def _claim_loop(self) -> None:
        while not self._stopping:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._s.poll_interval_s)
            self._wake.clear()
            try:
                while not self._stopping and await self._claim_round():
                    pass
            except Exception:
                log.exception("claiming failed; retrying")
                await asyncio.sleep(self._s.poll_interval_s)

    async def _claim_round(self) -> bool:
        """Claim what fits in the free slots, function by function, and start it; True if
        anything was claimed. Claims are per function so that each one is an indexed probe
        and a function's ``max_concurrency`` is never exceeded."""
        free = self._s.max_instances - self._active
        if free <= 0:
            return False
        now = time.time()
        if now >= self._discover_at:
            # Work this node was not told about: other nodes' admissions, recovered rows.
            for fid in await self._store.queued_function_ids(now):
                self._with_work.setdefault(fid, None)
            self._discover_at = now + self._s.poll_interval_s
            await self._reread_not_ready()
        unknown = [fid for fid in self._with_work if fid not in self._known]
        if unknown:
            # Made on another node: read its limit before claiming any of its rows. An id
            # still unknown then is a deleted function, whose rows end unrun.
            await self._learn_functions()
            self._known.update(unknown)
        claimed_any = False
        for fid in list(self._with_work):
            if free <= 0:
                break
            if fid in self._not_ready or fid in self._failed:
                continue  # no code to run yet; it is woken when a build makes it ready
            limit = self._limited.get(fid)
            room = free if limit is None else min(free, limit - self._per_function[fid])
            if room <= 0:
                continue
            # This node's count protects its slots; the store's counts every node's runs.
            limits = {fid: limit} if limit is not None and self._shared_store else None
            rows = await self._store.claim(
                self._node, room, self._s.lease_s, now, only_function_ids=[fid], limits=limits
            )
            # Round-robin between functions: the one just served goes to the back.
            del self._with_work[fid]
            if len(rows) == room:
                self._with_work[fid] = None
            free -= len(rows)
            claimed_any = claimed_any or bool(rows)
            for inv in rows:
                self._start(inv)
        return claimed_any

    async def _reread_not_ready(self) -> None:
        for fid, (namespace, name) in list(self._not_ready.items()):
            try:
                fn = await self._store.get_function(namespace, name)
            except FunctionNotFound:
                self._not_ready.pop(fid, None)
                continue
            if fn.id == fid:
                self.know(fn)
            else:
                self._not_ready.pop(fid, None)

    def _start(self, inv: Invocation) -> None:
        slot = _Slot(self, inv.function_id)
        self._leased[inv.request_id] = inv
        task = asyncio.create_task(self._execute(inv, slot), name=f"run-{inv.request_id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def hint(self, function_id: str) -> None:
        """The function has claimable work now (an admission or a retry on this node)."""
        self._with_work.setdefault(function_id, None)
        self._wake.set()

    async def _execute(self, inv: Invocation, slot: _Slot) -> None:
        try:
            await self._execute_leased(inv, slot)
        except Exception:
            log.exception("run failed inside the platform", extra={"request_id": inv.request_id})
        finally:
            self._leased.pop(inv.request_id, None)
            self._terminating.pop(inv.request_id, None)
            self._lost.discard(inv.request_id)
            slot.release()

    async def _execute_leased(self, inv: Invocation, slot: _Slot) -> None:
        start_seq = await last_seq(self._store, inv.request_id) if inv.attempt > 1 else 0
        writer = self._logs.open(inv.request_id, start_seq)
        if inv.terminate_mode is not None:
            # Terminated while it waited for a retry: it ends here, without running again.
            await self._finish_without_run(
                inv,
                writer,
                "Terminated",
                "terminated by request before this attempt started",
                status=Status.TERMINATED,
            )
            return
        try:
            fn = await self._functions.get_cached(inv.namespace, inv.function_name)
            if fn.id != inv.function_id:
                raise FunctionNotFound(f"function {inv.function_name} was deleted")
        except FunctionNotFound as exc:
            await self._finish_without_run(inv, writer, "FunctionNotFound", exc.message)
            return
        self.know(fn)
        try:
            fn = await self._versions.at_version(fn, inv.function_version)
        except NotFound as exc:
            await self._finish_without_run(inv, writer, "VersionNotFound", exc.message)
            return
        if inv.attempt > 1:
            writer.platform(f"attempt {inv.attempt} of {inv.max_attempts}")
        await self._publish_status(inv)
        outcome = await self._run(fn, inv, writer, slot)
        done = apply_outcome(
            inv,
            outcome,
            now=time.time(),
            base_delay_s=self._s.retry_base_delay_s,
            max_delay_s=self._s.retry_max_delay_s,
        )
        if done.status is Status.QUEUED:
            writer.platform(
                f"attempt {inv.attempt} ended {outcome.status.value}; retrying in "
                f"{done.run_after - time.time():.1f} s"
            )
        elif done.dead_lettered:
            writer.platform(f"no attempts left after {inv.attempt}: dead-lettered")
        await writer.flushed()
        await self._write(done)

    async def _run(
        self, fn: Function, inv: Invocation, writer: LogWriter, slot: _Slot
    ) -> RunOutcome:
        """Run in the pool; the slot is given back as soon as the instance is free, so the
        next claim goes to the store together with this run's ``finish``."""
        try:
            code_dir = await self._codes.path(fn.code_sha256)
            site_dirs = await self._site_dirs(fn)
        except (CumuloError, InstallError) as exc:
            slot.release()
            message = getattr(exc, "message", str(exc))
            writer.platform(f"the function's files are not available on this node: {message}")
            return _unavailable(message)
        request = RunRequest(
            function=fn,
            code_dir=code_dir,
            request_id=inv.request_id,
            event=inv.event,
            timeout_s=fn.timeout_s,
            function_version=fn.version,
            site_dirs=site_dirs,
        )
        self._metrics.run_started()
        run = asyncio.create_task(self._pool.run(request, writer))
        await asyncio.sleep(0)
        mode = self._terminating.get(inv.request_id)
        if mode is not None:
            # Terminated between claim and start: the pool now knows the run; end it.
            await self._pool.terminate(inv.request_id, mode, self._s.graceful_terminate_s)
        try:
            return await run
        finally:
            slot.release()

    async def _site_dirs(self, fn: Function) -> tuple[Path, ...]:
        """The function's environment, then its layers, as import-path folders (installed
        on this node first if another node built them)."""
        dirs = [await self._environments.path(fn.deps_key)] if fn.deps_key else []
        return (*dirs, *await self._layers.site_dirs(fn.layers))

    async def _finish_without_run(
        self,
        inv: Invocation,
        writer: LogWriter,
        error_type: str,
        message: str,
        status: Status = Status.FAILED,
    ) -> None:
        writer.platform(message)
        await writer.flushed()
        done = replace(
            inv,
            status=status,
            error={"type": error_type, "message": message, "traceback": ""},
            finished_at=time.time(),
            duration_ms=0.0,
            billed_duration_ms=0,
        )
        await self._write(done)

    async def _write(self, done: Invocation) -> None:
        """Write the outcome, retrying while the store is unreachable and the lease is still
        ours (the heartbeat keeps it): a finished run's result is not given up lightly."""
        delay_s = 0.2
        while True:
            try:
                written = await self._store.finish(done, self._node)
                break
            except CumuloError:
                if done.request_id in self._lost or self._stopping:
                    raise
                log.exception("writing an outcome failed; retrying in %.1f s", delay_s)
                await asyncio.sleep(delay_s)
                delay_s = min(delay_s * 2, 5.0)
        self._logs.forget(done.request_id)
        if not written:
            log.warning(
                "outcome not written: lease lost",
                extra={"request_id": done.request_id, "status": done.status.value},
            )
            return
        if done.status.terminal:
            self._metrics.observe(done)
        await self._publish_status(done)
        if done.status is Status.QUEUED:
            loop = asyncio.get_running_loop()
            loop.call_later(max(done.run_after - time.time(), 0), self.hint, done.function_id)
        elif self._shared_store and done.function_id in self._limited:
            # The run counted in the store until now, after its slot was given back: a claim
            # the store's count held back may go ahead.
            self.hint(done.function_id)

    async def _publish_status(self, inv: Invocation) -> None:
        payload = orjson.dumps({"kind": "status", "status": inv.status.value})
        try:
            await self._bus.publish(subject(inv.request_id), payload)
        except Exception:
            log.exception("could not publish status", extra={"request_id": inv.request_id})

    # -- terminate and leases -----------------------------------------------------------
    async def terminate(self, inv: Invocation, mode: TerminateMode) -> None:
        """Ask the node that runs ``inv`` to end it (this one or another, via the bus)."""
        if inv.request_id in self._leased:
            self._terminating[inv.request_id] = mode
            await self._pool.terminate(inv.request_id, mode, self._s.graceful_terminate_s)
            return
        if inv.lease_owner and inv.lease_owner != self._node:
            message = orjson.dumps({"request_id": inv.request_id, "mode": mode.value})
            await self._bus.publish(f"terminate.{inv.lease_owner}", message)

    async def _terminate_loop(self, sub: object) -> None:
        async for raw in sub:  # type: ignore[attr-defined]
            try:
                msg = orjson.loads(raw)
                await self._pool.terminate(
                    msg["request_id"], TerminateMode(msg["mode"]), self._s.graceful_terminate_s
                )
            except Exception:
                log.exception("bad terminate message: %r", raw[:200])

    async def _heartbeat_loop(self) -> None:
        interval = self._s.lease_s / 3
        while not self._stopping:
            await asyncio.sleep(interval)
            ids = [rid for rid, inv in self._leased.items() if inv.lease_owner == self._node]
            if not ids:
                continue
            try:
                kept = await self._store.heartbeat(self._node, ids, self._s.lease_s, time.time())
            except Exception:
                log.exception("lease heartbeat failed")
                continue
            for rid in set(ids) - kept:
                # Lost: recovery elsewhere decided this run's fate, or it was terminated.
                log.warning("lease lost; ending the run here", extra={"request_id": rid})
                self._lost.add(rid)
                await self._pool.terminate(rid, TerminateMode.FORCE, 0)

    # -- slots --------------------------------------------------------------------------
    def _fits(self, function_id: str) -> bool:
        if self._active >= self._s.max_instances:
            return False
        limit = self._limited.get(function_id)
        return limit is None or self._per_function[function_id] < limit

    def _take(self, function_id: str) -> None:
        self._active += 1
        self._per_function[function_id] += 1

    def _give(self, function_id: str) -> None:
        self._active -= 1
        self._per_function[function_id] -= 1
        if self._per_function[function_id] <= 0:
            del self._per_function[function_id]
        self._slot_freed.set()
        self._wake.set()


def _unavailable(message: str) -> RunOutcome:
    return RunOutcome(
        status=Status.FAILED,
        result=None,
        error={"type": "EnvironmentUnavailable", "message": message, "traceback": ""},
        duration_ms=0.0,
        peak_memory_mb=0.0,
        cold_start=True,
        instance_pid=0,
    )


class _Slot:
    """One run slot of the node and of a function, taken on creation, given back once."""

    __slots__ = ("_dispatcher", "_held", "function_id")

    def __init__(self, dispatcher: Dispatcher, function_id: str) -> None:
        self._dispatcher = dispatcher
        self.function_id = function_id
        dispatcher._take(function_id)
        self._held = True

    def release(self) -> None:
        if self._held:
            self._held = False
            self._dispatcher._give(self.function_id)
