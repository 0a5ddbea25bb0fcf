"""The accept hot path: ``POST /v1/namespaces/{ns}/functions/{fn}/invocations`` as a bare
ASGI handler in front of the router.

It is the one endpoint whose speed is the product's (thousands of durable accepts per second
on two cores), so it skips the framework's request and response objects and middleware;
everything else goes to the Starlette app. Behaviour is the REST API's: same auth, same
errors, same answers.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable, MutableMapping
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, unquote

import orjson
from starlette.datastructures import Headers

from cumulo.api.http import check_authorization, invocation_json
from cumulo.api.scf import endpoint as scf_endpoint
from cumulo.api.scf import signing
from cumulo.errors import CumuloError, InvalidParameter, PayloadTooLarge
from cumulo.models import InvocationType

if TYPE_CHECKING:
    from cumulo.app import Cumulo

log = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

SCF_PATHS = frozenset({"/", "/scf", "/scf/"})
INVOKE_PATH = re.compile(r"^/v1/namespaces/([^/]+)/functions/([^/]+)/invocations/?$")
_JSON = (b"content-type", b"application/json")


class InvokeFastPath:
    def __init__(self, app: ASGIApp, core: Cumulo) -> None:
        self.app = app
        self._core = core

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            if scope["path"] in SCF_PATHS:
                await self._scf(scope, receive, send)
                return
            match = INVOKE_PATH.match(scope["path"])
            if match is not None:
                try:
                    await self._invoke(scope, receive, send, match.group(1), match.group(2))
                except CumuloError as exc:
                    await _send_error(send, exc)
                except Exception:
                    log.exception("unhandled error on POST %s", scope["path"])
                    await _send_error(send, CumuloError("internal error; see the server log"))
                return
        await self.app(scope, receive, send)

    async def _scf(self, scope: Scope, receive: Receive, send: Send) -> None:
        """An SCF API call (``POST /``): every answer is 200 with SCF's envelope."""
        headers = Headers(scope=scope)
        try:
            # Not signed with TC3 at all: answer without reading (up to 72 MB of) body.
            signed = headers.get("authorization", "").startswith(signing.ALGORITHM + " ")
            body = await _read_body(receive, scf_endpoint.MAX_BODY_BYTES) if signed else b""
        except CumuloError as exc:
            payload, request_id = scf_endpoint.envelope_error(exc)
        else:
            payload, request_id = await scf_endpoint.answer(
                self._core,
                "POST",
                scope.get("scheme", "http"),
                scope["query_string"].decode("latin-1"),
                headers,
                body,
            )
        await _send(send, 200, payload, [(b"x-tc-requestid", request_id.encode())])

    async def _invoke(self, scope: Scope, receive: Receive, send: Send, ns: str, name: str) -> None:
        headers = dict(scope["headers"])
        check_authorization(headers.get(b"authorization"), self._core.token)
        core = self._core
        kind, qualifier = _query(scope["query_string"])
        fn = await core.functions.get_cached(unquote(ns), unquote(name))
        if qualifier is not None:
            fn = await core.versions.resolve(fn, qualifier)
        kind = core.admission.effective_type(fn, kind)
        declared = headers.get(b"content-length")
        if declared is not None and declared.isascii() and declared.isdigit():
            core.admission.check_size(int(declared), kind, fn)
        body = await _read_body(receive, core.admission.size_limit(kind, fn))
        admitted = await core.admission.admit(fn, kind, body, _text(headers, b"idempotency-key"))
        inv = admitted.invocation
        rid = inv.request_id.encode()
        if inv.status.terminal and inv.type is InvocationType.SYNC:
            payload = orjson.dumps(invocation_json(inv))
            await _send(send, 200, payload, [(b"x-request-id", rid)])
            return
        extra = [
            (b"location", f"/v1/namespaces/{fn.namespace}/invocations/".encode() + rid),
            (b"x-request-id", rid),
        ]
        if admitted.replayed:
            extra.append((b"idempotent-replayed", b"true"))
        payload = b'{"request_id":"%s","status":"%s"}' % (rid, inv.status.value.encode())
        await _send(send, 202, payload, extra)


def _text(headers: dict[bytes, bytes], name: bytes) -> str | None:
    raw = headers.get(name)
    if raw is None:
        return None
    try:
        return raw.decode("ascii")
    except UnicodeDecodeError:
        raise InvalidParameter(
            f"the {name.decode()} header must be ASCII text", code="InvalidParameterValue.Header"
        ) from None


def _query(query: bytes) -> tuple[InvocationType | None, str | None]:
    """The requested ``type`` and ``qualifier`` (a version or an alias), when given."""
    kind = qualifier = None
    if not query:
        return kind, qualifier
    for key, value in parse_qsl(query.decode("latin-1")):
        if key == "type":
            try:
                kind = InvocationType(value.lower())
            except ValueError:
                raise InvalidParameter(
                    f"type {value!r} is invalid: use sync or async", field="type"
                ) from None
        elif key == "qualifier" and value:
            qualifier = value
    return kind, qualifier


async def _read_body(receive: Receive, limit: int) -> bytes:
    chunks = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise CumuloError("the client went away", code="ClientClosedRequest")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"request body is over {limit} bytes")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


async def _send(send: Send, status: int, payload: bytes, extra: list[tuple[bytes, bytes]]) -> None:
    headers = [_JSON, (b"content-length", str(len(payload)).encode()), *extra]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})


async def _send_error(send: Send, exc: CumuloError) -> None:
    extra = []
    retry_after = getattr(exc, "retry_after_s", None)
    if retry_after is not None:
        extra.append((b"retry-after", str(max(1, round(retry_after + 0.499))).encode()))
    await _send(send, exc.http_status, orjson.dumps(exc.to_dict()), extra)
