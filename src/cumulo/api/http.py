"""What every HTTP handler shares: JSON responses, error translation, auth, bounded body
reads, and the JSON shapes of functions and invocations."""

from __future__ import annotations

import hmac
import logging
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import orjson
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from cumulo.errors import CumuloError, MalformedJSON, PayloadTooLarge, Unauthorized
from cumulo.models import Build, Function, Invocation, LayerVersion, Namespace

if TYPE_CHECKING:
    from cumulo.app import Cumulo

log = logging.getLogger(__name__)

#: Bodies of management calls (create function with a base64 zip) may be this large.
MAX_MANAGEMENT_BODY_BYTES = 72 * 1024 * 1024


class OrjsonResponse(JSONResponse):
    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


def json_response(
    content: Any, status_code: int = 200, headers: dict[str, str] | None = None
) -> Response:
    return OrjsonResponse(content, status_code=status_code, headers=headers)


def error_response(exc: CumuloError) -> Response:
    headers = {}
    retry_after = getattr(exc, "retry_after_s", None)
    if retry_after is not None:
        headers["Retry-After"] = str(max(1, round(retry_after + 0.499)))
    return json_response(exc.to_dict(), exc.http_status, headers)


def node(request: Request) -> Cumulo:
    """The node serving ``request`` (no authorization check)."""
    core: Cumulo = request.app.state.cumulo
    return core


def authorized(request: Request) -> Cumulo:
    """The node serving ``request``, once its bearer token is checked (``Unauthorized``)."""
    core = node(request)
    core.authorize(request)
    return core


def check_token(request: Request, token: str) -> None:
    check_authorization(request.headers.get("authorization", "").encode("latin-1"), token)


def check_authorization(header: bytes | None, token: str) -> None:
    """Raise ``Unauthorized`` unless ``header`` is ``Bearer <token>`` (scheme in any case);
    compared in constant time."""
    scheme, _, value = (header or b"").partition(b" ")
    if scheme.lower() != b"bearer" or not value.strip():
        raise Unauthorized(
            "missing token: send 'Authorization: Bearer <token>' (the admin token is in "
            "<data-dir>/admin.token)"
        )
    if not hmac.compare_digest(value.strip(), token.encode()):
        raise Unauthorized("invalid token")


async def read_body(request: Request, limit: int) -> bytes:
    """The whole body, refusing (413) anything over ``limit`` bytes without reading it all."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isascii() and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"request body is {declared} bytes; at most {limit} are allowed")
    chunks = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"request body is over {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


async def read_json(request: Request, limit: int = MAX_MANAGEMENT_BODY_BYTES) -> Any:
    body = await read_body(request, limit)
    if not body.strip():
        return {}
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise MalformedJSON(f"the request body is not valid JSON: {exc}") from exc


def iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def namespace_json(ns: Namespace) -> dict[str, Any]:
    return {"name": ns.name, "description": ns.description, "created_at": iso(ns.created_at)}


def function_json(fn: Function) -> dict[str, Any]:
    return {
        "name": fn.name,
        "namespace": fn.namespace,
        "handler": fn.handler,
        "code_sha256": fn.code_sha256,
        "code_size_bytes": fn.code_size_bytes,
        "timeout_s": fn.timeout_s,
        "memory_mb": fn.memory_mb,
        "environment": dict(fn.environment),
        "async_run": fn.async_run,
        "max_qps": fn.max_qps,
        "max_concurrency": fn.max_concurrency,
        "retry_attempts": fn.retry_attempts,
        "max_event_age_s": fn.max_event_age_s,
        "description": fn.description,
        "revision": fn.revision,
        "version": fn.version,
        "created_at": iso(fn.created_at),
        "updated_at": iso(fn.updated_at),
        "state": fn.state.value,
        "state_reason": fn.state_reason,
        "scf_status": fn.scf_status,
        "ready": fn.ready,
        "environment_id": fn.deps_key,
        "layers": [{"name": ref.name, "version": ref.version} for ref in fn.layers],
        "install_dependency": fn.install_dependency,
        "build_id": fn.build_id,
    }


def build_json(build: Build) -> dict[str, Any]:
    return {
        "id": build.id,
        "status": build.status.value,
        "namespace": build.namespace or None,
        "function": build.function_name or None,
        "layer": None
        if build.layer_name is None
        else {"name": build.layer_name, "version": build.layer_version},
        "code_sha256": build.target.code_sha256,
        "handler": build.target.handler or None,
        "created_at": iso(build.created_at),
        "finished_at": iso(build.finished_at),
        "duration_ms": build.duration_ms,
        "environment_id": build.deps_key,
        "reused": build.reused,
        "installed_bytes": build.installed_bytes,
        "packages": [{"name": name, "version": version} for name, version in build.packages],
        "reason": build.reason,
    }


def layer_json(layer: LayerVersion) -> dict[str, Any]:
    return {
        "name": layer.name,
        "version": layer.version,
        "description": layer.description,
        "code_sha256": layer.code_sha256,
        "code_size_bytes": layer.code_size_bytes,
        "unpacked_bytes": layer.unpacked_bytes,
        "compatible_runtimes": list(layer.compatible_runtimes),
        "license_info": layer.license_info,
        "state": layer.state.value,
        "state_reason": layer.state_reason,
        "scf_status": layer.scf_status,
        "environment_id": layer.deps_key,
        "build_id": layer.build_id,
        "created_at": iso(layer.created_at),
    }


def invocation_json(inv: Invocation) -> dict[str, Any]:
    return {
        "request_id": inv.request_id,
        "namespace": inv.namespace,
        "function": inv.function_name,
        "function_version": inv.function_version,
        "type": inv.type.value,
        "async_run": inv.async_run,
        "status": inv.status.value,
        "scf_status": inv.status.scf_name,
        "result": orjson.Fragment(inv.result) if inv.result is not None else None,
        "error": dict(inv.error) if inv.error is not None else None,
        "attempt": inv.attempt,
        "max_attempts": inv.max_attempts,
        "dead_lettered": inv.dead_lettered,
        "created_at": iso(inv.created_at),
        "started_at": iso(inv.started_at),
        "finished_at": iso(inv.finished_at),
        "duration_ms": inv.duration_ms,
        "billed_duration_ms": inv.billed_duration_ms,
        "peak_memory_mb": inv.peak_memory_mb,
        "idempotency_key": inv.idempotency_key,
    }
