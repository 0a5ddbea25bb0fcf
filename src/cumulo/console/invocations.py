"""Console pages for invocations: the list of a namespace (filters, paging, auto-refresh),
one invocation (status, timings, result or error, the live log over SSE, terminate), and
the panels the function page shows (its latest invocations and its charts).

The live log is the REST API's follower (``api.invocations.follow_logs``) behind the session
instead of a bearer token: the same events (``log`` with ``id`` = seq, then ``end`` with the
status), resumable with ``Last-Event-ID``.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

import orjson
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import Route

from cumulo.api.invocations import follow_logs
from cumulo.console.charts import function_charts
from cumulo.console.functions import namespaces_for
from cumulo.console.render import page, templates
from cumulo.console.session import check_csrf, core_of, csrf_token, require
from cumulo.errors import CumuloError, InvalidParameter, NotFound
from cumulo.models import (
    Function,
    Invocation,
    InvocationFilter,
    InvocationOrder,
    Status,
    TerminateMode,
)

#: Rows per page of the list.
PAGE_SIZE = 50
#: Invocations the function page lists.
RECENT = 20
#: ``range`` choices of the list: label and span in seconds (None: no lower bound).
RANGES: dict[str, tuple[str, int | None]] = {
    "15m": ("Last 15 minutes", 15 * 60),
    "1h": ("Last hour", 3_600),
    "24h": ("Last 24 hours", 86_400),
    "7d": ("Last 7 days", 7 * 86_400),
    "all": ("Any time", None),
}
DEFAULT_RANGE = "24h"
STATUS_VALUES = [s.value for s in Status]
#: After a terminate, the page waits this long for the run to end before showing it, so
#: a forced stop usually shows ``terminated`` at once; the live view catches later ends.
TERMINATE_WAIT_S = 2.0
#: Pages past this are refused (deeper pages are better reached with filters).
MAX_PAGE = 100_000
TERMINATE_MODES = {m.value for m in TerminateMode}
#: An event or result longer than this (6 MB for a sync call) is shown cut.
MAX_SHOWN_CHARS = 200_000


@dataclass(frozen=True, slots=True)
class ListQuery:
    """The list's filters as read from the query string, and what was wrong with them."""

    statuses: list[str]
    function: str
    range: str
    since: str
    until: str
    page: int
    refresh: bool
    where: InvocationFilter
    errors: list[tuple[str, str]]

    def url(self, **changes: Any) -> str:
        """This query as a query string, with ``changes`` (None drops a key)."""
        values: dict[str, Any] = {
            "status": self.statuses,
            "function": self.function,
            "range": self.range,
            "from": self.since,
            "to": self.until,
            "page": self.page if self.page > 1 else None,
            "refresh": "1" if self.refresh else None,
        }
        values.update(changes)
        pairs = []
        for key, value in values.items():
            for item in value if isinstance(value, list) else [value]:
                if item not in (None, ""):
                    pairs.append((key, str(item)))
        return "?" + urlencode(pairs)


def _parse_time(raw: str, field: str, errors: list[tuple[str, str]]) -> float | None:
    """A ``datetime-local`` value (UTC, as the console shows times) or an ISO 8601 time."""
    if not raw:
        return None
    try:
        moment = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        errors.append(
            (
                f"InvalidParameterValue.{field.capitalize()}",
                f"{field} {raw!r} is not a time: use YYYY-MM-DDTHH:MM (UTC)",
            )
        )
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def list_query(request: Request, namespace: str, now: float) -> ListQuery:
    q = request.query_params
    errors: list[tuple[str, str]] = []
    statuses: list[str] = []
    for raw in q.getlist("status"):
        for value in raw.split(","):
            value = value.strip().lower()
            if not value:
                continue
            if value in STATUS_VALUES:
                statuses.append(value)
            else:
                allowed = ", ".join(s.value for s in Status)
                errors.append(
                    (
                        "InvalidParameterValue.Status",
                        f"status {value!r} is unknown; use {allowed}",
                    )
                )
    function = q.get("function", "").strip()
    since_raw, until_raw = q.get("from", "").strip(), q.get("to", "").strip()
    # From/to count with range=custom, or alone; a preset range wins over them.
    range_key = q.get("range") or ("custom" if since_raw or until_raw else DEFAULT_RANGE)
    if range_key not in RANGES and range_key != "custom":
        errors.append(
            (
                "InvalidParameterValue.Range",
                f"range {range_key!r} is unknown; use one of {', '.join(RANGES)} or custom",
            )
        )
        range_key = DEFAULT_RANGE
    if range_key == "custom":
        since = _parse_time(since_raw, "from", errors)
        until = _parse_time(until_raw, "to", errors)
    else:
        span = RANGES[range_key][1]
        since, until = (None if span is None else now - span), None
    try:
        page_number = max(1, int(q.get("page", "1")))
        if page_number > MAX_PAGE:
            raise ValueError(page_number)
    except ValueError:
        errors.append(
            ("InvalidParameterValue.Page", f"page must be a whole number up to {MAX_PAGE}")
        )
        page_number = 1
    where = InvocationFilter(
        namespace=namespace,
        function_name=function or None,
        status=frozenset(Status(s) for s in statuses) or None,
        created_after=since,
        created_before=until,
    )
    return ListQuery(
        statuses=sorted(set(statuses), key=STATUS_VALUES.index),
        function=function,
        range=range_key,
        since=since_raw if range_key == "custom" else "",
        until=until_raw if range_key == "custom" else "",
        page=page_number,
        refresh=q.get("refresh", "") in ("1", "on", "true"),
        where=where,
        errors=errors,
    )


