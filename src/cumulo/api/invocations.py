"""REST v1: read, list, terminate, and logs (plain or followed live over SSE). Invoking is
the accept hot path, in ``api.fastpath``."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime
from typing import TYPE_CHECKING

import orjson
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from cumulo.api.http import authorized, invocation_json, json_response, read_json
from cumulo.engine import validation as v
from cumulo.engine.logs import line_json, stored_lines, subject
from cumulo.errors import InvalidParameter
from cumulo.models import InvocationFilter, LogLine, Status, TerminateMode

if TYPE_CHECKING:
    from cumulo.app import Cumulo

#: An SSE comment is sent this often so proxies keep the stream open; the invocation's
#: status is re-read then too (the bus delivers at most once).
KEEPALIVE_S = 15.0
MAX_LIST_LIMIT = 1000


async def get_invocation(request: Request) -> Response:
    core = authorized(request)
    inv = await core.store.get_invocation(request.path_params["ns"], request.path_params["id"])
    return json_response(invocation_json(inv))


async def list_invocations(request: Request) -> Response:
    core = authorized(request)
    q = request.query_params
    statuses = None
    if q.get("status"):
        try:
            statuses = frozenset(Status(s.strip().lower()) for s in q["status"].split(","))
        except ValueError:
            allowed = ", ".join(s.value for s in Status)
            raise InvalidParameter(
                f"status {q['status']!r} is invalid; use one or more of {allowed}",
                field="status",
            ) from None
    dead = q.get("dead_lettered")
    where = InvocationFilter(
        namespace=request.path_params["ns"],
        function_name=q.get("function") or None,
        status=statuses,
        created_after=_time(q.get("since"), "since"),
        created_before=_time(q.get("until"), "until"),
        dead_lettered=None if dead is None else dead.lower() in ("1", "true", "yes"),
    )
    limit = _int(q.get("limit", "50"), "limit", 1, MAX_LIST_LIMIT)
    page = await core.store.list_invocations(where, limit, q.get("cursor") or None)
    return json_response(
        {"items": [invocation_json(i) for i in page.items], "next_cursor": page.next_cursor}
    )


async def terminate(request: Request) -> Response:
    core = authorized(request)
    body = v.as_dict(await read_json(request, 4096))
    grace = body.get("grace", False)
    if not isinstance(grace, bool):
        raise InvalidParameter("grace must be true or false", field="grace")
    mode = TerminateMode.GRACEFUL if grace else TerminateMode.FORCE
    inv = await core.terminate(request.path_params["ns"], request.path_params["id"], mode)
    return json_response(invocation_json(inv))


async def logs(request: Request) -> Response:
    core = authorized(request)
    ns, rid = request.path_params["ns"], request.path_params["id"]
    await core.store.get_invocation(ns, rid)  # 404 for an unknown id
    return log_response(core, request, rid, invocation_end(core, ns, rid))


async def _ndjson(core: Cumulo, rid: str, after: int) -> AsyncIterator[bytes]:
    async for page in stored_lines(core.store, rid, after):
        yield b"".join(orjson.dumps(line_json(line)) + b"\n" for line in page)


#: Reads whether the thing whose log is followed has ended: its ``end`` event's data, or
#: ``None`` while it goes on.
EndCheck = Callable[[], Awaitable[dict[str, object] | None]]


def invocation_end(core: Cumulo, ns: str, rid: str) -> EndCheck:
    """The :data:`EndCheck` of an invocation: its status once terminal."""

    async def ended() -> dict[str, object] | None:
        inv = await core.store.get_invocation(ns, rid)
        if not inv.status.terminal:
            return None
        return {"request_id": rid, "status": inv.status.value, "scf_status": inv.status.scf_name}

    return ended


def follow_logs(core: Cumulo, ns: str, rid: str, after: int) -> AsyncIterator[bytes]:
    """An invocation's log as SSE (see :func:`follow`)."""
    return follow(core, rid, after, invocation_end(core, ns, rid))


async def follow(core: Cumulo, rid: str, after: int, ended: EndCheck) -> AsyncIterator[bytes]:
    """Replay what is stored after ``after``, then live lines, then ``end`` (an
    invocation's or a build's log, stored and published under ``rid``). Subscribing before
    reading the store leaves no gap (lines are persisted before they are published)."""
    sub = await core.bus.subscribe(subject(rid))
    messages = sub.__aiter__()
    # One pending read, kept across keepalives: cancelling it would end the iterator.
    pending: asyncio.Future[bytes] | None = None
    last = after
    try:
        async for page in stored_lines(core.store, rid, last):
            for line in page:
                last = line.seq
                yield _sse_line(line)
        end = await ended()
        while end is None:
            if pending is None:
                pending = asyncio.ensure_future(anext(messages))
            done, _ = await asyncio.wait({pending}, timeout=KEEPALIVE_S)
            if not done:
                yield b": keepalive\n\n"
                end = await ended()
                continue
            ready, pending = pending, None
            try:
                raw = ready.result()
            except StopAsyncIteration:
                break
            msg = orjson.loads(raw)
            if msg["kind"] == "logs":
                for item in msg["lines"]:
                    if item["seq"] > last:
                        last = item["seq"]
                        yield _sse_event("log", item["seq"], item)
            else:
                end = await ended()
        async for page in stored_lines(core.store, rid, last):
            for line in page:
                last = line.seq
                yield _sse_line(line)
        end = await ended() or end
        yield b"event: end\ndata: " + orjson.dumps(end) + b"\n\n"
    finally:
        if pending is not None:
            pending.cancel()
        with contextlib.suppress(Exception):
            await sub.close()


def log_response(core: Cumulo, request: Request, rid: str, ended: EndCheck) -> Response:
    """The log of ``rid``: NDJSON, or SSE followed live with ``?follow=1`` (resumable with
    ``Last-Event-ID`` or ``?after=``)."""
    after = _int(
        request.headers.get("last-event-id") or request.query_params.get("after", "0"),
        "after",
        0,
        2**62,
    )
    if request.query_params.get("follow", "").lower() in ("1", "true", "yes"):
        return StreamingResponse(
            follow(core, rid, after, ended),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )
    return StreamingResponse(_ndjson(core, rid, after), media_type="application/x-ndjson")


def _sse_line(line: LogLine) -> bytes:
    return _sse_event("log", line.seq, line_json(line))


def _sse_event(event: str, seq: int, data: object) -> bytes:
    return b"id: %d\nevent: %s\ndata: %s\n\n" % (seq, event.encode(), orjson.dumps(data))


def _int(raw: str, field: str, low: int, high: int) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise InvalidParameter(f"{field} must be an integer", field=field) from None
    if not low <= value <= high:
        raise InvalidParameter(f"{field} {value} is out of range: {low} to {high}", field=field)
    return value


def _time(raw: str | None, field: str) -> float | None:
    if not raw:
        return None
    try:
        return float(raw)
    except ValueError:
        pass
    try:
        return datetime.fromisoformat(raw.replace("Z", "+00:00")).timestamp()
    except ValueError:
        raise InvalidParameter(
            f"{field} {raw!r} is not a time: use ISO 8601 or Unix seconds", field=field
        ) from None


INV = "/v1/namespaces/{ns}/invocations/{id}"

routes = [
    Route("/v1/namespaces/{ns}/invocations", list_invocations, methods=["GET"]),
    Route(INV, get_invocation, methods=["GET"]),
    Route(INV + "/terminate", terminate, methods=["POST"]),
    Route(INV + "/logs", logs, methods=["GET"]),
]
