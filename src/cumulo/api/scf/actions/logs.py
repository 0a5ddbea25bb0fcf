"""SCF actions that read what runs did: GetRequestStatus and GetFunctionLogs.

Both look at one function's invocations, newest first by default, and read a window of
time against when each request arrived, given as ``StartTime`` / ``EndTime`` texts
(``%Y-%m-%d %H:%M:%S``, UTC; ``EndTime`` counts to the end of its second).

- GetRequestStatus: without times, the last 15 minutes (SCF's default); when
  ``FunctionRequestId`` is given without times, that request whenever it came (a 24 h job
  started long ago is still found). At most ``MAX_STATUS_ROWS`` entries; ``TotalCount``
  counts them all. ``RetCode`` is 0 succeeded, 1 queued or running, -1 failed, timed out or
  terminated; ``Duration`` (ms) counts up while the run goes on; ``MemUsage`` is the peak in
  MB; ``RetryNum`` is the number of runs before this one.
- GetFunctionLogs: without times, every record kept (``retention_s``); with them, at most
  one day apart. ``Offset + Limit`` may not pass 10,000. ``Filter.RetCode``: ``is0``
  succeeded, ``not0`` failed, timed out or terminated (a run still going is not an error),
  ``TimeLimitExceeded`` timed out, ``ResourceLimitExceeded`` over the memory limit,
  ``UserCodeException`` the handler raised (a failure the platform did not cause).
  ``RetCode`` is 0 succeeded, 2 running (or queued), 3 terminated, otherwise the event's
  failure status code (430 handler raised, 433 timeout, 434 memory, 439 instance exited,
  500 platform; see ``actions.events``). ``Log`` is the end of the run's log, as
  ``Invoke(LogType=Tail)`` gives it: the last ``LOG_TAIL_LINES`` lines, at most
  ``LOG_TAIL_BYTES``; the full log is at ``GET /v1/namespaces/{ns}/invocations/{id}/logs``.
  ``MemUsage`` is in bytes, ``BillDuration`` in ms. ``SearchContext`` (retired in SCF) is
  accepted and ignored.
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

from cumulo.api.scf.actions import action
from cumulo.api.scf.actions.events import (
    PLATFORM_ERROR_TYPES,
    error_type_of,
    qualifier_filter,
    start_time,
    status_code,
)
from cumulo.api.scf.actions.invoke import LOG_TAIL_BYTES, error_message
from cumulo.api.scf.call import ScfCall, check_params, scf_time
from cumulo.errors import InvalidParameter
from cumulo.models import Invocation, InvocationFilter, InvocationOrder, Status
from cumulo.store.base import InvocationStore, LogStore

#: GetRequestStatus: the window when none is given, and how many entries it answers.
DEFAULT_STATUS_WINDOW_S = 15 * 60.0
MAX_STATUS_ROWS = 100
#: GetFunctionLogs: page size by default, how deep paging goes, widest window.
DEFAULT_LOG_LIMIT = 10
MAX_LOG_DEPTH = 10_000
MAX_LOG_WINDOW_S = 86_400.0
#: Lines of the run's log a ``FunctionLog.Log`` carries at most (then cut to the bytes).
LOG_TAIL_LINES = 500
#: Rows read per query when picking user-code failures out of all failures.
_SCAN_PAGE = 500

_LOG_ORDER = {
    "function_name": InvocationOrder.FUNCTION,
    "duration": InvocationOrder.DURATION,
    "mem_usage": InvocationOrder.MEMORY,
    "start_time": InvocationOrder.CREATED,
}
_FAILURES = frozenset({Status.FAILED, Status.TIMED_OUT, Status.TERMINATED})
_RET_CODES = {
    "is0": frozenset({Status.SUCCEEDED}),
    "not0": _FAILURES,
    "TimeLimitExceeded": frozenset({Status.TIMED_OUT}),
    "ResourceLimitExceeded": frozenset({Status.FAILED}),
    "UserCodeException": frozenset({Status.FAILED}),
}


# --- GetRequestStatus --------------------------------------------------------------------


@action("GetRequestStatus")
async def get_request_status(call: ScfCall) -> dict[str, Any]:
    check_params(call, "GetRequestStatus", frozenset({"FunctionName", "FunctionRequestId",
                                                       "Namespace", "StartTime",
                                                       "EndTime"}))  # fmt: skip
    fn = await call.function()
    request_id = call.optional_text("FunctionRequestId") or None
    now = time.time()
    window = _status_window(call, by_id=request_id is not None, now=now)
    where = InvocationFilter(
        namespace=fn.namespace,
        function_name=fn.name,
        request_id=request_id,
        created_after=window[0] if window else None,
        created_before=window[1] if window else None,
    )
    items, total = await call.core.store.search_invocations(
        where, InvocationOrder.CREATED, ascending=False, offset=0, limit=MAX_STATUS_ROWS
    )
    return {"TotalCount": total, "Data": [request_status(inv, now) for inv in items]}


def request_status(inv: Invocation, now: float) -> dict[str, Any]:
    """SCF's ``RequestStatus`` of one invocation."""
    return {
        "FunctionName": inv.function_name,
        "RetMsg": ret_msg(inv),
        "RequestId": inv.request_id,
        "StartTime": scf_time(start_time(inv)),
        "RetCode": _request_ret_code(inv.status),
        "Duration": duration_ms(inv, now),
        "MemUsage": round(inv.peak_memory_mb or 0.0, 3),
        "RetryNum": max(inv.attempt - 1, 0),
    }


