"""Triggers: create, list, change, enable/disable and delete a function's triggers, with
validation; the one place the REST API and the SCF actions both call.

A trigger is named per function (unique among the function's triggers) and points at a
qualifier: ``$LATEST`` (the default), ``$DEFAULT`` (SCF's name for "no qualifier", run as
``$LATEST``), a published version or an alias; the qualifier must exist when the trigger is
made. cumulo serves the ``timer`` kind (see :mod:`cumulo.triggers.timer`); any other kind
(``apigw``, ``cos``, ``cmq``, ``ckafka``, ``cls``, ``mps``, ...) is refused with
``UnsupportedOperation.Trigger``. Deleting a function deletes its triggers.

A change takes effect on every node within about a second (the scheduler reads the triggers
on each pass), from the moment it was made.
"""

from __future__ import annotations

import builtins
import re
import time
from collections.abc import Mapping
from typing import Any

from cumulo.engine.functions import Functions
from cumulo.engine.versions import Versions
from cumulo.errors import InvalidParameter, NotFound, UnsupportedOperation
from cumulo.models import LATEST, Function, Trigger, TriggerType
from cumulo.store.base import TriggerStore
from cumulo.triggers import timer

#: Letters, digits, ``-`` and ``_``, a letter first, at most 100 characters (SCF's rule).
TRIGGER_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,99}$")
#: SCF's spelling of "the function's default route": runs as ``$LATEST`` on cumulo.
DEFAULT_QUALIFIER = "$DEFAULT"
SUPPORTED_TYPES = frozenset({TriggerType.TIMER.value})

CREATE_FIELDS = frozenset(
    {"name", "type", "description", "qualifier", "enabled", "custom_argument", "note"}
)
UPDATE_FIELDS = frozenset({"description", "qualifier", "enabled", "custom_argument", "note"})
#: Characters a trigger's note may have.
MAX_NOTE = 1000


class Triggers:
    def __init__(self, store: TriggerStore, functions: Functions, versions: Versions) -> None:
        self._store = store
        self._functions = functions
        self._versions = versions

    async def create(self, namespace: str, function: str, body: Mapping[str, Any]) -> Trigger:
        """Make a trigger from ``body`` (``name``, ``type`` (default ``timer``),
        ``description`` (the cron expression), ``qualifier``, ``enabled`` (default true),
        ``custom_argument``). Raises ``FunctionNotFound``, ``InvalidParameter``,
        ``UnsupportedOperation`` (a kind cumulo does not serve), ``NotFound``
        (``ResourceNotFound.Qualifier``), ``Conflict`` (``ResourceInUse.Trigger``)."""
        _reject_unknown(body, CREATE_FIELDS)
        kind = check_type(body.get("type", TriggerType.TIMER.value))
        name = _name(body.get("name"))
        fn = await self._functions.get(namespace, function)
        qualifier = await self._qualifier(fn, body.get("qualifier", LATEST))
        now = time.time()
        trigger = Trigger(
            function_id=fn.id,
            namespace=fn.namespace,
            function_name=fn.name,
            name=name,
            type=kind,
            description=_schedule(body.get("description")),
            qualifier=qualifier,
            enabled=_enabled(body.get("enabled", True)),
            custom_argument=_custom_argument(body.get("custom_argument", "")),
            note=_note(body.get("note", "")),
            created_at=now,
            updated_at=now,
        )
        return await self._store.create_trigger(trigger)

    async def list(self, namespace: str, function: str) -> list[Trigger]:
        """The function's triggers, oldest first. Raises ``FunctionNotFound``."""
        fn = await self._functions.get(namespace, function)
        return await self._store.list_triggers(fn.id)

    async def get(self, namespace: str, function: str, name: str) -> Trigger:
        """Raises ``FunctionNotFound``, ``NotFound`` (``ResourceNotFound.Trigger``)."""
        for trigger in await self.list(namespace, function):
            if trigger.name == name:
                return trigger
        raise NotFound(
            f"function {function!r} has no trigger {name!r}", code="ResourceNotFound.Trigger"
        )

    async def update(
        self, namespace: str, function: str, name: str, body: Mapping[str, Any]
    ) -> Trigger:
        """Change ``description``, ``qualifier``, ``enabled`` or ``custom_argument``; the
        name and kind stay. Raises as :meth:`create`, and ``ResourceNotFound.Trigger``."""
        _reject_unknown(body, UPDATE_FIELDS, hint="name and type cannot be changed")
        current = await self.get(namespace, function, name)
        changes: dict[str, Any] = {"updated_at": time.time()}
        if "description" in body:
            changes["description"] = _schedule(body["description"])
        if "qualifier" in body:
            fn = await self._functions.get(namespace, function)
            changes["qualifier"] = await self._qualifier(fn, body["qualifier"])
        if "enabled" in body:
            changes["enabled"] = _enabled(body["enabled"])
        if "custom_argument" in body:
            changes["custom_argument"] = _custom_argument(body["custom_argument"])
        if "note" in body:
            changes["note"] = _note(body["note"])
        return await self._store.update_trigger(current.function_id, name, changes)

    async def set_enabled(self, namespace: str, function: str, name: str, on: bool) -> Trigger:
        """Open (``on``) or close a trigger; a closed timer does not fire. Idempotent."""
        return await self.update(namespace, function, name, {"enabled": on})

    async def delete(self, namespace: str, function: str, name: str) -> None:
        """Raises ``FunctionNotFound``, ``NotFound`` (``ResourceNotFound.Trigger``)."""
        current = await self.get(namespace, function, name)
        await self._store.delete_trigger(current.function_id, name)

    async def enabled_timers(self) -> builtins.list[Trigger]:
        """Every enabled timer of every namespace (the scheduler's read)."""
        timers = await self._store.list_triggers(type_=TriggerType.TIMER.value)
        return [t for t in timers if t.enabled]

    async def target(self, trigger: Trigger) -> Function | None:
        """The function as ``trigger`` runs it now (an alias picks per call), or ``None``
        when the function is gone. Raises ``NotFound`` (``ResourceNotFound.Qualifier``)
        when its qualifier was deleted since."""
        try:
            fn = await self._functions.get_cached(trigger.namespace, trigger.function_name)
        except NotFound:
            return None
        if fn.id != trigger.function_id:
            return None  # a new function of the same name; this trigger went with the old
        return await self._versions.resolve(fn, run_qualifier(trigger.qualifier))

    async def _qualifier(self, fn: Function, value: object) -> str:
        if not isinstance(value, str) or not value:
            raise InvalidParameter(
                "qualifier must be $LATEST, a published version's number or an alias",
                code="InvalidParameterValue.Qualifier",
            )
        await self._versions.resolve(fn, run_qualifier(value))
        return value


