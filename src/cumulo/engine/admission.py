"""Admission: the hot path from an HTTP request to a committed invocation.

Validate the event (JSON, size), enforce ``max_qps`` for async-run functions, and commit the
row before answering: accepted means committed. Rows from concurrent requests are committed
together (group commit): while one batch is being written the next one gathers.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from dataclasses import dataclass

import orjson

from cumulo.engine.dispatcher import Dispatcher
from cumulo.engine.functions import Functions
from cumulo.engine.limits import QpsLimiter
from cumulo.errors import (
    FunctionUnavailable,
    InvalidParameter,
    MalformedJSON,
    PayloadTooLarge,
    RequestLimitExceeded,
)
from cumulo.metrics import Metrics
from cumulo.models import Function, FunctionState, Invocation, InvocationType, Status
from cumulo.settings import Settings
from cumulo.store.base import QueueStore

log = logging.getLogger(__name__)

MAX_BATCH = 512
MAX_IDEMPOTENCY_KEY = 128
#: ``expires_at`` of invocations that never expire (async-run and sync): a century.
NEVER_S = 100 * 365 * 86_400.0


@dataclass(frozen=True, slots=True)
class Admitted:
    invocation: Invocation
    #: True when an ``Idempotency-Key`` matched an earlier invocation (nothing new runs).
    replayed: bool = False


class GroupCommit:
    """Commits rows in batches; each caller awaits its own row."""

    def __init__(self, store: QueueStore) -> None:
        self._store = store
        self._queue: list[tuple[Invocation, asyncio.Future[Invocation]]] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def commit(self, inv: Invocation) -> Invocation:
        fut: asyncio.Future[Invocation] = asyncio.get_running_loop().create_future()
        self._queue.append((inv, fut))
        self._wake.set()
        return await fut

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="group-commit")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._queue:
                batch, self._queue = self._queue[:MAX_BATCH], self._queue[MAX_BATCH:]
                try:
                    stored = await self._store.enqueue([inv for inv, _ in batch])
                except Exception as exc:
                    for _, fut in batch:
                        if not fut.done():
                            fut.set_exception(exc)
                    continue
                for (_, fut), row in zip(batch, stored, strict=True):
                    if not fut.done():
                        fut.set_result(row)


class Admission:
    def __init__(
        self,
        *,
        settings: Settings,
        functions: Functions,
        limiter: QpsLimiter,
        commits: GroupCommit,
        dispatcher: Dispatcher,
        metrics: Metrics,
    ) -> None:
        self._s = settings
        self._functions = functions
        self._limiter = limiter
        self._commits = commits
        self._dispatcher = dispatcher
        self._metrics = metrics

    async def admit(
        self, fn: Function, kind: InvocationType, body: bytes, idempotency_key: str | None = None
    ) -> Admitted:
        """Admit one event for ``fn`` (as ``Versions.resolve`` gave it, for a qualifier;
        ``kind`` from :meth:`effective_type`). For async (and
        every async-run call) returns once the row is committed; for sync, once the run ended
        and its row is committed.

        Raises ``MalformedJSON``, ``PayloadTooLarge``, ``InvalidParameter`` (idempotency key),
        ``RequestLimitExceeded`` (async-run past ``max_qps``; nothing is recorded),
        ``FunctionUnavailable`` (no code to run yet: a sync call while the first build runs,
        any call once it failed; async calls made while it builds wait queued).
        """
        if not fn.ready:
            check_runnable(fn, kind)
        self.check_size(len(body), kind, fn)
        event = _event_text(body)
        if idempotency_key is not None:
            if not idempotency_key or len(idempotency_key) > MAX_IDEMPOTENCY_KEY:
                raise InvalidParameter(
                    f"Idempotency-Key must be 1-{MAX_IDEMPOTENCY_KEY} characters",
                    code="InvalidParameterValue.IdempotencyKey",
                )
            if kind is InvocationType.SYNC:
                # A sync caller holds the answer itself; silently running twice would break
                # the key's promise, so say it is not supported.
                raise InvalidParameter(
                    "Idempotency-Key applies to async invocations; drop it or invoke with "
                    "?type=async",
                    code="InvalidParameterValue.IdempotencyKey",
                )
        if fn.async_run:
            wait_s = self._limiter.try_acquire(fn.id, fn.max_qps)
            if wait_s:
                self._metrics.throttled(fn)
                raise RequestLimitExceeded(
                    f"function {fn.name} is limited to {fn.max_qps} requests per second "
                    "(max_qps); retry later",
                    retry_after_s=wait_s,
                )
        inv = self._new_invocation(fn, kind, event, idempotency_key)
        if kind is InvocationType.SYNC:
            return Admitted(await self._dispatcher.run_sync(fn, inv))
        stored = await self._commits.commit(inv)
        if stored.request_id == inv.request_id:
            self._metrics.accepted(fn)
            self._dispatcher.hint(fn.id)
            return Admitted(stored)
        return Admitted(stored, replayed=True)

    def effective_type(self, fn: Function, requested: InvocationType | None) -> InvocationType:
        if fn.async_run:
            return InvocationType.ASYNC
        return requested or InvocationType.SYNC

    def size_limit(self, kind: InvocationType, fn: Function) -> int:
        """Bytes an event may have: 6 MB sync, 128 KB async (and every async-run call)."""
        if kind is InvocationType.SYNC and not fn.async_run:
            return self._s.max_sync_payload_bytes
        return self._s.max_async_payload_bytes

    def check_size(self, size: int, kind: InvocationType, fn: Function) -> None:
        """Raise ``PayloadTooLarge`` for an event over the mode's limit. Safe to call with a
        ``Content-Length`` before reading the body."""
        limit = self.size_limit(kind, fn)
        if size > limit:
            mode = "sync" if limit == self._s.max_sync_payload_bytes else "async"
            raise PayloadTooLarge(
                f"event is {size} bytes; {mode} invocations take at most {limit} bytes"
            )

    def _new_invocation(
        self, fn: Function, kind: InvocationType, event: str, key: str | None
    ) -> Invocation:
        now = time.time()
        retry = kind is InvocationType.ASYNC and not fn.async_run
        return Invocation(
            request_id=str(uuid.uuid4()),
            namespace=fn.namespace,
            function_name=fn.name,
            function_id=fn.id,
            function_revision=fn.revision,
            function_version=fn.version,
            type=kind,
            async_run=fn.async_run,
            status=Status.QUEUED,
            event=event,
            created_at=now,
            run_after=now,
            max_attempts=1 + fn.retry_attempts if retry else 1,
            expires_at=now + (fn.max_event_age_s if retry else NEVER_S),
            idempotency_key=key,
        )


def check_runnable(fn: Function, kind: InvocationType) -> None:
    """Raise ``FunctionUnavailable`` for a call that a function without code cannot take."""
    if fn.state is FunctionState.FAILED:
        raise FunctionUnavailable(
            f"function {fn.name} has no code that can run: its build failed: {fn.state_reason}"
            " (fix it and upload the code again)"
        )
    if kind is InvocationType.SYNC:
        raise FunctionUnavailable(
            f"function {fn.name} is pending: its environment is still building; retry once it"
            " is active, or invoke it asynchronously (the call then waits queued)"
        )


def _event_text(body: bytes) -> str:
    if not body.strip():
        return "{}"
    try:
        orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise MalformedJSON(f"the event is not valid JSON: {exc}") from exc
    return body.decode()
