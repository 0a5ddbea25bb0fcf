"""REST v1: namespaces and functions."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from cumulo.api.http import (
    authorized,
    function_json,
    json_response,
    namespace_json,
    read_body,
    read_json,
)
from cumulo.engine import validation as v
from cumulo.errors import InvalidParameter
from cumulo.models import Namespace

if TYPE_CHECKING:
    pass


async def list_namespaces(request: Request) -> Response:
    core = authorized(request)
    items = await core.store.list_namespaces()
    return json_response({"items": [namespace_json(ns) for ns in items]})


async def create_namespace(request: Request) -> Response:
    core = authorized(request)
    body = v.as_dict(await read_json(request))
    name = v.check_name(body.get("name"))
    description = v.check_description(body.get("description", ""))
    ns = await core.store.create_namespace(Namespace(name, description, time.time()))
    return json_response(namespace_json(ns), 201)


async def update_namespace(request: Request) -> Response:
    core = authorized(request)
    body = v.as_dict(await read_json(request))
    description = v.check_description(body.get("description", ""))
    ns = await core.store.update_namespace(request.path_params["ns"], description)
    return json_response(namespace_json(ns))


async def delete_namespace(request: Request) -> Response:
    core = authorized(request)
    await core.store.delete_namespace(request.path_params["ns"])
    return Response(status_code=204)


async def list_functions(request: Request) -> Response:
    core = authorized(request)
    items = await core.functions.list(request.path_params["ns"])
    return json_response({"items": [function_json(fn) for fn in items]})


async def create_function(request: Request) -> Response:
    core = authorized(request)
    body = v.as_dict(await read_json(request))
    fn = await core.functions.create(request.path_params["ns"], body)
    return json_response(function_json(fn), 201)


async def get_function(request: Request) -> Response:
    core = authorized(request)
    fn = await core.functions.get(request.path_params["ns"], request.path_params["fn"])
    return json_response(function_json(fn))


async def patch_function(request: Request) -> Response:
    core = authorized(request)
    body = v.as_dict(await read_json(request))
    fn = await core.functions.patch(request.path_params["ns"], request.path_params["fn"], body)
    return json_response(function_json(fn))


async def put_code(request: Request) -> Response:
    core = authorized(request)
    handler = request.query_params.get("handler")
    content_type = request.headers.get("content-type", "").split(";")[0].strip()
    install = request.query_params.get("install_dependency", "true").lower() not in (
        "0", "false", "no"
    )  # fmt: skip
    if content_type in ("application/zip", "application/octet-stream"):
        raw = await read_body(request, core.settings.max_zip_bytes)
        package = v.check_zip(raw, core.settings)
    else:
        body: dict[str, Any] = v.as_dict(await read_json(request))
        handler = body.get("handler", handler)
        if handler is not None and not isinstance(handler, str):
            raise InvalidParameter("handler must be a string", field="handler")
        install = body.get("install_dependency", install)
        if not isinstance(install, bool):
            raise InvalidParameter(
                "install_dependency must be true or false", field="install_dependency"
            )
        code = body.get("code", body)
        package = v.package_code(code, core.settings)
    fn = await core.functions.put_code(
        request.path_params["ns"], request.path_params["fn"], package, handler, install
    )
    return json_response(function_json(fn))


async def delete_function(request: Request) -> Response:
    core = authorized(request)
    await core.functions.delete(request.path_params["ns"], request.path_params["fn"])
    return Response(status_code=204)


FN = "/v1/namespaces/{ns}/functions/{fn}"

routes = [
    Route("/v1/namespaces", list_namespaces, methods=["GET"]),
    Route("/v1/namespaces", create_namespace, methods=["POST"]),
    Route("/v1/namespaces/{ns}", update_namespace, methods=["PATCH"]),
    Route("/v1/namespaces/{ns}", delete_namespace, methods=["DELETE"]),
    Route("/v1/namespaces/{ns}/functions", list_functions, methods=["GET"]),
    Route("/v1/namespaces/{ns}/functions", create_function, methods=["POST"]),
    Route(FN, get_function, methods=["GET"]),
    Route(FN, patch_function, methods=["PATCH"]),
    Route(FN, delete_function, methods=["DELETE"]),
    Route(FN + "/code", put_code, methods=["PUT"]),
]