def fragment(request: Request, template: str, block: str, **context: Any) -> HTMLResponse:
    """Only ``block`` of ``template``, for the pages' live updates (``?partial=1``)."""
    tmpl = templates.get_template(template)
    base = {
        "request": request,
        "csrf": csrf_token(request),
        "namespace": request.path_params.get("ns", "default"),
        "error": None,
    }
    ctx = tmpl.new_context({**base, **context})
    return HTMLResponse("".join(tmpl.blocks[block](ctx)), headers={"Cache-Control": "no-store"})


async def list_page(request: Request) -> Response:
    namespace = request.path_params["ns"]
    viewer = await require(request, namespace)
    core = core_of(request)
    now = time.time()
    query = list_query(request, namespace, now)
    errors = list(query.errors)
    items: list[Invocation] = []
    total = 0
    try:
        items, total = await core.store.search_invocations(
            query.where,
            InvocationOrder.CREATED,
            offset=(query.page - 1) * PAGE_SIZE,
            limit=PAGE_SIZE,
        )
    except CumuloError as exc:
        errors.append((exc.code, exc.message))
    context: dict[str, Any] = {
        "items": items,
        "total": total,
        "query": query,
        "first": (query.page - 1) * PAGE_SIZE + 1,
        "last": (query.page - 1) * PAGE_SIZE + len(items),
        "has_next": query.page * PAGE_SIZE < total,
        "now": now,
    }
    if request.query_params.get("partial"):
        return fragment(request, "invocations.html", "results", **context)
    names = [fn.name for fn in await core.functions.list(namespace)]
    if query.function and query.function not in names:
        names.append(query.function)
    return page(
        request,
        "invocations.html",
        status_code=400 if query.errors else 200,
        viewer=viewer,
        section="invocations",
        namespaces=await namespaces_for(request, viewer),
        error=errors[0] if errors else None,
        functions=sorted(names),
        ranges=RANGES,
        statuses=STATUS_VALUES,
        **context,
    )


def pretty_json(text: str | None) -> str | None:
    """JSON text indented for reading; other text as it is."""
    if text is None:
        return None
    try:
        return orjson.dumps(orjson.loads(text), option=orjson.OPT_INDENT_2).decode()
    except orjson.JSONDecodeError:
        return text


async def _detail_context(request: Request, inv: Invocation) -> dict[str, Any]:
    core = core_of(request)
    function: Function | None
    try:
        function = await core.functions.get(inv.namespace, inv.function_name)
    except NotFound:
        function = None
    result, result_cut = _shown(pretty_json(inv.result))
    event, event_cut = _shown(pretty_json(inv.event))
    terminated = request.query_params.get("terminated")
    return {
        "inv": inv,
        "function": function,
        "result": result,
        "result_cut": result_cut,
        "event": event,
        "event_cut": event_cut,
        # Changes whenever the live part of the page does; logs.js swaps it in then.
        "state": f"{inv.status.value}:{inv.attempt}:{inv.terminate_mode or ''}",
        "terminated": terminated if terminated in TERMINATE_MODES else None,
        "grace_s": core.settings.graceful_terminate_s,
    }


