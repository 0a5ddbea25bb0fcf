"""The Python client of cumulo's REST API (v1); the CLI and the acceptance tests use it.

::

    async with Client() as client:                      # CUMULO_URL, CUMULO_TOKEN
        accepted = await client.invoke("etl", {"seconds": 60}, type="async")
        async for kind, data in client.follow_logs(accepted["request_id"]):
            ...                                         # ("log", line) ... ("end", {status})

Every method returns the JSON the server answered, as plain dicts and lists. A non-2xx
answer raises :class:`ApiError` carrying the API's error code; a server that cannot be
reached raises :class:`ConnectionFailed`, which names the URL.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote

import httpx

from cumulo.settings import DEFAULT_PORT

DEFAULT_URL = f"http://127.0.0.1:{DEFAULT_PORT}"
DEFAULT_DATA_DIR = Path(".cumulo")
#: Bytes per chunk of a streamed upload; also the granularity of ``progress`` callbacks.
UPLOAD_CHUNK_BYTES = 64 * 1024
TERMINAL_STATUSES = frozenset({"succeeded", "failed", "timed_out", "terminated"})

#: ``progress(sent_bytes, total_bytes)``, called while a request body is uploaded.
Progress = Callable[[int, int], None]
InvocationType = Literal["sync", "async"]


class ApiError(Exception):
    """The server answered with a non-2xx status. ``code`` is the API's error code
    (``ResourceNotFound.Function``, ``RequestLimitExceeded``, ...)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.status = status
        self.code = code
        self.message = message


class ConnectionFailed(ApiError):
    """The server could not be reached (refused, unresolvable, timed out, cut off).
    ``status`` is 0: no HTTP answer was received."""

    def __init__(self, url: str, reason: str, *, code: str = "ConnectionFailed") -> None:
        super().__init__(0, code, f"cannot reach the cumulo server at {url}: {reason}")
        self.url = url


def default_token() -> str | None:
    """``CUMULO_TOKEN``, else the admin token the server saved in ``$CUMULO_DATA_DIR`` (or
    ``./.cumulo``), else ``None`` (the server will then answer 401 ``AuthFailure``)."""
    token = os.environ.get("CUMULO_TOKEN")
    if token:
        return token
    data_dir = Path(os.environ.get("CUMULO_DATA_DIR") or DEFAULT_DATA_DIR)
    try:
        return (data_dir / "admin.token").read_text().strip() or None
    except OSError:
        return None