def run_qualifier(qualifier: str) -> str | None:
    """What :meth:`Versions.resolve` takes for a trigger's qualifier."""
    return None if qualifier == DEFAULT_QUALIFIER else qualifier


def check_type(kind: object) -> str:
    """The trigger kind, if cumulo serves it. Raises ``UnsupportedOperation`` (code
    ``UnsupportedOperation.Trigger``) naming what is served."""
    if isinstance(kind, str) and kind.lower() in SUPPORTED_TYPES:
        return kind.lower()
    raise UnsupportedOperation(
        f"trigger type {kind!r} is not supported: cumulo serves timer triggers only (cron "
        "schedules); invoke the function through the API for other event sources",
        code="UnsupportedOperation.Trigger",
    )


def _name(value: object) -> str:
    if not isinstance(value, str) or not TRIGGER_NAME.fullmatch(value):
        raise InvalidParameter(
            f"trigger name {value!r} is invalid: 1-100 letters, digits, '-' or '_', starting "
            "with a letter",
            code="InvalidParameterValue.TriggerName",
        )
    return value


def _schedule(value: object) -> str:
    if value is None:
        raise InvalidParameter(
            "a timer needs its cron expression, e.g. '0 */5 * * * * *' (every 5 minutes)",
            code="InvalidParameterValue.TriggerDesc",
        )
    return timer.parse(value).expression


def _enabled(value: object) -> bool:
    if not isinstance(value, bool):
        raise InvalidParameter("enabled must be true or false", code="InvalidParameterValue.Enable")
    return value


def _note(value: object) -> str:
    if not isinstance(value, str) or len(value) > MAX_NOTE:
        raise InvalidParameter(f"note must be text of at most {MAX_NOTE} characters", field="note")
    return value


def _custom_argument(value: object) -> str:
    if not isinstance(value, str) or len(value.encode()) > timer.MAX_MESSAGE_BYTES:
        raise InvalidParameter(
            f"custom_argument must be text of at most {timer.MAX_MESSAGE_BYTES} bytes; the "
            "timer delivers it as the event's Message",
            code="InvalidParameterValue.CustomArgument",
        )
    return value


def _reject_unknown(body: Mapping[str, Any], allowed: frozenset[str], hint: str = "") -> None:
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise InvalidParameter(
            f"unknown field(s) {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}"
            + (f" ({hint})" if hint else ""),
            code="UnknownParameter",
        )
