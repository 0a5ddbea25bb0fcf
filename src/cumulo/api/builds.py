"""REST v1: builds (of a function's code, or a layer version's) and their logs.

``GET /v1/namespaces/{ns}/functions/{fn}/build`` is the function's latest build and
``…/build/logs[?follow=1]`` its log (NDJSON, or SSE followed live, as for invocations);
``/v1/builds/{id}`` and ``/v1/builds/{id}/logs`` reach any build by id (a layer version's).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from cumulo.api.http import authorized, build_json, json_response
from cumulo.api.invocations import EndCheck, log_response
from cumulo.errors import NotFound
from cumulo.models import Build, BuildStatus

if TYPE_CHECKING:
    from cumulo.app import Cumulo


async def _latest(core: Cumulo, ns: str, name: str) -> Build:
    fn = await core.functions.get(ns, name)
    if fn.build_id is None:
        raise NotFound(
            f"function {name} has no build: its code has no requirements.txt to install",
            code="ResourceNotFound.Build",
        )
    return await core.store.get_build(fn.build_id)


def build_end(core: Cumulo, build_id: str) -> EndCheck:
    async def ended() -> dict[str, object] | None:
        build = await core.store.get_build(build_id)
        if build.status is BuildStatus.BUILDING:
            return None
        return {"build_id": build_id, "status": build.status.value, "reason": build.reason}

    return ended


async def get_function_build(request: Request) -> Response:
    core = authorized(request)
    build = await _latest(core, request.path_params["ns"], request.path_params["fn"])
    return json_response(build_json(build))


async def function_build_logs(request: Request) -> Response:
    core = authorized(request)
    build = await _latest(core, request.path_params["ns"], request.path_params["fn"])
    return log_response(core, request, build.id, build_end(core, build.id))


async def get_build(request: Request) -> Response:
    core = authorized(request)
    return json_response(build_json(await core.store.get_build(request.path_params["id"])))


async def build_logs(request: Request) -> Response:
    core = authorized(request)
    build = await core.store.get_build(request.path_params["id"])
    return log_response(core, request, build.id, build_end(core, build.id))


FN = "/v1/namespaces/{ns}/functions/{fn}"

routes = [
    Route(FN + "/build", get_function_build, methods=["GET"]),
    Route(FN + "/build/logs", function_build_logs, methods=["GET"]),
    Route("/v1/builds/{id}", get_build, methods=["GET"]),
    Route("/v1/builds/{id}/logs", build_logs, methods=["GET"]),
]
