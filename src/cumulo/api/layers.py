"""REST v1: layers. ``POST /v1/layers/{name}/versions`` publishes the next version (body:
``code`` as for a function, ``description``, ``compatible_runtimes``, ``license_info``);
``GET /v1/layers`` lists the newest version of each layer; a version is read or deleted at
``/v1/layers/{name}/versions/{version}`` (a version in use cannot be deleted)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from cumulo.api.http import authorized, json_response, layer_json, read_json
from cumulo.engine import validation as v
from cumulo.errors import InvalidParameter


def _version(raw: str) -> int:
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 9:
        raise InvalidParameter(f"layer version {raw!r} is not a number", field="layer_version")
    return int(raw)


async def list_layers(request: Request) -> Response:
    core = authorized(request)
    return json_response({"items": [layer_json(layer) for layer in await core.layers.latest()]})


async def list_versions(request: Request) -> Response:
    core = authorized(request)
    items = await core.layers.list_versions(request.path_params["name"])
    return json_response({"items": [layer_json(layer) for layer in items]})


async def publish(request: Request) -> Response:
    core = authorized(request)
    body = v.as_dict(await read_json(request))
    layer = await core.layers.publish(request.path_params["name"], body)
    return json_response(layer_json(layer), 201)


async def get_version(request: Request) -> Response:
    core = authorized(request)
    name, version = request.path_params["name"], _version(request.path_params["version"])
    return json_response(layer_json(await core.layers.get(name, version)))


async def delete_version(request: Request) -> Response:
    core = authorized(request)
    name, version = request.path_params["name"], _version(request.path_params["version"])
    await core.layers.delete(name, version)
    return Response(status_code=204)


routes = [
    Route("/v1/layers", list_layers, methods=["GET"]),
    Route("/v1/layers/{name}/versions", list_versions, methods=["GET"]),
    Route("/v1/layers/{name}/versions", publish, methods=["POST"]),
    Route("/v1/layers/{name}/versions/{version}", get_version, methods=["GET"]),
    Route("/v1/layers/{name}/versions/{version}", delete_version, methods=["DELETE"]),
]