def _shown(text: str | None) -> tuple[str | None, int | None]:
    """``text`` cut to what a page shows, and the cut length when it was cut."""
    if text is None or len(text) <= MAX_SHOWN_CHARS:
        return text, None
    return text[:MAX_SHOWN_CHARS], MAX_SHOWN_CHARS


async def _not_found(request: Request, exc: CumuloError) -> Response:
    viewer = await require(request)
    return page(
        request,
        "error.html",
        status_code=exc.http_status,
        viewer=viewer,
        error=(exc.code, exc.message),
        status=exc.http_status,
        message=exc.message,
    )


async def detail_page(request: Request) -> Response:
    namespace, rid = request.path_params["ns"], request.path_params["rid"]
    viewer = await require(request, namespace)
    try:
        inv = await core_of(request).store.get_invocation(namespace, rid)
    except NotFound as exc:
        return await _not_found(request, exc)
    context = await _detail_context(request, inv)
    if request.query_params.get("partial"):
        return fragment(request, "invocation.html", "live", **context)
    return page(
        request,
        "invocation.html",
        viewer=viewer,
        section="invocations",
        namespaces=await namespaces_for(request, viewer),
        **context,
    )


async def log_stream(request: Request) -> Response:
    """The live log as server-sent events, exactly as REST ``logs?follow=1`` sends it."""
    namespace, rid = request.path_params["ns"], request.path_params["rid"]
    await require(request, namespace)
    core = core_of(request)
    try:
        await core.store.get_invocation(namespace, rid)
    except NotFound as exc:
        return Response(f"{exc.code}: {exc.message}", status_code=404, media_type="text/plain")
    raw = request.headers.get("last-event-id") or request.query_params.get("after", "0")
    after = int(raw) if raw.isascii() and raw.isdigit() and len(raw) <= 18 else 0
    return StreamingResponse(
        follow_logs(core, namespace, rid, after),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


async def terminate(request: Request) -> Response:
    namespace, rid = request.path_params["ns"], request.path_params["rid"]
    viewer = await require(request, namespace)
    form = await request.form()
    await check_csrf(request, form.get("csrf"))
    core = core_of(request)
    raw_mode = str(form.get("mode", TerminateMode.GRACEFUL.value))
    try:
        inv = await core.store.get_invocation(namespace, rid)
        try:
            mode = TerminateMode(raw_mode)
        except ValueError:
            raise InvalidParameter(
                f"mode {raw_mode!r} is unknown; choose graceful or force", field="mode"
            ) from None
        inv = await core.terminate(namespace, rid, mode)
    except NotFound as exc:
        return await _not_found(request, exc)
    except CumuloError as exc:
        return page(
            request,
            "invocation.html",
            status_code=exc.http_status,
            viewer=viewer,
            section="invocations",
            namespaces=await namespaces_for(request, viewer),
            error=(exc.code, exc.message),
            **await _detail_context(request, inv),
        )
    deadline = time.monotonic() + TERMINATE_WAIT_S
    while not inv.status.terminal and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
        inv = await core.store.get_invocation(namespace, rid)
    return RedirectResponse(
        f"/console/ns/{namespace}/invocations/{rid}?terminated={mode.value}", status_code=303
    )


async def invocation_panels(request: Request, fn: Function) -> dict[str, Any]:
    """What the function page needs for ``_function_invocations.html`` (``recent``: the
    latest invocations, newest first) and ``_function_charts.html`` (``charts``, over the
    page's ``?range=1h|1d``)."""
    store = core_of(request).store
    where = InvocationFilter(namespace=fn.namespace, function_name=fn.name)
    recent, total = await store.search_invocations(where, InvocationOrder.CREATED, limit=RECENT)
    charts = await function_charts(store, fn.namespace, fn.name, request.query_params.get("range"))
    return {"recent": recent, "recent_total": total, "charts": charts}


INV = "/ns/{ns}/invocations/{rid}"

routes = [
    Route("/ns/{ns}/invocations", list_page, methods=["GET"]),
    Route(INV, detail_page, methods=["GET"]),
    Route(INV + "/logs", log_stream, methods=["GET"]),
    Route(INV + "/terminate", terminate, methods=["POST"]),
]
