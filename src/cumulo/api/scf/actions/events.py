"""SCF actions on async events (one invocation each): GetAsyncEventStatus, ListAsyncEvents,
TerminateAsyncEvent, and the retry policy of events, Get/UpdateFunctionEventInvokeConfig.

Every invocation of a function is an event here, whatever its type: ``InvokeType`` is
``ASYNC`` for an event the caller did not wait for (every call of an async-run function) and
``SYNC`` for one it waited for; the filter also takes SCF's ``Event`` / ``RequestResponse``.

``Status`` is :attr:`cumulo.models.Status.scf_name` (RUNNING for queued and running,
FINISHED, FAILED for failed and timed out, ABORTED for terminated). ``StatusCode`` follows
SCF's function status codes: 202 while the event is queued or running, 200 when it
succeeded, 430 when the handler raised, 433 on timeout, 434 over the memory limit, 439 when
the instance exited or crashed, 499 when it was terminated by request (the caller gave up,
as HTTP's 499), 500 when the platform could not run it (instance lost, function deleted).

Times: ``StartTime`` is when the run began (for a queued event, when it was accepted);
``EndTime`` when it ended, empty while it runs. ``StartTimeInterval`` and ``Orderby=
StartTime`` use the time the run began, so an event still queued matches no interval and
sorts last either way; ``EndTimeInterval`` and ``Orderby=EndTime`` likewise for the end.

An async-run function is never retried: its ``RetryNum`` reads 0 and asking for retries is
refused (``UnsupportedOperation.UpdateFunctionEventInvokeConfig``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cumulo.api.scf.actions import action
from cumulo.api.scf.call import ScfCall, check_params, scf_time_ms
from cumulo.errors import (
    Conflict,
    InvalidParameter,
    InvocationNotFound,
    MissingParameter,
    UnsupportedOperation,
)
from cumulo.models import (
    LATEST,
    Function,
    Invocation,
    InvocationFilter,
    InvocationOrder,
    InvocationType,
    Status,
    TerminateMode,
)

#: ``ListAsyncEvents`` pages: 20 by default, at most 100.
DEFAULT_LIMIT = 20
MAX_LIMIT = 100
#: The far end of an interval given only its start (Unix seconds; any later time is absurd).
_FOREVER = 2.0**40

#: Error types the platform writes (not the handler's): they are not user-code failures.
PLATFORM_ERROR_TYPES = frozenset(
    {"MemoryLimitExceeded", "InstanceCrashed", "InstanceLost", "FunctionNotFound",
     "VersionNotFound"}
)  # fmt: skip

_INVOKE_TYPES = {
    "ASYNC": InvocationType.ASYNC,
    "EVENT": InvocationType.ASYNC,
    "SYNC": InvocationType.SYNC,
    "REQUESTRESPONSE": InvocationType.SYNC,
}
_ORDERBY = {"StartTime": InvocationOrder.STARTED, "EndTime": InvocationOrder.FINISHED}
_SCF_STATUSES = frozenset(s.scf_name for s in Status)


def status_code(inv: Invocation) -> int:
    """SCF's status code of an invocation (see the module docstring)."""
    if not inv.status.terminal:
        return 202
    if inv.status is Status.SUCCEEDED:
        return 200
    if inv.status is Status.TIMED_OUT:
        return 433
    if inv.status is Status.TERMINATED:
        return 499
    error_type = error_type_of(inv)
    if error_type == "MemoryLimitExceeded":
        return 434
    if error_type == "InstanceCrashed":
        return 439
    if error_type in PLATFORM_ERROR_TYPES:
        return 500
    return 430


def error_type_of(inv: Invocation) -> str:
    return str((inv.error or {}).get("type", ""))


def start_time(inv: Invocation) -> float:
    """When the run began; when it was accepted for one still queued."""
    return inv.started_at if inv.started_at is not None else inv.created_at


def invoke_type(inv: Invocation) -> str:
    return "ASYNC" if inv.type is InvocationType.ASYNC else "SYNC"


def qualifier_filter(call: ScfCall) -> str | None:
    """The ``Qualifier`` filter: ``$LATEST`` or a version number (an invocation records the
    version that ran it, not the alias that chose it)."""
    qualifier = call.optional_text("Qualifier")
    if not qualifier:
        return None
    if qualifier == LATEST or (qualifier.isdigit() and int(qualifier) >= 1):
        return qualifier
    raise InvalidParameter(
        f"Qualifier {qualifier!r} is not a version: give $LATEST or a version number "
        "(events record the version that ran them, not the alias that picked it)",
        code="InvalidParameterValue.Qualifier",
    )


