"""SCF actions on triggers: CreateTrigger, ListTriggers, DeleteTrigger, UpdateTriggerStatus,
UpdateTrigger. They map onto :class:`cumulo.engine.triggers.Triggers`, as the REST API does.

cumulo serves timer triggers (``Type=timer``); every other kind answers
``UnsupportedOperation.Trigger``. As in SCF, ``TriggerDesc`` is sent as the bare cron
expression and answered as ``{"cron": "<expression>"}`` (either is accepted when sent),
``Enable`` is sent as ``OPEN``/``CLOSE`` and answered as 1/0, ``Description`` is kept as the
trigger's ``note``. Departures: schedules are UTC, and a trigger's name is unique per
function (whatever its qualifier).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson

from cumulo.api.scf.actions import action
from cumulo.api.scf.call import ScfCall, check_params, scf_time
from cumulo.engine.triggers import check_type
from cumulo.errors import InvalidParameter, NotFound
from cumulo.models import LATEST, Trigger

_SWITCH = {"OPEN": True, "CLOSE": False}


def trigger_info(trigger: Trigger) -> dict[str, Any]:
    """SCF's ``Trigger`` shape (as in GetFunction's ``Triggers`` and CreateTrigger's
    ``TriggerInfo``)."""
    return {
        "TriggerName": trigger.name,
        "Type": trigger.type,
        "TriggerDesc": orjson.dumps({"cron": trigger.description}).decode(),
        "Qualifier": trigger.qualifier,
        "Enable": 1 if trigger.enabled else 0,
        "CustomArgument": trigger.custom_argument,
        "AddTime": scf_time(trigger.created_at),
        "ModTime": scf_time(trigger.updated_at),
        "AvailableStatus": "Available",
        "BindStatus": "on",
        "TriggerAttribute": "",
        "ResourceId": f"{trigger.namespace}/{trigger.function_name}/{trigger.name}",
        "Description": trigger.note,
    }


@action("CreateTrigger")
async def create_trigger(call: ScfCall) -> dict[str, Any]:
    check_params(call, "CreateTrigger", frozenset({"FunctionName", "TriggerName", "Type",
                                                    "TriggerDesc", "Namespace", "Qualifier",
                                                    "Enable", "CustomArgument",
                                                    "Description"}))  # fmt: skip
    kind = check_type(call.text("Type"))
    body = {
        "name": call.text("TriggerName"),
        "type": kind,
        "description": cron_expression(call.text("TriggerDesc")),
        "qualifier": call.text("Qualifier", LATEST),
        "enabled": _enable(call, "OPEN"),
        "custom_argument": call.text("CustomArgument", ""),
        "note": call.text("Description", ""),
    }
    trigger = await call.core.triggers.create(call.namespace(), call.text("FunctionName"), body)
    return {"TriggerInfo": trigger_info(trigger)}


@action("ListTriggers")
async def list_triggers(call: ScfCall) -> dict[str, Any]:
    check_params(call, "ListTriggers", frozenset({"FunctionName", "Namespace", "Offset", "Limit",
                                                   "OrderBy", "Order", "Filters"}))  # fmt: skip
    order_by = call.text("OrderBy", "mod_time")
    sort_keys: dict[str, Callable[[Trigger], tuple[float, str]]] = {
        "add_time": lambda t: (t.created_at, t.name),
        "mod_time": lambda t: (t.updated_at, t.name),
    }
    if order_by not in sort_keys:
        raise InvalidParameter(
            "OrderBy must be add_time or mod_time", code="InvalidParameterValue.OrderBy"
        )
    order = call.text("Order", "DESC").upper()
    if order not in ("ASC", "DESC"):
        raise InvalidParameter("Order must be ASC or DESC", code="InvalidParameterValue.Order")
    offset = call.integer("Offset", 0)
    limit = call.integer("Limit", 20, low=1, high=1000)
    keep = _filters(call)
    triggers = await call.core.triggers.list(call.namespace(), call.text("FunctionName"))
    found = [t for t in triggers if keep(t)]
    found.sort(key=sort_keys[order_by], reverse=order == "DESC")
    page = found[offset : offset + limit]
    return {
        "Triggers": [{**trigger_info(t), "BoundResources": ""} for t in page],
        "TotalCount": len(found),
    }


@action("DeleteTrigger")
async def delete_trigger(call: ScfCall) -> dict[str, Any]:
    check_params(call, "DeleteTrigger", frozenset({"FunctionName", "TriggerName", "Type",
                                                    "Namespace", "TriggerDesc",
                                                    "Qualifier"}))  # fmt: skip
    trigger = await _named(call)
    await call.core.triggers.delete(trigger.namespace, trigger.function_name, trigger.name)
    return {}


@action("UpdateTriggerStatus")
async def update_trigger_status(call: ScfCall) -> dict[str, Any]:
    check_params(call, "UpdateTriggerStatus", frozenset({"Enable", "FunctionName", "TriggerName",
                                                          "Type", "Qualifier", "Namespace",
                                                          "TriggerDesc"}))  # fmt: skip
    on = _enable(call, None)
    trigger = await _named(call)
    await call.core.triggers.set_enabled(trigger.namespace, trigger.function_name, trigger.name, on)
    return {}


@action("UpdateTrigger")
async def update_trigger(call: ScfCall) -> dict[str, Any]:
    check_params(call, "UpdateTrigger", frozenset({"FunctionName", "TriggerName", "Type",
                                                    "Enable", "Qualifier", "Namespace",
                                                    "TriggerDesc", "Description",
                                                    "CustomArgument"}))  # fmt: skip
    trigger = await _named(call)
    changes: dict[str, Any] = {}
    if call.has("Enable"):
        changes["enabled"] = _enable(call, None)
    if call.has("TriggerDesc"):
        changes["description"] = cron_expression(call.text("TriggerDesc"))
    if call.has("CustomArgument"):
        changes["custom_argument"] = call.text("CustomArgument")
    if call.has("Description"):
        changes["note"] = call.text("Description")
    await call.core.triggers.update(trigger.namespace, trigger.function_name, trigger.name, changes)
    return {}


def cron_expression(trigger_desc: str) -> str:
    """A timer's ``TriggerDesc``: the bare expression, or ``{"cron": "..."}`` as SCF answers
    it (so a value read back can be sent again)."""
    text = trigger_desc.strip()
    if not text.startswith("{"):
        return text
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        value = None
    if not isinstance(value, dict) or not isinstance(value.get("cron"), str):
        raise InvalidParameter(
            'TriggerDesc must be a cron expression such as "0 */5 * * * * *" (or '
            '{"cron": "0 */5 * * * * *"})',
            code="InvalidParameterValue.TriggerDesc",
        )
    cron: str = value["cron"]
    return cron


async def _named(call: ScfCall) -> Trigger:
    """The trigger named by ``FunctionName`` + ``TriggerName``; ``Type`` and ``Qualifier``,
    when sent, must be the trigger's."""
    if call.has("Type"):
        check_type(call.text("Type"))
    name = call.text("TriggerName")
    trigger = await call.core.triggers.get(call.namespace(), call.text("FunctionName"), name)
    qualifier = call.optional_text("Qualifier")
    if qualifier is not None and qualifier != trigger.qualifier:
        raise NotFound(
            f"trigger {name!r} runs qualifier {trigger.qualifier}, not {qualifier}",
            code="ResourceNotFound.Trigger",
        )
    return trigger


