"""Console pages for functions: the list of a namespace (search, sort, last status,
invocations in the last hour)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from cumulo.console.render import page
from cumulo.console.session import Viewer, core_of, require
from cumulo.models import Function, Invocation, InvocationFilter, InvocationOrder

RUNTIME = "Python 3"
SORTS = ("name", "last", "hour", "timeout", "memory")


@dataclass(frozen=True, slots=True)
class Row:
    function: Function
    last: Invocation | None
    last_hour: int


async def namespaces_for(request: Request, viewer: Viewer) -> list[str]:
    """The namespaces the viewer may switch to."""
    if viewer.namespace is not None:
        return [viewer.namespace]
    return [ns.name for ns in await core_of(request).store.list_namespaces()]


async def function_rows(request: Request, namespace: str) -> list[Row]:
    store = core_of(request).store
    hour_ago = time.time() - 3600
    rows = []
    for fn in await core_of(request).functions.list(namespace):
        where = InvocationFilter(namespace=namespace, function_name=fn.name)
        last, _ = await store.search_invocations(where, InvocationOrder.CREATED, limit=1)
        recent = InvocationFilter(namespace=namespace, function_name=fn.name,
                                  created_after=hour_ago)  # fmt: skip
        _, count = await store.search_invocations(recent, limit=1)
        rows.append(Row(fn, last[0] if last else None, count))
    return rows


def _sort_key(sort: str) -> Any:
    keys: dict[str, Any] = {
        "name": lambda r: r.function.name,
        "last": lambda r: -(r.last.created_at if r.last else 0.0),
        "hour": lambda r: -r.last_hour,
        "timeout": lambda r: -r.function.timeout_s,
        "memory": lambda r: -r.function.memory_mb,
    }
    return keys.get(sort, keys["name"])


async def list_functions(request: Request) -> Response:
    namespace = request.path_params["ns"]
    viewer = await require(request, namespace)
    query = request.query_params.get("q", "").strip()
    sort = request.query_params.get("sort", "name")
    rows = [
        r
        for r in await function_rows(request, namespace)
        if query.lower() in r.function.name.lower()
    ]
    rows.sort(key=_sort_key(sort))
    return page(
        request,
        "functions.html",
        viewer=viewer,
        section="functions",
        namespaces=await namespaces_for(request, viewer),
        rows=rows,
        q=query,
        sort=sort if sort in SORTS else "name",
        runtime=RUNTIME,
    )


async def switch_namespace(request: Request) -> Response:
    namespace = request.query_params.get("ns", "default")
    await require(request, namespace)
    return RedirectResponse(f"/console/ns/{namespace}/functions", status_code=303)


routes = [
    Route("/switch", switch_namespace, methods=["GET"]),
    Route("/ns/{ns}/functions", list_functions, methods=["GET"]),
]
