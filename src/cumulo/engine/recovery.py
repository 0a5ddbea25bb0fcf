"""Recovery: the fate of runs whose node died (DESIGN.md, "Data path").

A running row whose lease ran out lost its instance. An async-run invocation then ends
``failed`` with ``error.type = "InstanceLost"`` (never retried, as promised); a normal async
invocation is queued again if it has attempts and event age left, else dead-lettered. On an
embedded store (SQLite: one process only) every running row found at start is lost at once.
Recovery also purges rows past ``retention_s``.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from dataclasses import replace

from cumulo.engine.logs import LogCollector, last_seq
from cumulo.engine.outcome import retry_or_dead_letter, retryable
from cumulo.models import Invocation, Status
from cumulo.settings import Settings
from cumulo.store.base import Store

log = logging.getLogger(__name__)

PURGE_INTERVAL_S = 3600.0


class Recovery:
    def __init__(self, store: Store, logs: LogCollector, settings: Settings) -> None:
        self._store = store
        self._logs = logs
        self._s = settings
        self._task: asyncio.Task[None] | None = None

    async def recover_once(self, *, at_start: bool = False) -> list[Invocation]:
        """Settle every expired lease; return the rows written."""
        now = time.time()
        horizon = math.inf if at_start and self._store.exclusive else now
        settled: list[Invocation] = []
        while True:
            rows = await self._store.expired(horizon)
            if not rows:
                return settled
            for inv in rows:
                outcome = self.settle(inv, time.time())
                if await self._store.recover(outcome, inv.lease_owner):
                    await self._note(outcome, inv)
                    settled.append(outcome)
            if len(rows) < 500:
                return settled

    def settle(self, inv: Invocation, now: float) -> Invocation:
        lost = replace(
            inv,
            status=Status.FAILED,
            error={
                "type": "InstanceLost",
                "message": "the node running this invocation stopped before it ended "
                f"(lease of node {inv.lease_owner} expired)",
                "traceback": "",
            },
            finished_at=now,
            duration_ms=round((now - inv.started_at) * 1000, 3) if inv.started_at else None,
        )
        if retryable(inv):
            return retry_or_dead_letter(
                lost,
                now=now,
                base_delay_s=self._s.retry_base_delay_s,
                max_delay_s=self._s.retry_max_delay_s,
            )
        return lost

    async def _note(self, outcome: Invocation, before: Invocation) -> None:
        writer = self._logs.open(before.request_id, await last_seq(self._store, before.request_id))
        what = "queued again" if outcome.status is Status.QUEUED else "failed: InstanceLost"
        writer.platform(f"instance lost (node {before.lease_owner} stopped); {what}")
        await writer.flushed()
        self._logs.forget(before.request_id)
        log.warning(
            "recovered a lost invocation: %s", what, extra={"request_id": before.request_id}
        )

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="recovery")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _loop(self) -> None:
        last_purge = 0.0
        while True:
            await asyncio.sleep(self._s.lease_s / 2)
            try:
                await self.recover_once()
                if time.monotonic() - last_purge > PURGE_INTERVAL_S:
                    last_purge = time.monotonic()
                    gone = await self._store.purge(time.time() - self._s.retention_s)
                    if gone:
                        log.info("purged %d invocations past retention", gone)
            except Exception:
                log.exception("recovery round failed")
