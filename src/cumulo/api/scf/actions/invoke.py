"""SCF actions that run functions: Invoke (``Event`` or ``RequestResponse``) and
InvokeFunction (always synchronous). Both go through the same admission as the REST API:
the same limits, the same durable acceptance. An async-run function answers every call at
once with its ``FunctionRequestId`` only, whatever the invocation type asked for."""

from __future__ import annotations

from typing import Any

import orjson

from cumulo.api.scf.actions import action
from cumulo.api.scf.call import ScfCall, check_params
from cumulo.errors import InvalidParameter, MalformedJSON, UnsupportedOperation
from cumulo.models import LATEST, Invocation, InvocationType, Status

#: ``LogType=Tail`` returns at most this much of the end of the run's log.
LOG_TAIL_BYTES = 4096

_INVOCATION_TYPES = {"Event": InvocationType.ASYNC, "RequestResponse": InvocationType.SYNC}


@action("Invoke")
async def invoke(call: ScfCall) -> dict[str, Any]:
    check_params(call, "Invoke", frozenset({"FunctionName", "InvocationType", "Qualifier",
                                             "ClientContext", "LogType", "Namespace",
                                             "RoutingKey"}))  # fmt: skip
    requested = call.text("InvocationType", "RequestResponse")
    if requested not in _INVOCATION_TYPES:
        raise InvalidParameter(
            f"InvocationType {requested!r} is invalid: use Event (async) or RequestResponse (sync)",
            code="InvalidParameterValue.InvocationType",
        )
    event = call.text("ClientContext", "{}")
    return {"Result": await _run(call, _INVOCATION_TYPES[requested], event, "ClientContext")}


@action("InvokeFunction")
async def invoke_function(call: ScfCall) -> dict[str, Any]:
    check_params(call, "InvokeFunction", frozenset({"FunctionName", "Qualifier", "Event",
                                                     "LogType", "Namespace",
                                                     "RoutingKey"}))  # fmt: skip
    event = call.text("Event", "{}")
    return {"Result": await _run(call, InvocationType.SYNC, event, "Event")}


async def _run(
    call: ScfCall, requested: InvocationType, event: str, event_field: str
) -> dict[str, Any]:
    if call.optional_text("RoutingKey"):
        raise UnsupportedOperation(
            "RoutingKey: aliases route by weight only (RoutingConfig.AdditionalVersionWeights)"
        )
    log_type = call.text("LogType", "None")
    if log_type not in ("None", "Tail"):
        raise InvalidParameter("LogType must be None or Tail", code="InvalidParameterValue.LogType")
    core = call.core
    fn = await core.functions.get_cached(call.namespace(), call.text("FunctionName"))
    qualifier = call.text("Qualifier", LATEST)
    if qualifier != "$DEFAULT":  # InvokeFunction's spelling of "no qualifier"
        fn = await core.versions.resolve(fn, qualifier)
    kind = core.admission.effective_type(fn, requested)
    body = event.encode()
    try:
        admitted = await core.admission.admit(fn, kind, body)
    except MalformedJSON as exc:
        raise InvalidParameter(
            f"{event_field} is not valid JSON: {exc.message}",
            code=f"InvalidParameterValue.{event_field}",
        ) from None
    inv = admitted.invocation
    if inv.type is InvocationType.ASYNC or not inv.status.terminal:
        return {"FunctionRequestId": inv.request_id}
    tail = await _log_tail(call, inv) if log_type == "Tail" else ""
    return sync_result(inv, tail)


def sync_result(inv: Invocation, log: str) -> dict[str, Any]:
    """SCF's ``Result`` of a finished synchronous run."""
    ok = inv.status is Status.SUCCEEDED
    return {
        "FunctionRequestId": inv.request_id,
        "RetMsg": (inv.result or "") if ok else "",
        "ErrMsg": "" if ok else error_message(inv),
        "Log": log,
        "MemUsage": int((inv.peak_memory_mb or 0.0) * 1024 * 1024),
        "Duration": round(inv.duration_ms or 0.0, 3),
        "BillDuration": inv.billed_duration_ms or 0,
        "InvokeResult": 0 if ok else -1,
    }


def error_message(inv: Invocation) -> str:
    """The ``ErrMsg`` of a failed run: SCF's JSON object, with cumulo's error type."""
    error = dict(inv.error or {})
    return orjson.dumps(
        {
            "errorCode": -1,
            "errorType": error.get("type", inv.status.value),
            "errorMessage": error.get("message", ""),
            "stackTrace": error.get("traceback", ""),
            "requestId": inv.request_id,
            "status": inv.status.value,
        }
    ).decode()


async def _log_tail(call: ScfCall, inv: Invocation) -> str:
    lines = await call.core.store.read_logs(inv.request_id)
    text = "\n".join(line.text for line in lines)
    data = text.encode()
    if len(data) <= LOG_TAIL_BYTES:
        return text
    return data[-LOG_TAIL_BYTES:].decode(errors="ignore")
