"""What a run's outcome means for its invocation: finished, retried or dead-lettered.

DESIGN.md: a normal async invocation that failed or timed out is retried while it has
attempts left and its event is younger than ``max_event_age_s``, with exponential backoff;
then it is dead-lettered (kept ``failed``/``timed_out`` with ``dead_lettered`` set and the
last error). Async-run and sync invocations are never retried.
"""

from __future__ import annotations

import math
from dataclasses import replace

from cumulo.models import Invocation, InvocationType, Status
from cumulo.runtime.base import RunOutcome

#: Billing granularity, as SCF: durations are rounded up to whole milliseconds.
BILLING_UNIT_MS = 1


def backoff_s(attempt: int, base_s: float, max_s: float) -> float:
    """Delay before attempt ``attempt + 1`` (``attempt`` runs done): base, 2x base, 4x base..."""
    return float(min(base_s * (2 ** max(attempt - 1, 0)), max_s))


def retryable(inv: Invocation) -> bool:
    return inv.type is InvocationType.ASYNC and not inv.async_run


def apply_outcome(
    inv: Invocation, outcome: RunOutcome, *, now: float, base_delay_s: float, max_delay_s: float
) -> Invocation:
    """The row to write for ``inv`` (status running, attempt already counted) after ``outcome``."""
    done = replace(
        inv,
        status=outcome.status,
        result=outcome.result,
        error=outcome.error,
        finished_at=now,
        duration_ms=round(outcome.duration_ms, 3),
        billed_duration_ms=max(BILLING_UNIT_MS, math.ceil(outcome.duration_ms)),
        peak_memory_mb=round(outcome.peak_memory_mb, 2),
    )
    if outcome.status in (Status.FAILED, Status.TIMED_OUT) and retryable(inv):
        return retry_or_dead_letter(
            done, now=now, base_delay_s=base_delay_s, max_delay_s=max_delay_s
        )
    return done


def retry_or_dead_letter(
    inv: Invocation, *, now: float, base_delay_s: float, max_delay_s: float
) -> Invocation:
    """``inv`` carries the failed attempt's error; queue it again or dead-letter it."""
    delay = backoff_s(inv.attempt, base_delay_s, max_delay_s)
    if inv.attempt < inv.max_attempts and now + delay < inv.expires_at:
        return replace(inv, status=Status.QUEUED, run_after=now + delay, finished_at=None)
    return replace(inv, dead_lettered=True)