async def find_invocation(call: ScfCall, request_id: str) -> Invocation:
    """The invocation ``request_id`` in any namespace the caller's key may use. Raises
    ``InvocationNotFound`` (``ResourceNotFound.AsyncEvent``)."""
    store = call.core.store
    if call.principal.namespace is not None:
        names = [call.principal.namespace]
    else:
        names = sorted(
            (ns.name for ns in await store.list_namespaces()), key=lambda n: n != "default"
        )
    for name in names:
        try:
            return await store.get_invocation(name, request_id)
        except InvocationNotFound:
            continue
    raise InvocationNotFound(f"no async event has the request id {request_id!r}")


def _request_id(call: ScfCall, name: str) -> str:
    request_id = call.text(name).strip()
    if not request_id:
        raise InvalidParameter(f"{name} must not be empty", code=f"InvalidParameterValue.{name}")
    return request_id


# --- status, list, terminate -------------------------------------------------------------


@action("GetAsyncEventStatus")
async def get_async_event_status(call: ScfCall) -> dict[str, Any]:
    check_params(call, "GetAsyncEventStatus", frozenset({"InvokeRequestId"}))
    inv = await find_invocation(call, _request_id(call, "InvokeRequestId"))
    return {
        "Result": {
            "Status": inv.status.scf_name,
            "StatusCode": status_code(inv),
            "InvokeRequestId": inv.request_id,
        }
    }


@action("ListAsyncEvents")
async def list_async_events(call: ScfCall) -> dict[str, Any]:
    check_params(call, "ListAsyncEvents", frozenset({"FunctionName", "Namespace", "Qualifier",
                                                      "InvokeType", "Status",
                                                      "StartTimeInterval", "EndTimeInterval",
                                                      "Order", "Orderby", "Offset", "Limit",
                                                      "InvokeRequestId"}))  # fmt: skip
    fn = await call.function()
    order = call.text("Order", "DESC").upper()
    if order not in ("ASC", "DESC"):
        raise InvalidParameter(
            f"Order {order!r} is invalid: use ASC or DESC", code="InvalidParameterValue.Order"
        )
    orderby = call.text("Orderby", "StartTime")
    if orderby not in _ORDERBY:
        raise InvalidParameter(
            f"Orderby {orderby!r} is invalid: use StartTime or EndTime",
            code="InvalidParameterValue.OrderBy",
        )
    where = InvocationFilter(
        namespace=fn.namespace,
        function_name=fn.name,
        status=_statuses(call),
        request_id=call.optional_text("InvokeRequestId") or None,
        types=_types(call),
        function_version=qualifier_filter(call),
        started_between=_interval(call, "StartTimeInterval"),
        finished_between=_interval(call, "EndTimeInterval"),
    )
    items, total = await call.core.store.search_invocations(
        where,
        _ORDERBY[orderby],
        ascending=order == "ASC",
        offset=call.integer("Offset", 0),
        limit=call.integer("Limit", DEFAULT_LIMIT, low=1, high=MAX_LIMIT),
    )
    return {"EventList": [_async_event(inv) for inv in items], "TotalCount": total}


@action("TerminateAsyncEvent")
async def terminate_async_event(call: ScfCall) -> dict[str, Any]:
    check_params(call, "TerminateAsyncEvent", frozenset({"FunctionName", "InvokeRequestId",
                                                          "Namespace",
                                                          "GraceShutdown"}))  # fmt: skip
    fn = await call.function()
    request_id = _request_id(call, "InvokeRequestId")
    graceful = _bool(call, "GraceShutdown")
    inv = await call.core.store.get_invocation(fn.namespace, request_id)
    if inv.function_name != fn.name:
        raise InvocationNotFound(
            f"the async event {request_id!r} is not an event of function {fn.name!r}"
        )
    if inv.status.terminal and inv.status is not Status.TERMINATED:
        raise Conflict(
            f"the async event {request_id!r} already ended ({inv.status.scf_name}); "
            "only a RUNNING event can be terminated",
            code="FailedOperation.AsyncEventStatus",
        )
    mode = TerminateMode.GRACEFUL if graceful else TerminateMode.FORCE
    await call.core.terminate(fn.namespace, request_id, mode)
    return {}


def _async_event(inv: Invocation) -> dict[str, Any]:
    return {
        "InvokeRequestId": inv.request_id,
        "InvokeType": invoke_type(inv),
        "Qualifier": inv.function_version,
        "Status": inv.status.scf_name,
        "StartTime": scf_time_ms(start_time(inv)),
        "EndTime": scf_time_ms(inv.finished_at),
    }


def _statuses(call: ScfCall) -> frozenset[Status] | None:
    wanted = call.array("Status")
    if not wanted:
        return None
    for name in wanted:
        if not isinstance(name, str) or name not in _SCF_STATUSES:
            raise InvalidParameter(
                f"Status {name!r} is invalid: use RUNNING, FINISHED, FAILED or ABORTED",
                code="InvalidParameterValue.Status",
            )
    return frozenset(s for s in Status if s.scf_name in wanted)


