"""The timer scheduler: on every node, about once a second, fire the enabled timers that
came due since the last pass.

Each fire admits one async invocation (through the same admission as any caller, so limits
apply) of the trigger's qualifier with SCF's timer event. Its idempotency key is made of
the trigger's name and the fire time, and the store keeps one invocation per key and
function: however many nodes fire a timer, one invocation runs per fire time.

What is not fired: times while no node ran (missed fires are not replayed after a restart),
times before the trigger was last changed (opening a closed timer does not fire what it
missed), and times more than ``max_lag_s`` behind (a stalled pass catches up at most that
far). A fire that cannot be admitted (``max_qps`` reached, the qualifier deleted, the store
unavailable) is logged and dropped; the timer fires again at its next time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

from cumulo.engine.admission import Admission
from cumulo.engine.triggers import Triggers
from cumulo.errors import CumuloError
from cumulo.models import InvocationType, Trigger
from cumulo.triggers import timer

log = logging.getLogger(__name__)

#: Seconds between passes; each pass starts just after a whole second.
INTERVAL_S = 1.0
#: A pass looks back at most this far (after a stall, a failed read of the store).
MAX_LAG_S = 60.0
#: Past the whole second, so a fire at ``hh:mm:ss`` is admitted within this many seconds.
WAKE_OFFSET_S = 0.01


class TimerScheduler:
    def __init__(
        self,
        triggers: Triggers,
        admission: Admission,
        *,
        interval_s: float = INTERVAL_S,
        max_lag_s: float = MAX_LAG_S,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._triggers = triggers
        self._admission = admission
        self._interval_s = interval_s
        self._max_lag_s = max_lag_s
        self._clock = clock
        self._last_s: float | None = None
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Begin firing from now on (earlier fire times are not replayed)."""
        self._last_s = self._clock()
        self._task = asyncio.create_task(self._run(), name="timer-scheduler")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def run_once(self, now: float) -> int:
        """One pass: admit every fire in ``(last pass, now]``; return how many were
        admitted (including ones another node had admitted already)."""
        last = self._last_s if self._last_s is not None else now
        if now <= last:
            # The clock went back (or no time passed): wait for it to pass ``last`` again.
            return 0
        timers = await self._triggers.enabled_timers()
        since = max(last, now - self._max_lag_s)
        fires = [
            (trigger, at)
            for trigger in timers
            for at in _due(trigger, max(since, trigger.updated_at), now)
        ]
        self._last_s = now
        results = await asyncio.gather(*(self._fire(t, at) for t, at in fires))
        return sum(results)

    async def _run(self) -> None:
        while True:
            now = self._clock()
            await asyncio.sleep(self._interval_s - now % self._interval_s + WAKE_OFFSET_S)
            try:
                await self.run_once(self._clock())
            except Exception:
                # A failed read of the store: the next pass looks back over this one's window.
                log.exception("timer pass failed; retrying in %.0f s", self._interval_s)

    async def _fire(self, trigger: Trigger, at: float) -> bool:
        where = f"{trigger.namespace}/{trigger.function_name} trigger {trigger.name}"
        try:
            fn = await self._triggers.target(trigger)
            if fn is None:
                return False
            admitted = await self._admission.admit(
                fn,
                InvocationType.ASYNC,
                timer.timer_event(trigger.name, at, trigger.custom_argument),
                timer.idempotency_key(trigger.name, at),
            )
        except CumuloError as exc:
            log.warning(
                "timer %s: the fire at %s was not admitted: %s %s",
                where, timer.fire_time_text(at), exc.code, exc.message,
            )  # fmt: skip
            return False
        except Exception:
            log.exception("timer %s: the fire at %s failed", where, timer.fire_time_text(at))
            return False
        log.debug(
            "timer %s fired at %s: %s%s",
            where, timer.fire_time_text(at), admitted.invocation.request_id,
            " (admitted by another node)" if admitted.replayed else "",
        )  # fmt: skip
        return True


def _due(trigger: Trigger, after: float, until: float) -> list[float]:
    try:
        schedule = timer.parse(trigger.description)
    except CumuloError as exc:
        # Checked when it was stored; an expression whose years are over lands here.
        log.debug("timer %s does not fire: %s", trigger.name, exc.message)
        return []
    return schedule.fires_between(after, until)
