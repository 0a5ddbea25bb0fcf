"""REST v1: a function's triggers (timers).

::

    POST   /v1/namespaces/{ns}/functions/{fn}/triggers          create (201)
    GET    /v1/namespaces/{ns}/functions/{fn}/triggers          list, oldest first
    GET    /v1/namespaces/{ns}/functions/{fn}/triggers/{name}   read
    PATCH  /v1/namespaces/{ns}/functions/{fn}/triggers/{name}   change (description,
                                                                qualifier, enabled,
                                                                custom_argument)
    DELETE /v1/namespaces/{ns}/functions/{fn}/triggers/{name}   delete (204)

Body: ``name``, ``type`` (``timer``, the default and only kind served), ``description`` (the
cron expression), ``qualifier`` (default ``$LATEST``), ``enabled`` (default true),
``custom_argument`` (the timer event's ``Message``). Answers add ``next_fire_at`` (ISO 8601,
UTC; null when the trigger is disabled or never fires again).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from cumulo.api.http import authorized, iso, json_response, read_json
from cumulo.engine import validation as v
from cumulo.errors import CumuloError
from cumulo.models import Trigger
from cumulo.triggers import timer

if TYPE_CHECKING:
    pass


def trigger_json(trigger: Trigger) -> dict[str, Any]:
    return {
        "name": trigger.name,
        "namespace": trigger.namespace,
        "function": trigger.function_name,
        "type": trigger.type,
        "description": trigger.description,
        "qualifier": trigger.qualifier,
        "enabled": trigger.enabled,
        "custom_argument": trigger.custom_argument,
        "note": trigger.note,
        "next_fire_at": iso(next_fire(trigger)),
        "created_at": iso(trigger.created_at),
        "updated_at": iso(trigger.updated_at),
    }


def next_fire(trigger: Trigger) -> float | None:
    """When an enabled timer fires next (Unix seconds), else ``None``."""
    if not trigger.enabled:
        return None
    try:
        return timer.parse(trigger.description).next_after(time.time())
    except CumuloError:
        return None


def _where(request: Request) -> tuple[str, str]:
    return request.path_params["ns"], request.path_params["fn"]


async def create_trigger(request: Request) -> Response:
    core = authorized(request)
    body = v.as_dict(await read_json(request))
    trigger = await core.triggers.create(*_where(request), body)
    return json_response(trigger_json(trigger), 201)


async def list_triggers(request: Request) -> Response:
    core = authorized(request)
    items = await core.triggers.list(*_where(request))
    return json_response({"items": [trigger_json(t) for t in items]})


async def get_trigger(request: Request) -> Response:
    core = authorized(request)
    trigger = await core.triggers.get(*_where(request), request.path_params["name"])
    return json_response(trigger_json(trigger))


async def update_trigger(request: Request) -> Response:
    core = authorized(request)
    body = v.as_dict(await read_json(request))
    trigger = await core.triggers.update(*_where(request), request.path_params["name"], body)
    return json_response(trigger_json(trigger))


async def delete_trigger(request: Request) -> Response:
    core = authorized(request)
    await core.triggers.delete(*_where(request), request.path_params["name"])
    return Response(status_code=204)


FN = "/v1/namespaces/{ns}/functions/{fn}"

routes = [
    Route(FN + "/triggers", create_trigger, methods=["POST"]),
    Route(FN + "/triggers", list_triggers, methods=["GET"]),
    Route(FN + "/triggers/{name}", get_trigger, methods=["GET"]),
    Route(FN + "/triggers/{name}", update_trigger, methods=["PATCH"]),
    Route(FN + "/triggers/{name}", delete_trigger, methods=["DELETE"]),
]