def _request_ret_code(status: Status) -> int:
    if status is Status.SUCCEEDED:
        return 0
    return -1 if status.terminal else 1


def _status_window(call: ScfCall, *, by_id: bool, now: float) -> tuple[float, float] | None:
    start_text = call.optional_text("StartTime") or None
    end_text = call.optional_text("EndTime") or None
    if start_text is not None:
        if end_text is None:
            raise InvalidParameter(
                "StartTime needs an EndTime too", code="InvalidParameterValue.StartTimeOrEndTime"
            )
        return _checked_window(call, start_text, end_text, None)
    if end_text is None and by_id:
        return None
    end = call.time(end_text, "EndTime") + 1 if end_text is not None else now + 1
    return end - DEFAULT_STATUS_WINDOW_S, end


# --- GetFunctionLogs ---------------------------------------------------------------------


@action("GetFunctionLogs")
async def get_function_logs(call: ScfCall) -> dict[str, Any]:
    check_params(
        call,
        "GetFunctionLogs",
        frozenset({"FunctionName", "Offset", "Limit", "Order", "OrderBy", "Filter",
                   "Namespace", "Qualifier", "FunctionRequestId", "StartTime", "EndTime"}),
        ignored=frozenset({"SearchContext"}),
    )  # fmt: skip
    fn = await call.function()
    offset = call.integer("Offset", 0, high=MAX_LOG_DEPTH)
    limit = call.integer("Limit", DEFAULT_LOG_LIMIT, low=1, high=MAX_LOG_DEPTH)
    if offset + limit > MAX_LOG_DEPTH:
        raise InvalidParameter(
            f"Offset + Limit may not pass {MAX_LOG_DEPTH}; narrow the time window instead",
            code="LimitExceeded.Offset",
        )
    order = call.text("Order", "desc").lower()
    if order not in ("asc", "desc"):
        raise InvalidParameter(
            f"Order {order!r} is invalid: use asc or desc", code="InvalidParameterValue.Order"
        )
    orderby = call.text("OrderBy", "start_time")
    if orderby not in _LOG_ORDER:
        raise InvalidParameter(
            f"OrderBy {orderby!r} is invalid: use {', '.join(_LOG_ORDER)}",
            code="InvalidParameterValue.OrderBy",
        )
    ret_code = _ret_code_filter(call)
    window = _log_window(call)
    where = InvocationFilter(
        namespace=fn.namespace,
        function_name=fn.name,
        status=_RET_CODES[ret_code] if ret_code else None,
        error_type="MemoryLimitExceeded" if ret_code == "ResourceLimitExceeded" else None,
        request_id=call.optional_text("FunctionRequestId") or None,
        function_version=qualifier_filter(call),
        created_after=window[0] if window else None,
        created_before=window[1] if window else None,
    )
    store = call.core.store
    ascending = order == "asc"
    if ret_code == "UserCodeException":
        items, total = await _user_code_failures(
            store, where, _LOG_ORDER[orderby], ascending, offset, limit
        )
    else:
        items, total = await store.search_invocations(
            where, _LOG_ORDER[orderby], ascending=ascending, offset=offset, limit=limit
        )
    now = time.time()
    data = [await function_log(store, inv, now) for inv in items]
    return {
        "TotalCount": total,
        "Data": data,
        "SearchContext": {
            "Offset": str(offset + len(data)),
            "Limit": limit,
            "Keyword": "",
            "Type": "Application",
        },
    }


async def function_log(store: LogStore, inv: Invocation, now: float) -> dict[str, Any]:
    """SCF's ``FunctionLog`` of one invocation, with the end of its log."""
    ok = inv.status is Status.SUCCEEDED or not inv.status.terminal
    return {
        "FunctionName": inv.function_name,
        "RetMsg": ret_msg(inv),
        "RequestId": inv.request_id,
        "StartTime": scf_time(start_time(inv)),
        "RetCode": _log_ret_code(inv),
        "InvokeFinished": 1 if inv.status.terminal else 0,
        "Duration": duration_ms(inv, now),
        "BillDuration": inv.billed_duration_ms or 0,
        "MemUsage": int((inv.peak_memory_mb or 0.0) * 1024 * 1024),
        "Log": await log_tail(store, inv.request_id),
        "Level": "INFO" if ok else "ERROR",
        "Source": "Application",
        "RetryNum": max(inv.attempt - 1, 0),
    }


def _log_ret_code(inv: Invocation) -> int:
    if inv.status is Status.SUCCEEDED:
        return 0
    if not inv.status.terminal:
        return 2
    if inv.status is Status.TERMINATED:
        return 3
    return status_code(inv)


