import time
from dataclasses import replace

from cumulo.engine.outcome import apply_outcome, backoff_s
from cumulo.models import Invocation, InvocationType, Status
from cumulo.runtime.base import RunOutcome


def _inv(**changes: object) -> Invocation:
    now = time.time()
    inv = Invocation(
        request_id="r1",
        namespace="default",
        function_name="f",
        function_id="fid",
        function_revision=1,
        type=InvocationType.ASYNC,
        async_run=False,
        status=Status.RUNNING,
        event="{}",
        created_at=now,
        run_after=now,
        max_attempts=3,
        expires_at=now + 3600,
        attempt=1,
        started_at=now,
    )
    return replace(inv, **changes)  # type: ignore[arg-type]


def _failed(status: Status = Status.FAILED) -> RunOutcome:
    error = {"type": "ValueError", "message": "boom", "traceback": "..."}
    return RunOutcome(status, None, error, 12.3, 20.0, False, 1)


def test_backoff_doubles_and_caps() -> None:
    assert [backoff_s(a, 1.0, 5.0) for a in (1, 2, 3, 4)] == [1.0, 2.0, 4.0, 5.0]


def test_normal_async_failure_is_queued_again_with_backoff() -> None:
    now = time.time()
    out = apply_outcome(_inv(), _failed(), now=now, base_delay_s=1.0, max_delay_s=60)
    assert out.status is Status.QUEUED
    assert out.run_after == now + 1.0
    assert out.error is not None and out.error["type"] == "ValueError"
    assert not out.dead_lettered


def test_last_attempt_is_dead_lettered_with_its_error() -> None:
    out = apply_outcome(
        _inv(attempt=3), _failed(Status.TIMED_OUT), now=time.time(), base_delay_s=1, max_delay_s=9
    )
    assert out.status is Status.TIMED_OUT
    assert out.dead_lettered


def test_event_too_old_is_dead_lettered() -> None:
    now = time.time()
    inv = _inv(expires_at=now + 0.5)
    out = apply_outcome(inv, _failed(), now=now, base_delay_s=1.0, max_delay_s=9)
    assert out.status is Status.FAILED and out.dead_lettered


def test_async_run_and_sync_are_never_retried() -> None:
    for inv in (_inv(async_run=True), _inv(type=InvocationType.SYNC)):
        out = apply_outcome(inv, _failed(), now=time.time(), base_delay_s=1, max_delay_s=9)
        assert out.status is Status.FAILED
        assert not out.dead_lettered


def test_success_records_billing_rounded_up() -> None:
    ok = RunOutcome(Status.SUCCEEDED, '{"a": 1}', None, 10.2, 31.5, True, 7)
    out = apply_outcome(_inv(), ok, now=time.time(), base_delay_s=1, max_delay_s=9)
    assert out.status is Status.SUCCEEDED
    assert out.billed_duration_ms == 11
    assert out.result == '{"a": 1}'
