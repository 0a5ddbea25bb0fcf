"""Console pages for functions: the list of a namespace (search, sort, last status,
invocations in the last hour) and the Create page (empty or from a template, code from the
editor or a zip). A function's own page is ``function_page.py``.

Every action calls the engine the REST API calls (``core.functions``); an engine error is
shown as its code and message in the page's alert, with what the user typed kept in the
form.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from cumulo.console import blueprints
from cumulo.console.forms import (
    form_integer,
    form_number,
    form_text,
    form_upload,
    parse_environment,
    read_form,
)
from cumulo.console.render import page
from cumulo.console.session import Viewer, core_of, require
from cumulo.engine import validation as v
from cumulo.engine.functions import DEFAULT_ASYNC_RUN_TIMEOUT_S, DEFAULT_HANDLER, DEFAULT_TIMEOUT_S
from cumulo.errors import CumuloError, InvalidParameter
from cumulo.models import Function, Invocation, InvocationFilter, InvocationOrder

RUNTIME = "Python 3"
SORTS = ("name", "last", "hour", "timeout", "memory")

#: Session key of the sample event offered to the Test panel of a function just created.
SAMPLE_EVENT_KEY = "sample_event"
#: Session key of what the last action on a function did, shown once on its page.
DONE_KEY = "function_done"
CREATE_FIELDS = (
    "name", "handler", "code", "timeout_s", "memory_mb", "environment", "description", "template",
)  # fmt: skip


# The function list ------------------------------------------------------------------------


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
        recent = InvocationFilter(
            namespace=namespace, function_name=fn.name, created_after=hour_ago
        )
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


def _blueprint_values(blueprint: blueprints.Blueprint) -> dict[str, str]:
    return {
        "template": blueprint.key,
        "name": blueprint.name,
        "handler": blueprint.handler,
        "code": blueprint.code,
        # Empty: the engine's default for the mode chosen (the field's placeholder says it).
        "timeout_s": "" if blueprint is blueprints.EMPTY else f"{blueprint.timeout_s:g}",
        "memory_mb": str(blueprint.memory_mb),
        "environment": "",
        "description": blueprint.description if blueprint is not blueprints.EMPTY else "",
        "async_run": "on" if blueprint.async_run else "",
    }


def _blueprints_json() -> dict[str, dict[str, str]]:
    """What the Create page's script fills the form with when a template is picked."""
    every = [blueprints.EMPTY, *blueprints.BLUEPRINTS.values()]
    return {b.key: _blueprint_values(b) for b in every}


async def _create_page(
    request: Request,
    viewer: Viewer,
    values: Mapping[str, str],
    error: tuple[str, str] | None = None,
    status_code: int = 200,
) -> Response:
    s = core_of(request).settings
    return page(
        request,
        "function_new.html",
        status_code=status_code,
        viewer=viewer,
        section="functions",
        namespaces=await namespaces_for(request, viewer),
        error=error,
        values=values,
        # Shown open again after a failed submit that had it on; otherwise closed.
        advanced_open=status_code != 200 and values.get("async_run") == "on",
        blueprints=list(blueprints.BLUEPRINTS.values()),
        empty=blueprints.EMPTY,
        blueprints_json=_blueprints_json(),
        max_sync_timeout_s=s.max_sync_timeout_s,
        max_async_timeout_s=s.max_async_timeout_s,
        default_timeout_s=DEFAULT_TIMEOUT_S,
        default_async_timeout_s=min(DEFAULT_ASYNC_RUN_TIMEOUT_S, s.max_async_timeout_s),
        max_zip_bytes=s.max_zip_bytes,
        memory_range=(v.MEMORY_MIN_MB, v.MEMORY_MAX_MB),
    )


async def new_function(request: Request) -> Response:
    namespace = request.path_params["ns"]
    viewer = await require(request, namespace)
    blueprint = blueprints.get(request.query_params.get("template")) or blueprints.EMPTY
    return await _create_page(request, viewer, _blueprint_values(blueprint))


async def _create_body(form: FormData, values: Mapping[str, str]) -> dict[str, Any]:
    """The engine's create body from the form; raises ``CumuloError`` on bad input."""
    name = v.check_name(values["name"].strip())
    handler = v.check_handler(values["handler"].strip() or DEFAULT_HANDLER)
    upload = form_upload(form, "zip_file")
    if upload is not None:
        data = await upload.read()
        code: dict[str, Any] = {"zip_base64": base64.b64encode(data).decode("ascii")}
    elif values["code"].strip():
        code = {"files": {v.handler_file(handler): values["code"]}}
    else:
        raise InvalidParameter(
            "the code is empty: write the handler in the editor or upload a zip", field="code"
        )
    body: dict[str, Any] = {
        "name": name,
        "handler": handler,
        "code": code,
        "async_run": values["async_run"] == "on",
        "environment": parse_environment(values["environment"]),
        "description": values["description"],
    }
    timeout_s = form_number(values["timeout_s"], "timeout_s", "timeout")
    if timeout_s is not None:
        body["timeout_s"] = timeout_s
    memory_mb = form_integer(values["memory_mb"], "memory_mb", "memory")
    if memory_mb is not None:
        body["memory_mb"] = memory_mb
    return body


async def create_function(request: Request) -> Response:
    namespace = request.path_params["ns"]
    viewer = await require(request, namespace)
    core = core_of(request)
    blank = _blueprint_values(blueprints.EMPTY)
    try:
        form = await read_form(request)
    except CumuloError as exc:
        return await _create_page(request, viewer, blank, (exc.code, exc.message), exc.http_status)
    values = {field: form_text(form, field) for field in CREATE_FIELDS}
    values["async_run"] = "on" if form.get("async_run") else ""
    try:
        fn = await core.functions.create(namespace, await _create_body(form, values))
    except CumuloError as exc:
        return await _create_page(request, viewer, values, (exc.code, exc.message), exc.http_status)
    blueprint = blueprints.get(values["template"])
    if blueprint is not None and blueprint is not blueprints.EMPTY:
        request.session[SAMPLE_EVENT_KEY] = [namespace, fn.name, blueprint.event]
    request.session[DONE_KEY] = "created"
    return RedirectResponse(f"/console/ns/{namespace}/functions/{fn.name}", status_code=303)


routes = [
    Route("/switch", switch_namespace, methods=["GET"]),
    Route("/ns/{ns}/functions", list_functions, methods=["GET"]),
    # Before a function's page: "new" is the Create page, not a function called so.
    Route("/ns/{ns}/functions/new", new_function, methods=["GET"]),
    Route("/ns/{ns}/functions/new", create_function, methods=["POST"]),
]