def _ret_code_filter(call: ScfCall) -> str | None:
    log_filter = call.obj("Filter")
    if log_filter is None:
        return None
    value = log_filter.get("RetCode")
    if value is None or value == "":
        return None
    if not isinstance(value, str) or value not in _RET_CODES:
        raise InvalidParameter(
            f"Filter.RetCode {value!r} is invalid: use {', '.join(_RET_CODES)} (or leave it "
            "out for every log)",
            code="InvalidParameterValue.RetCode",
        )
    return value


def _log_window(call: ScfCall) -> tuple[float, float] | None:
    start_text = call.optional_text("StartTime") or None
    end_text = call.optional_text("EndTime") or None
    if start_text is None and end_text is None:
        return None
    if start_text is None or end_text is None:
        raise InvalidParameter(
            "give StartTime and EndTime together (at most one day apart), or neither",
            code="InvalidParameterValue.StartTimeOrEndTime",
        )
    return _checked_window(call, start_text, end_text, MAX_LOG_WINDOW_S)


async def _user_code_failures(
    store: InvocationStore,
    where: InvocationFilter,
    order: InvocationOrder,
    ascending: bool,
    offset: int,
    limit: int,
) -> tuple[list[Invocation], int]:
    """Failed runs whose error the handler raised: every failure but the platform's.

    The store filters on one error type only, so the total is all failures less each
    platform type's, and the page is picked from the failures in order."""
    failed = replace(where, status=frozenset({Status.FAILED}), error_type=None)
    _, total = await store.search_invocations(failed, limit=1)
    for error_type in sorted(PLATFORM_ERROR_TYPES):
        _, count = await store.search_invocations(replace(failed, error_type=error_type), limit=1)
        total -= count
    page: list[Invocation] = []
    skipped = 0
    position = 0
    while len(page) < limit:
        rows, _ = await store.search_invocations(
            failed, order, ascending=ascending, offset=position, limit=_SCAN_PAGE
        )
        for inv in rows:
            if error_type_of(inv) in PLATFORM_ERROR_TYPES:
                continue
            if skipped < offset:
                skipped += 1
            elif len(page) < limit:
                page.append(inv)
        if len(rows) < _SCAN_PAGE:
            break
        position += _SCAN_PAGE
    return page, max(total, len(page))


# --- shared ------------------------------------------------------------------------------


def ret_msg(inv: Invocation) -> str:
    """What the run returned; the error (as SCF's JSON ``ErrMsg``) when it failed; empty
    while it runs."""
    if inv.status is Status.SUCCEEDED:
        return inv.result or ""
    return error_message(inv) if inv.status.terminal else ""


def duration_ms(inv: Invocation, now: float) -> float:
    """The run's duration; for a run still going, how long it has run so far."""
    if inv.duration_ms is not None:
        return round(inv.duration_ms, 3)
    if inv.started_at is not None and not inv.status.terminal:
        return round(max(now - inv.started_at, 0.0) * 1000, 3)
    return 0.0


async def log_tail(store: LogStore, request_id: str) -> str:
    """The end of a run's log: its last ``LOG_TAIL_LINES`` lines, cut to the last
    ``LOG_TAIL_BYTES``. A long log costs a few indexed probes, not a read of every line."""
    lines = await store.read_logs(request_id, 0, LOG_TAIL_LINES)
    if len(lines) == LOG_TAIL_LINES:
        last = await _last_seq(store, request_id, lines[-1].seq)
        lines = await store.read_logs(request_id, max(last - LOG_TAIL_LINES, 0), LOG_TAIL_LINES)
    data = "\n".join(line.text for line in lines).encode()
    return data[-LOG_TAIL_BYTES:].decode(errors="ignore")


async def _last_seq(store: LogStore, request_id: str, known: int) -> int:
    """The highest ``seq`` of the run's lines, given one that exists. "Is there a line after
    k" only turns false as k grows, so gallop up to a bound, then halve the gap."""
    low = known
    step = max(known, 1)
    while probe := await store.read_logs(request_id, low + step, 1):
        low = probe[0].seq
        step *= 4
    high = low + step  # no line has a seq above this
    while low < high:
        mid = (low + high + 1) // 2
        probe = await store.read_logs(request_id, mid - 1, 1)
        if probe:
            low = probe[0].seq
        else:
            high = mid - 1
    return low


def _checked_window(
    call: ScfCall, start_text: str, end_text: str, widest_s: float | None
) -> tuple[float, float]:
    """``[StartTime, EndTime + 1 s)`` as Unix seconds, checked."""
    start = call.time(start_text, "StartTime")
    end = call.time(end_text, "EndTime") + 1
    if end <= start:
        raise InvalidParameter(
            "EndTime must not be before StartTime",
            code="InvalidParameterValue.StartTimeOrEndTime",
        )
    if widest_s is not None and end - 1 - start > widest_s:
        raise InvalidParameter(
            "StartTime and EndTime may be at most one day apart",
            code="InvalidParameterValue.StartTimeOrEndTime",
        )
    return start, end