class Client:
    """An async client bound to one server and one namespace. Use it as an async context
    manager (or call :meth:`aclose`). ``timeout_s`` bounds connecting and each read, except
    where a call may legitimately wait long (a sync invocation, a followed log)."""

    def __init__(
        self,
        url: str | None = None,
        token: str | None = None,
        namespace: str = "default",
        timeout_s: float = 30.0,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.url = (url or os.environ.get("CUMULO_URL") or DEFAULT_URL).rstrip("/")
        self.namespace = namespace
        self.timeout_s = timeout_s
        token = token or default_token()
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.AsyncClient(
            base_url=self.url,
            headers=headers,
            timeout=httpx.Timeout(timeout_s),
            transport=transport,
        )

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    # -- operations ---------------------------------------------------------------------

    async def health(self) -> dict[str, Any]:
        """``{"status": "ok", "node_id", "version"}``; needs no token."""
        return _json(await self._request("GET", "/healthz"))

    async def metrics(self) -> str:
        """The Prometheus exposition text."""
        return (await self._request("GET", "/metrics")).text

    # -- namespaces ---------------------------------------------------------------------

    async def namespaces(self) -> list[dict[str, Any]]:
        return list(_json(await self._request("GET", "/v1/namespaces"))["items"])

    async def create_namespace(self, name: str, description: str = "") -> dict[str, Any]:
        """Raises ``ApiError`` 409 ``ResourceInUse.Namespace`` when it exists."""
        body = {"name": name, "description": description}
        return _json(await self._request("POST", "/v1/namespaces", json=body))

    async def delete_namespace(self, name: str) -> None:
        """Raises ``ApiError`` 404 ``ResourceNotFound.Namespace``; 400 while it holds
        functions or for ``default``."""
        await self._request("DELETE", f"/v1/namespaces/{quote(name, safe='')}")

    async def update_namespace(self, name: str, description: str) -> dict[str, Any]:
        """Replace the namespace's description. Raises ``ApiError`` 404
        ``ResourceNotFound.Namespace``."""
        path = f"/v1/namespaces/{quote(name, safe='')}"
        return _json(await self._request("PATCH", path, json={"description": description}))

    # -- API keys (for the SCF API) -----------------------------------------------------

    async def create_key(
        self, namespace: str | None = None, description: str = ""
    ) -> dict[str, Any]:
        """A new SecretId/SecretKey pair: ``{"secret_id", "secret_key", "namespace",
        "description", "created_at", "revoked_at", "status"}``. ``namespace`` None makes an
        admin key (every namespace); otherwise the key acts only in that namespace (404
        ``ResourceNotFound.Namespace`` when it does not exist). ``secret_key`` is in this
        answer only: the server never shows it again. Needs the admin token."""
        body = {"namespace": namespace, "description": description}
        return _json(await self._request("POST", "/v1/keys", json=body))

    async def list_keys(self) -> list[dict[str, Any]]:
        """Every key, revoked ones included (``status`` "active" or "revoked"), oldest
        first, without their secrets."""
        return list(_json(await self._request("GET", "/v1/keys"))["items"])

    async def revoke_key(self, secret_id: str) -> dict[str, Any]:
        """Revoke a key (idempotent) and return it. Raises ``ApiError`` 404
        ``ResourceNotFound.SecretId`` for an unknown one."""
        path = f"/v1/keys/{quote(secret_id, safe='')}"
        return _json(await self._request("DELETE", path))

    # -- functions ----------------------------------------------------------------------

    async def create_function(
        self,
        name: str,
        *,
        files: Mapping[str, str] | None = None,
        zip_bytes: bytes | None = None,
        handler: str = "index.main_handler",
        timeout_s: float | None = None,
        memory_mb: int | None = None,
        environment: Mapping[str, str] | None = None,
        async_run: bool = False,
        progress: Progress | None = None,
        **config: Any,
    ) -> dict[str, Any]:
        """Create a function from ``files`` (``{path: source text}``) or ``zip_bytes`` (give
        exactly one; ``ValueError`` otherwise). ``None`` settings take the server's defaults;
        ``config`` carries the other fields (``max_qps``, ``max_concurrency``,
        ``retry_attempts``, ``max_event_age_s``, ``description``). Raises ``ApiError`` 409
        ``ResourceInUse.Function`` when the name is taken. ``async_run`` can never change
        afterwards."""
        body: dict[str, Any] = {
            "name": name,
            "handler": handler,
            "code": _code_body(files, zip_bytes),
            "async_run": async_run,
            "timeout_s": timeout_s,
            "memory_mb": memory_mb,
            "environment": dict(environment) if environment is not None else None,
            **config,
        }
        body = {key: value for key, value in body.items() if value is not None}
        content = json.dumps(body).encode()
        response = await self._request(
            "POST",
            self._ns("functions"),
            content=_chunks(content, progress),
            headers={"Content-Type": "application/json", "Content-Length": str(len(content))},
        )
        return _json(response)

    async def get_function(self, name: str) -> dict[str, Any]:
        """Raises ``ApiError`` 404 ``ResourceNotFound.Function``."""
        return _json(await self._request("GET", self._fn(name)))

    async def list_functions(self) -> list[dict[str, Any]]:
        return list(_json(await self._request("GET", self._ns("functions")))["items"])

    async def update_function(self, name: str, **changes: Any) -> dict[str, Any]:
        """Change config fields (not ``name`` nor code). Changing ``async_run`` raises
        ``ApiError`` 409 ``UnsupportedOperation.AsyncRunEnable``; sending it unchanged is
        fine."""
        return _json(await self._request("PATCH", self._fn(name), json=changes))

    async def put_code(
        self,
        name: str,
        zip_bytes: bytes,
        handler: str | None = None,
        progress: Progress | None = None,
        install_dependency: bool = True,
    ) -> dict[str, Any]:
        """Replace the function's code with a zip package, streamed in
        ``UPLOAD_CHUNK_BYTES`` chunks, calling ``progress`` after each one. With a
        ``requirements.txt`` to install the answer is ``pending`` (the old code serves until
        the build succeeds: see :meth:`wait_built`)."""
        params: dict[str, str] = {"handler": handler} if handler else {}
        if not install_dependency:
            params["install_dependency"] = "false"
        response = await self._request(
            "PUT",
            self._fn(name) + "/code",
            params=params or None,
            content=_chunks(zip_bytes, progress),
            headers={"Content-Type": "application/zip", "Content-Length": str(len(zip_bytes))},
        )
        return _json(response)

    async def delete_function(self, name: str) -> None:
        await self._request("DELETE", self._fn(name))

    # -- builds and layers --------------------------------------------------------------

    async def get_build(self, name: str) -> dict[str, Any]:
        """The function's latest build (``status`` building / succeeded / failed, timings,
        ``installed_bytes``, ``packages``, ``reused``, ``reason``). Raises ``ApiError`` 404
        ``ResourceNotFound.Build`` when its code has had nothing to install."""
        return _json(await self._request("GET", self._fn(name) + "/build"))

    async def build_logs(self, name: str, after: int = 0) -> list[dict[str, Any]]:
        """The latest build's log lines so far."""
        response = await self._request(
            "GET", self._fn(name) + "/build/logs", params={"after": after}
        )
        return [json.loads(line) for line in response.text.splitlines() if line.strip()]

    def follow_build_logs(
        self, name: str, last_event_id: int | None = None
    ) -> AsyncGenerator[tuple[str, dict[str, Any]]]:
        """As :meth:`follow_logs`, for the function's latest build: ``("log", line)`` as the
        installer prints, then ``("end", {"build_id", "status", "reason"})``."""
        return self._follow(self._fn(name) + "/build/logs", last_event_id, 5)

    async def wait_built(self, name: str, timeout_s: float) -> dict[str, Any]:
        """Poll until the function is not ``pending`` any more; return it (``state``
        ``active`` or ``failed``, with ``state_reason``). Raises ``TimeoutError``."""
        deadline = time.monotonic() + timeout_s
        while True:
            function = await self.get_function(name)
            if function.get("state") != "pending":
                return function
            if time.monotonic() >= deadline:
                raise TimeoutError(f"function {name} still pending after {timeout_s} s")
            await asyncio.sleep(0.2)

    async def publish_layer(
        self,
        name: str,
        *,
        files: Mapping[str, str] | None = None,
        zip_bytes: bytes | None = None,
        description: str = "",
        compatible_runtimes: Sequence[str] = (),
    ) -> dict[str, Any]:
        """Publish the next version of layer ``name`` (its ``python/`` folder, else its root,
        goes on the path of the functions that list it; a ``requirements.txt`` at its root
        is installed, the version ``pending`` until then)."""
        body = {
            "code": _code_body(files, zip_bytes),
            "description": description,
            "compatible_runtimes": list(compatible_runtimes),
        }
        path = f"/v1/layers/{quote(name, safe='')}/versions"
        return _json(await self._request("POST", path, json=body))

    async def list_layers(self) -> list[dict[str, Any]]:
        """The newest version of each layer."""
        return list(_json(await self._request("GET", "/v1/layers"))["items"])

    async def list_layer_versions(self, name: str) -> list[dict[str, Any]]:
        path = f"/v1/layers/{quote(name, safe='')}/versions"
        return list(_json(await self._request("GET", path))["items"])

    async def get_layer_version(self, name: str, version: int) -> dict[str, Any]:
        path = f"/v1/layers/{quote(name, safe='')}/versions/{int(version)}"
        return _json(await self._request("GET", path))

    async def delete_layer_version(self, name: str, version: int) -> None:
        """Raises ``ApiError`` 409 ``ResourceInUse.Layer`` while a function uses it."""
        path = f"/v1/layers/{quote(name, safe='')}/versions/{int(version)}"
        await self._request("DELETE", path)

    # -- versions and aliases -----------------------------------------------------------

    async def publish_version(self, name: str, description: str = "") -> dict[str, Any]:
        """Freeze the function's current code and configuration as its next version (numbers
        start at 1 and are never reused). Returns the function as published, with
        ``version`` (text), ``version_description`` and ``published_at``."""
        path = self._fn(name) + "/versions"
        return _json(await self._request("POST", path, json={"description": description}))

    async def list_versions(self, name: str) -> list[dict[str, Any]]:
        """``$LATEST`` (the function itself) first, then the published versions by number."""
        return list(_json(await self._request("GET", self._fn(name) + "/versions"))["items"])

    async def delete_version(self, name: str, version: str | int) -> None:
        """Raises ``ApiError`` 404 ``ResourceNotFound.Version``; 409 ``ResourceInUse.Alias``
        while an alias routes to it."""
        path = self._fn(name) + f"/versions/{quote(str(version), safe='')}"
        await self._request("DELETE", path)

    async def create_alias(
        self,
        name: str,
        alias: str,
        function_version: str | int,
        additional_weights: Mapping[str, float] | None = None,
        description: str = "",
    ) -> dict[str, Any]:
        """Name ``function_version`` (a published version or ``$LATEST``) as ``alias``;
        ``additional_weights`` (version → fraction, together below 1) send that share of the
        calls to other versions. Raises ``ApiError`` 409 ``ResourceInUse.Alias`` for a taken
        name, 404 ``ResourceNotFound.Version`` for a version that does not exist."""
        body = {
            "name": alias,
            "function_version": str(function_version),
            "additional_weights": dict(additional_weights or {}),
            "description": description,
        }
        return _json(await self._request("POST", self._fn(name) + "/aliases", json=body))

    async def get_alias(self, name: str, alias: str) -> dict[str, Any]:
        """Raises ``ApiError`` 404 ``ResourceNotFound.Alias``."""
        return _json(await self._request("GET", self._alias(name, alias)))

    async def list_aliases(self, name: str) -> list[dict[str, Any]]:
        """By name."""
        return list(_json(await self._request("GET", self._fn(name) + "/aliases"))["items"])

    async def update_alias(
        self,
        name: str,
        alias: str,
        *,
        function_version: str | int | None = None,
        additional_weights: Mapping[str, float] | None = None,
        description: str | None = None,
    ) -> dict[str, Any]:
        """Change what is given, keep the rest. ``additional_weights={}`` removes the
        split."""
        body: dict[str, Any] = {}
        if function_version is not None:
            body["function_version"] = str(function_version)
        if additional_weights is not None:
            body["additional_weights"] = dict(additional_weights)
        if description is not None:
            body["description"] = description
        return _json(await self._request("PATCH", self._alias(name, alias), json=body))

    async def delete_alias(self, name: str, alias: str) -> None:
        """Raises ``ApiError`` 404 ``ResourceNotFound.Alias``."""
        await self._request("DELETE", self._alias(name, alias))

    # -- invocations --------------------------------------------------------------------

    async def invoke(
        self,
        name: str,
        event: Any = None,
        *,
        type: InvocationType = "sync",
        idempotency_key: str | None = None,
        qualifier: str | int | None = None,
    ) -> dict[str, Any]:
        """Invoke ``name`` with ``event`` (any JSON value; ``None`` sends ``{}``).
        ``qualifier`` picks what runs: ``$LATEST`` (the default), a published version's
        number or an alias (404 ``ResourceNotFound.Qualifier`` when it names nothing); the
        invocation records the version that ran as ``function_version``.

        Returns the invocation once it ended for a sync call to a normal function (a handler
        error is ``status: "failed"``, not an exception), else the 202 answer
        ``{"request_id", "status": "queued"}`` — always so for an ``async_run`` function.
        Repeating an ``idempotency_key`` returns the first request_id and runs nothing.
        A sync call waits as long as the function runs (no read timeout)."""
        headers = {"Content-Type": "application/json"}
        if idempotency_key:
            headers["Idempotency-Key"] = idempotency_key
        params: dict[str, str] = {"type": type}
        if qualifier is not None:
            params["qualifier"] = str(qualifier)
        response = await self._request(
            "POST",
            self._fn(name) + "/invocations",
            params=params,
            content=json.dumps({} if event is None else event).encode(),
            headers=headers,
            timeout=httpx.Timeout(self.timeout_s, read=None),
        )
        return _json(response)

    async def get_invocation(self, request_id: str) -> dict[str, Any]:
        """Raises ``ApiError`` 404 ``ResourceNotFound.AsyncEvent``."""
        return _json(await self._request("GET", self._inv(request_id)))

    async def list_invocations(
        self,
        function: str | None = None,
        status: str | Iterable[str] | None = None,
        limit: int = 50,
        cursor: str | None = None,
        since: str | float | None = None,
        until: str | float | None = None,
        dead_lettered: bool | None = None,
    ) -> dict[str, Any]:
        """``{"items": [invocation], "next_cursor"}``, newest first. ``status`` is one status
        or several; ``since``/``until`` are ISO 8601 text or Unix seconds; ``limit`` 1-1000;
        ``dead_lettered`` keeps only (or drops) normal async invocations that ran out of
        attempts. Pass ``next_cursor`` back as ``cursor`` for the next (older) page."""
        if status is not None and not isinstance(status, str):
            status = ",".join(status)
        params = {
            "function": function,
            "status": status,
            "limit": limit,
            "cursor": cursor,
            "since": since,
            "until": until,
            "dead_lettered": None if dead_lettered is None else str(dead_lettered).lower(),
        }
        query = {key: value for key, value in params.items() if value is not None}
        return _json(await self._request("GET", self._ns("invocations"), params=query))

    async def terminate(self, request_id: str, grace: bool = False) -> dict[str, Any]:
        """Ask the invocation to end: at once (SIGKILL), or with ``grace`` (SIGTERM, then
        SIGKILL after the server's grace period). Idempotent; returns the invocation, which
        may still be ``running`` for a moment."""
        path = self._inv(request_id) + "/terminate"
        return _json(await self._request("POST", path, json={"grace": grace}))

    async def logs(self, request_id: str, after: int = 0) -> list[dict[str, Any]]:
        """The lines persisted so far with ``seq > after``: ``{"seq", "ts", "stream",
        "text"}`` each, oldest first."""
        response = await self._request(
            "GET", self._inv(request_id) + "/logs", params={"after": after}
        )
        return [json.loads(line) for line in response.text.splitlines() if line.strip()]

    def follow_logs(
        self,
        request_id: str,
        last_event_id: int | None = None,
        *,
        reconnect_attempts: int = 5,
    ) -> AsyncGenerator[tuple[str, dict[str, Any]]]:
        """Yield ``("log", line)`` as lines are written, then ``("end", {"request_id",
        "status"})`` once, and stop. Lines with ``seq <= last_event_id`` are skipped.

        A stream cut before its end is resumed (``Last-Event-ID``) up to
        ``reconnect_attempts`` times in a row, so no line is lost or repeated; past that the
        last error is raised. Use it in ``contextlib.aclosing()`` to stop early."""
        return self._follow(self._inv(request_id) + "/logs", last_event_id, reconnect_attempts)

    async def _follow(
        self, path: str, last_event_id: int | None, reconnect_attempts: int
    ) -> AsyncGenerator[tuple[str, dict[str, Any]]]:
        failures = 0
        while True:
            headers = {"Accept": "text/event-stream"}
            if last_event_id is not None:
                headers["Last-Event-ID"] = str(last_event_id)
            events = self._sse(path, headers)
            try:
                async for kind, data, event_id in events:
                    failures = 0
                    if event_id is not None:
                        last_event_id = event_id
                    if kind == "end":
                        # Close the response before handing over the end: a caller that
                        # stops iterating here must not leave it open.
                        await events.aclose()
                        yield kind, data
                        return
                    yield kind, data
            except ConnectionFailed:
                failures += 1
                if failures > reconnect_attempts:
                    raise
            else:
                # The server closed the stream without its `end` event (a restart, a proxy).
                failures += 1
                if failures > reconnect_attempts:
                    raise ConnectionFailed(self.url, "log stream ended without an end event")
            finally:
                await events.aclose()
            await asyncio.sleep(min(0.25 * 2**failures, 5.0))

    async def wait(self, request_id: str, timeout_s: float) -> dict[str, Any]:
        """Poll until the invocation reached a terminal status and return it. Raises
        ``TimeoutError`` after ``timeout_s`` seconds."""
        deadline = time.monotonic() + timeout_s
        delay_s = 0.05
        while True:
            invocation = await self.get_invocation(request_id)
            if invocation["status"] in TERMINAL_STATUSES:
                return invocation
            remaining_s = deadline - time.monotonic()
            if remaining_s <= 0:
                raise TimeoutError(
                    f"invocation {request_id} still {invocation['status']} after {timeout_s} s"
                )
            await asyncio.sleep(min(delay_s, remaining_s))
            delay_s = min(delay_s * 1.5, 1.0)

    # -- plumbing -----------------------------------------------------------------------

    def _ns(self, tail: str) -> str:
        return f"/v1/namespaces/{quote(self.namespace, safe='')}/{tail}"

    def _fn(self, name: str) -> str:
        return self._ns(f"functions/{quote(name, safe='')}")

    def _alias(self, name: str, alias: str) -> str:
        return self._fn(name) + f"/aliases/{quote(alias, safe='')}"

    def _inv(self, request_id: str) -> str:
        return self._ns(f"invocations/{quote(request_id, safe='')}")

    async def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = await self._http.request(method, path, **kwargs)
        except httpx.TimeoutException as exc:
            raise ConnectionFailed(self.url, f"timed out ({exc!r})", code="Timeout") from exc
        except httpx.TransportError as exc:
            raise ConnectionFailed(self.url, _reason(exc)) from exc
        raise_for_error(response)
        return response

    async def _sse(
        self, path: str, headers: dict[str, str]
    ) -> AsyncGenerator[tuple[str, dict[str, Any], int | None]]:
        # No read timeout: a running function may stay silent for hours.
        timeout = httpx.Timeout(self.timeout_s, read=None)
        try:
            async with self._http.stream(
                "GET", path, params={"follow": 1}, headers=headers, timeout=timeout
            ) as response:
                if response.is_error:
                    await response.aread()
                    raise_for_error(response)
                decoder = SseDecoder()
                async for text in response.aiter_text():
                    for event in decoder.feed(text):
                        if event.event not in ("log", "end"):
                            continue  # keep-alives and kinds this client does not know
                        event_id = int(event.id) if event.id.isdigit() else None
                        yield event.event, json.loads(event.data), event_id
        except httpx.TransportError as exc:
            raise ConnectionFailed(self.url, _reason(exc)) from exc


def raise_for_error(response: httpx.Response) -> None:
    """Raise :class:`ApiError` for a non-2xx ``response`` (read already), from its
    ``{"error": {"code", "message"}}`` body or, failing that, its status and text."""
    if response.is_success:
        return
    code, message = f"Http{response.status_code}", response.text.strip()[:500]
    try:
        error = response.json()["error"]
        code, message = str(error["code"]), str(error["message"])
    except (ValueError, KeyError, TypeError):
        message = message or response.reason_phrase
    raise ApiError(response.status_code, code, message)


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        raise ApiError(
            response.status_code,
            "UnexpectedAnswer",
            f"{response.request.url} answered something that is not JSON; is it a cumulo server?",
        ) from None
    if not isinstance(body, dict):
        raise ApiError(response.status_code, "UnexpectedAnswer", f"expected an object: {body!r}")
    return body


def _code_body(files: Mapping[str, str] | None, zip_bytes: bytes | None) -> dict[str, Any]:
    if (files is None) == (zip_bytes is None):
        raise ValueError("give the code as exactly one of files= or zip_bytes=")
    if zip_bytes is not None:
        return {"zip_base64": base64.b64encode(zip_bytes).decode("ascii")}
    return {"files": dict(files or {})}


async def _chunks(body: bytes, progress: Progress | None) -> AsyncIterator[bytes]:
    total = len(body)
    if progress is not None:
        progress(0, total)
    for start in range(0, total, UPLOAD_CHUNK_BYTES):
        chunk = body[start : start + UPLOAD_CHUNK_BYTES]
        yield chunk
        if progress is not None:
            progress(start + len(chunk), total)


@dataclass(frozen=True, slots=True)
class SseEvent:
    event: str
    data: str
    #: The stream's last event id when this event was dispatched ("" when none was sent).
    id: str


class SseDecoder:
    """An incremental decoder of ``text/event-stream`` (the WHATWG "server-sent events"
    parsing rules): feed it text as it arrives, in chunks cut anywhere, and get the
    complete events. Comments and ``retry`` fields are ignored."""

    def __init__(self) -> None:
        self._pending = ""
        self._event = ""
        self._data: list[str] = []
        self._last_id = ""

    def feed(self, text: str) -> list[SseEvent]:
        buffer = self._pending + text
        # A trailing CR may be the first half of a CRLF cut by the chunking: wait for more.
        cut = len(buffer) - 1 if buffer.endswith("\r") else len(buffer)
        buffer, self._pending = buffer[:cut], buffer[cut:]
        lines = buffer.replace("\r\n", "\n").replace("\r", "\n").split("\n")
        self._pending = lines.pop() + self._pending
        events: list[SseEvent] = []
        for line in lines:
            event = self._line(line)
            if event is not None:
                events.append(event)
        return events

    def _line(self, line: str) -> SseEvent | None:
        if not line:
            return self._dispatch()
        if line.startswith(":"):
            return None
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        elif name == "id" and "\0" not in value:
            self._last_id = value
        return None

    def _dispatch(self) -> SseEvent | None:
        event, data = self._event or "message", self._data
        self._event, self._data = "", []
        if not data:
            return None
        return SseEvent(event=event, data="\n".join(data), id=self._last_id)


def _reason(exc: httpx.TransportError) -> str:
    if isinstance(exc, httpx.ConnectError):
        return "connection refused or host unreachable (is `cumulo server` running?)"
    return str(exc) or type(exc).__name__