def _enable(call: ScfCall, default: str | None) -> bool:
    value = call.text("Enable", default).upper()
    if value not in _SWITCH:
        raise InvalidParameter("Enable must be OPEN or CLOSE", code="InvalidParameterValue.Enable")
    return _SWITCH[value]


def _filters(call: ScfCall) -> Callable[[Trigger], bool]:
    """``Filters`` on Qualifier, TriggerName or Description: a trigger passes when, for every
    filter, its value is one of the filter's ``Values``."""
    fields: dict[str, Callable[[Trigger], str]] = {
        "Qualifier": lambda t: t.qualifier,
        "TriggerName": lambda t: t.name,
        "Description": lambda t: t.note,
    }
    wanted: list[tuple[Callable[[Trigger], str], frozenset[str]]] = []
    for item in call.array("Filters"):
        name = item.get("Name") if isinstance(item, dict) else None
        values = item.get("Values") if isinstance(item, dict) else None
        if name not in fields or not isinstance(values, list):
            raise InvalidParameter(
                "each of Filters needs a Name (Qualifier, TriggerName or Description) and "
                "a list of Values",
                code="InvalidParameterValue.Filters",
            )
        wanted.append((fields[name], frozenset(str(v) for v in values)))
    return lambda t: all(get(t) in values for get, values in wanted)