def _types(call: ScfCall) -> frozenset[InvocationType] | None:
    wanted = call.array("InvokeType")
    if not wanted:
        return None
    types: set[InvocationType] = set()
    for name in wanted:
        kind = _INVOKE_TYPES.get(name.upper()) if isinstance(name, str) else None
        if kind is None:
            raise InvalidParameter(
                f"InvokeType {name!r} is invalid: use ASYNC (events nobody waited for) or "
                "SYNC (calls that waited for the result)",
                code="InvalidParameterValue.InvokeType",
            )
        types.add(kind)
    return frozenset(types)


def _interval(call: ScfCall, name: str) -> tuple[float, float] | None:
    """A ``TimeInterval`` ``{Start, End}`` as ``[start, end)`` Unix seconds; a missing side
    leaves that side open."""
    value = call.obj(name)
    if value is None:
        return None
    start = call.time(value["Start"], name) if value.get("Start") else 0.0
    end = call.time(value["End"], name) if value.get("End") else _FOREVER
    if end <= start:
        raise InvalidParameter(
            f"{name}: End must be later than Start", code=f"InvalidParameterValue.{name}"
        )
    return start, end


def _bool(call: ScfCall, name: str) -> bool:
    value = call.params.get(name)
    if value is None:
        return False
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise InvalidParameter(f"{name} must be true or false", code=f"InvalidParameterValue.{name}")


# --- retry policy ------------------------------------------------------------------------


@action("GetFunctionEventInvokeConfig")
async def get_function_event_invoke_config(call: ScfCall) -> dict[str, Any]:
    check_params(call, "GetFunctionEventInvokeConfig", frozenset({"FunctionName", "Namespace",
                                                                   "Qualifier"}))  # fmt: skip
    fn = await call.function()
    fn = await call.core.versions.describe(fn, call.text("Qualifier", LATEST) or LATEST)
    return {"AsyncTriggerConfig": async_trigger_config(fn)}


@action("UpdateFunctionEventInvokeConfig")
async def update_function_event_invoke_config(call: ScfCall) -> dict[str, Any]:
    check_params(call, "UpdateFunctionEventInvokeConfig",
                 frozenset({"AsyncTriggerConfig", "FunctionName", "Namespace"}))  # fmt: skip
    fn = await call.function()
    config = call.obj("AsyncTriggerConfig")
    if config is None:
        raise MissingParameter("the parameter AsyncTriggerConfig is required")
    body: dict[str, Any] = {}
    retry_num = _retry_num(config)
    if retry_num is not None:
        if fn.async_run and retry_num > 0:
            raise UnsupportedOperation(
                f"function {fn.name!r} runs async (AsyncRunEnable): its events are never "
                "retried, so RetryNum must be 0",
                code="UnsupportedOperation.UpdateFunctionEventInvokeConfig",
            )
        if not fn.async_run:
            body["retry_attempts"] = retry_num
    msg_ttl = config.get("MsgTTL")
    if msg_ttl is not None:
        if isinstance(msg_ttl, bool) or not isinstance(msg_ttl, int):
            raise InvalidParameter(
                "AsyncTriggerConfig.MsgTTL must be a whole number of seconds",
                code="InvalidParameterValue.MsgTTL",
            )
        body["max_event_age_s"] = msg_ttl
    if body:
        await call.core.functions.patch(fn.namespace, fn.name, body)
    return {}


def async_trigger_config(fn: Function) -> dict[str, Any]:
    """SCF's ``AsyncTriggerConfig`` of a function: retries after a failure, and how long
    (seconds) an event may wait to be retried."""
    retry_num = 0 if fn.async_run else fn.retry_attempts
    return {"RetryConfig": [{"RetryNum": retry_num}], "MsgTTL": int(fn.max_event_age_s)}


def _retry_num(config: Mapping[str, Any]) -> int | None:
    """``RetryConfig``: a list of one ``{RetryNum}`` (or none, leaving retries as they are)."""
    retry_config = config.get("RetryConfig")
    if retry_config is None or retry_config == []:
        return None
    if not isinstance(retry_config, list) or len(retry_config) != 1:
        raise InvalidParameter(
            "AsyncTriggerConfig.RetryConfig must be a list of one {RetryNum}",
            code="InvalidParameterValue.AsyncTriggerConfig",
        )
    item = retry_config[0]
    value = item.get("RetryNum") if isinstance(item, Mapping) else None
    if value is None:
        raise InvalidParameter(
            "AsyncTriggerConfig.RetryConfig needs a RetryNum",
            code="InvalidParameterValue.AsyncTriggerConfig",
        )
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidParameter(
            "RetryNum must be a whole number", code="InvalidParameterValue.RetryNum"
        )
    return value
