"""Operational endpoints: health, Prometheus metrics, the OpenAPI document."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from prometheus_client import CONTENT_TYPE_LATEST
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from cumulo import __version__
from cumulo.api.http import json_response, node

if TYPE_CHECKING:
    pass


async def healthz(request: Request) -> Response:
    core = node(request)
    return json_response({"status": "ok", "node_id": core.settings.node_id, "version": __version__})


async def metrics(request: Request) -> Response:
    core = node(request)
    if not core.settings.metrics_public:
        core.authorize(request)
    body = core.metrics.render(await core.store.count_by_status(), core.pool.stats())
    return Response(body, media_type=CONTENT_TYPE_LATEST)


async def openapi(request: Request) -> Response:
    return json_response(openapi_document())


_OPERATIONS: list[tuple[str, str, str, str]] = [
    ("get", "/healthz", "health", "Liveness; no token needed"),
    ("get", "/metrics", "metrics", "Prometheus metrics"),
    ("get", "/v1/namespaces", "listNamespaces", "List namespaces"),
    ("post", "/v1/namespaces", "createNamespace", "Create a namespace"),
    ("patch", "/v1/namespaces/{ns}", "updateNamespace", 'Change the description: {"description"}'),
    ("delete", "/v1/namespaces/{ns}", "deleteNamespace", "Delete an empty namespace"),
    ("get", "/v1/namespaces/{ns}/functions", "listFunctions", "List functions"),
    ("post", "/v1/namespaces/{ns}/functions", "createFunction", "Create a function (201)"),
    ("get", "/v1/namespaces/{ns}/functions/{fn}", "getFunction", "Read a function"),
    ("patch", "/v1/namespaces/{ns}/functions/{fn}", "updateFunction",
     "Change configuration; async_run can never change (409)"),
    ("delete", "/v1/namespaces/{ns}/functions/{fn}", "deleteFunction", "Delete a function"),
    ("put", "/v1/namespaces/{ns}/functions/{fn}/code", "putCode", "Replace the code"),
    ("post", "/v1/namespaces/{ns}/functions/{fn}/invocations", "invoke",
     "Invoke: ?type=sync|async&qualifier=VERSION|ALIAS; body = event; header Idempotency-Key"),
    ("post", "/v1/namespaces/{ns}/functions/{fn}/versions", "publishVersion",
     "Publish the current code and configuration as the next version (201)"),
    ("get", "/v1/namespaces/{ns}/functions/{fn}/versions", "listVersions",
     "List $LATEST and the published versions"),
    ("delete", "/v1/namespaces/{ns}/functions/{fn}/versions/{version}", "deleteVersion",
     "Delete a version (409 while an alias routes to it)"),
    ("post", "/v1/namespaces/{ns}/functions/{fn}/aliases", "createAlias",
     'Create an alias: {"name", "function_version", "additional_weights", "description"}'),
    ("get", "/v1/namespaces/{ns}/functions/{fn}/aliases", "listAliases", "List aliases"),
    ("get", "/v1/namespaces/{ns}/functions/{fn}/aliases/{alias}", "getAlias", "Read an alias"),
    ("patch", "/v1/namespaces/{ns}/functions/{fn}/aliases/{alias}", "updateAlias",
     "Change an alias's version, weights or description"),
    ("delete", "/v1/namespaces/{ns}/functions/{fn}/aliases/{alias}", "deleteAlias",
     "Delete an alias"),
    ("post", "/v1/namespaces/{ns}/functions/{fn}/triggers", "createTrigger",
     'Create a trigger: {"name", "type": "timer", "description": CRON, "qualifier", '
     '"enabled", "custom_argument"}'),
    ("get", "/v1/namespaces/{ns}/functions/{fn}/triggers", "listTriggers", "List triggers"),
    ("get", "/v1/namespaces/{ns}/functions/{fn}/triggers/{name}", "getTrigger",
     "Read a trigger"),
    ("patch", "/v1/namespaces/{ns}/functions/{fn}/triggers/{name}", "updateTrigger",
     "Enable, disable or change a trigger"),
    ("delete", "/v1/namespaces/{ns}/functions/{fn}/triggers/{name}", "deleteTrigger",
     "Delete a trigger"),
    ("get", "/v1/namespaces/{ns}/invocations", "listInvocations",
     "List invocations, newest first: ?function=&status=&since=&until=&limit=&cursor="),
    ("get", "/v1/namespaces/{ns}/invocations/{id}", "getInvocation", "Read an invocation"),
    ("post", "/v1/namespaces/{ns}/invocations/{id}/terminate", "terminate",
     'Terminate: {"grace": bool}'),
    ("get", "/v1/namespaces/{ns}/invocations/{id}/logs", "logs",
     "Logs as JSON lines; ?follow=1 for SSE (Last-Event-ID resumes)"),
    ("get", "/v1/namespaces/{ns}/functions/{fn}/build", "getFunctionBuild",
     "The function's latest build: status, time, installed size, packages, reason"),
    ("get", "/v1/namespaces/{ns}/functions/{fn}/build/logs", "functionBuildLogs",
     "The latest build's log (NDJSON; ?follow=1 for SSE, as invocation logs)"),
    ("get", "/v1/builds/{id}", "getBuild", "Read a build (a function's or a layer version's)"),
    ("get", "/v1/builds/{id}/logs", "buildLogs", "A build's log (?follow=1 for SSE)"),
    ("get", "/v1/layers", "listLayers", "The newest version of each layer"),
    ("get", "/v1/layers/{name}/versions", "listLayerVersions", "The versions of a layer"),
    ("post", "/v1/layers/{name}/versions", "publishLayerVersion",
     "Publish a layer version (201): code, description, compatible_runtimes, license_info"),
    ("get", "/v1/layers/{name}/versions/{version}", "getLayerVersion", "Read a layer version"),
    ("delete", "/v1/layers/{name}/versions/{version}", "deleteLayerVersion",
     "Delete a layer version nothing uses"),
    ("post", "/v1/keys", "createKey",
     'Make an SCF API key: {"namespace": null|NS, "description"}; the secret is shown once'),
    ("get", "/v1/keys", "listKeys", "List API keys (never their secrets)"),
    ("delete", "/v1/keys/{secret_id}", "revokeKey", "Revoke an API key"),
    ("get", "/v1/code/{sha256}", "downloadCode",
     "A code package, by a signed link from SCF GetFunctionAddress (no token)"),
]  # fmt: skip


def openapi_document() -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for method, path, op_id, summary in _OPERATIONS:
        params = [
            {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
            for name in re.findall(r"{(\w+)}", path)
        ]
        op: dict[str, Any] = {
            "operationId": op_id,
            "summary": summary,
            "parameters": params,
            "responses": {
                "200": {"description": "OK"},
                "default": {
                    "description": "Error",
                    "content": {
                        "application/json": {"schema": {"$ref": "#/components/schemas/Error"}}
                    },
                },
            },
        }
        if path not in ("/healthz", "/v1/code/{sha256}"):
            op["security"] = [{"bearer": []}]
        paths.setdefault(path, {})[method] = op
    return {
        "openapi": "3.1.0",
        "info": {"title": "cumulo", "version": __version__},
        "paths": paths,
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "Error": {
                    "type": "object",
                    "properties": {
                        "error": {
                            "type": "object",
                            "properties": {
                                "code": {"type": "string"},
                                "message": {"type": "string"},
                            },
                            "required": ["code", "message"],
                        }
                    },
                }
            },
        },
    }


routes = [
    Route("/healthz", healthz, methods=["GET"]),
    Route("/metrics", metrics, methods=["GET"]),
    Route("/openapi.json", openapi, methods=["GET"]),
]
