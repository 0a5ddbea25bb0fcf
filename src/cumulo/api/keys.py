"""REST v1: API keys for the SCF API (admin token only)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from cumulo.api.http import authorized, iso, json_response, read_json
from cumulo.engine import validation as v
from cumulo.errors import InvalidParameter
from cumulo.models import ApiKey

if TYPE_CHECKING:
    pass


def key_json(key: ApiKey) -> dict[str, Any]:
    return {
        "secret_id": key.secret_id,
        "namespace": key.namespace,
        "description": key.description,
        "created_at": iso(key.created_at),
        "revoked_at": iso(key.revoked_at),
        "status": "revoked" if key.revoked_at is not None else "active",
    }


async def create_key(request: Request) -> Response:
    core = authorized(request)
    body = v.as_dict(await read_json(request))
    unknown = sorted(set(body) - {"namespace", "description"})
    if unknown:
        raise InvalidParameter(
            f"unknown field(s) {', '.join(unknown)}; allowed: description, namespace",
            code="UnknownParameter",
        )
    namespace = body.get("namespace")
    if namespace is not None and not isinstance(namespace, str):
        raise InvalidParameter("namespace must be a name or null (admin)", field="namespace")
    new = await core.keys.create(namespace, body.get("description", ""))
    return json_response({**key_json(new.key), "secret_key": new.secret_key}, 201)


async def list_keys(request: Request) -> Response:
    core = authorized(request)
    return json_response({"items": [key_json(k) for k in await core.keys.list()]})


async def revoke_key(request: Request) -> Response:
    core = authorized(request)
    key = await core.keys.revoke(request.path_params["secret_id"])
    return json_response(key_json(key))


routes = [
    Route("/v1/keys", create_key, methods=["POST"]),
    Route("/v1/keys", list_keys, methods=["GET"]),
    Route("/v1/keys/{secret_id}", revoke_key, methods=["DELETE"]),
]
