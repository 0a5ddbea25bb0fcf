"""REST v1: read, list, terminate, and logs (plain or followed live over SSE). Invoking is
the accept hot path, in ``api.fastpath``."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
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
    after = _int(
        request.headers.get("last-event-id") or request.query_params.get("after", "0"),
        "after",
        0,
        2**62,
    )
    if request.query_params.get("follow", "").lower() in ("1", "true", "yes"):
        return StreamingResponse(
            follow_logs(core, ns, rid, after),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )
    return StreamingResponse(_ndjson(core, rid, after), media_type="application/x-ndjson")


async def _ndjson(core: Cumulo, rid: str, after: int) -> AsyncIterator[bytes]:
    async for page in stored_lines(core.store, rid, after):
        yield b"".join(orjson.dumps(line_json(line)) + b"\n" for line in page)


async def follow_logs(core: Cumulo, ns: str, rid: str, after: int) -> AsyncIterator[bytes]:
    """Replay what is stored after ``after``, then live lines, then ``end``. Subscribing
    before reading the store leaves no gap (lines are persisted before they are published)."""
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
        inv = await core.store.get_invocation(ns, rid)
        while not inv.status.terminal:
            if pending is None:
                pending = asyncio.ensure_future(anext(messages))
            done, _ = await asyncio.wait({pending}, timeout=KEEPALIVE_S)
            if not done:
                yield b": keepalive\n\n"
                inv = await core.store.get_invocation(ns, rid)
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
            elif Status(msg["status"]).terminal:
                break
        async for page in stored_lines(core.store, rid, last):
            for line in page:
                last = line.seq
                yield _sse_line(line)
        inv = await core.store.get_invocation(ns, rid)
        end = {"request_id": rid, "status": inv.status.value, "scf_status": inv.status.scf_name}
        yield b"event: end\ndata: " + orjson.dumps(end) + b"\n\n"
    finally:
        if pending is not None:
            pending.cancel()
        with contextlib.suppress(Exception):
            await sub.close()


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
