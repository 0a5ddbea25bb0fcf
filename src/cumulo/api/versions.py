"""REST v1: versions and aliases of a function."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from cumulo.api.http import authorized, function_json, iso, json_response, read_json
from cumulo.engine import validation as v
from cumulo.errors import InvalidParameter
from cumulo.models import Alias, FunctionVersion

if TYPE_CHECKING:
    pass


def version_json(version: FunctionVersion) -> dict[str, Any]:
    return {
        **function_json(version.function),
        "version": str(version.version),
        "version_description": version.description,
        "published_at": iso(version.created_at),
    }


def alias_json(alias: Alias) -> dict[str, Any]:
    return {
        "name": alias.name,
        "function_version": alias.function_version,
        "additional_weights": dict(alias.additional_weights),
        "description": alias.description,
        "created_at": iso(alias.created_at),
        "updated_at": iso(alias.updated_at),
    }


def _where(request: Request) -> tuple[str, str]:
    return request.path_params["ns"], request.path_params["fn"]


async def publish_version(request: Request) -> Response:
    core = authorized(request)
    body = v.as_dict(await read_json(request))
    _known_fields(body, frozenset({"description"}))
    description = body.get("description", "")
    if not isinstance(description, str):
        raise InvalidParameter("description must be text", field="description")
    version = await core.versions.publish(*_where(request), description)
    return json_response(version_json(version), 201)


async def list_versions(request: Request) -> Response:
    core = authorized(request)
    fn, versions = await core.versions.list_versions(*_where(request))
    latest = {**function_json(fn), "version": "$LATEST"}
    return json_response({"items": [latest, *(version_json(x) for x in versions)]})


async def delete_version(request: Request) -> Response:
    core = authorized(request)
    await core.versions.delete(*_where(request), request.path_params["version"])
    return Response(status_code=204)


def _known_fields(body: dict[str, Any], allowed: frozenset[str]) -> None:
    """Refuse a field this endpoint does not know rather than ignore it (a misspelt
    ``weights`` must not silently make an alias without a split)."""
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise InvalidParameter(
            f"unknown field(s) {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}",
            code="UnknownParameter",
        )


_ALIAS_FIELDS = frozenset({"function_version", "additional_weights", "description"})


async def create_alias(request: Request) -> Response:
    core = authorized(request)
    body = v.as_dict(await read_json(request))
    _known_fields(body, _ALIAS_FIELDS | {"name"})
    alias = await core.versions.create_alias(*_where(request), body)
    return json_response(alias_json(alias), 201)


async def list_aliases(request: Request) -> Response:
    core = authorized(request)
    items = await core.versions.list_aliases(*_where(request))
    return json_response({"items": [alias_json(a) for a in items]})


async def get_alias(request: Request) -> Response:
    core = authorized(request)
    alias = await core.versions.get_alias(*_where(request), request.path_params["alias"])
    return json_response(alias_json(alias))


async def update_alias(request: Request) -> Response:
    core = authorized(request)
    body = v.as_dict(await read_json(request))
    _known_fields(body, _ALIAS_FIELDS)
    alias = await core.versions.update_alias(*_where(request), request.path_params["alias"], body)
    return json_response(alias_json(alias))


async def delete_alias(request: Request) -> Response:
    core = authorized(request)
    await core.versions.delete_alias(*_where(request), request.path_params["alias"])
    return Response(status_code=204)


FN = "/v1/namespaces/{ns}/functions/{fn}"

routes = [
    Route(FN + "/versions", publish_version, methods=["POST"]),
    Route(FN + "/versions", list_versions, methods=["GET"]),
    Route(FN + "/versions/{version}", delete_version, methods=["DELETE"]),
    Route(FN + "/aliases", create_alias, methods=["POST"]),
    Route(FN + "/aliases", list_aliases, methods=["GET"]),
    Route(FN + "/aliases/{alias}", get_alias, methods=["GET"]),
    Route(FN + "/aliases/{alias}", update_alias, methods=["PATCH"]),
    Route(FN + "/aliases/{alias}", delete_alias, methods=["DELETE"]),
]
