"""Records with sensible defaults, for tests that need a function or an invocation and care
about one or two of its fields. Pass any field as a keyword to override it."""

from __future__ import annotations

import dataclasses
import time
import uuid
from typing import Any

from cumulo.models import Function, Invocation, InvocationType, LogLine, LogStream, Status


def make_function(**overrides: Any) -> Function:
    """A normal (not async-run) function ``fn-<random>`` in ``default``."""
    now = overrides.pop("now", None) or time.time()
    values: dict[str, Any] = {
        "id": uuid.uuid4().hex,
        "namespace": "default",
        "name": f"fn-{uuid.uuid4().hex[:8]}",
        "handler": "index.main_handler",
        "code_sha256": "0" * 64,
        "code_size_bytes": 0,
        "timeout_s": 3.0,
        "memory_mb": 128,
        "async_run": False,
        "max_qps": 1_000,
        "max_concurrency": None,
        "retry_attempts": 2,
        "max_event_age_s": 6 * 3600.0,
        "environment": {},
        "description": "",
        "revision": 1,
        "created_at": now,
        "updated_at": now,
    }
    values.update(overrides)
    return Function(**values)


def make_invocation(function: Function | None = None, **overrides: Any) -> Invocation:
    """A queued async invocation of ``function`` (a fresh one when not given), due now.

    ``now`` sets ``created_at`` and ``run_after`` together (default: the current time)."""
    if function is None:
        function = make_function()
    now = overrides.pop("now", None) or time.time()
    values: dict[str, Any] = {
        "request_id": str(uuid.uuid4()),
        "namespace": function.namespace,
        "function_name": function.name,
        "function_id": function.id,
        "function_revision": function.revision,
        "type": InvocationType.ASYNC,
        "async_run": function.async_run,
        "status": Status.QUEUED,
        "event": "{}",
        "created_at": now,
        "run_after": now,
        "max_attempts": 1 if function.async_run else function.retry_attempts + 1,
        "expires_at": now + function.max_event_age_s,
    }
    values.update(overrides)
    return Invocation(**values)


def make_log_line(request_id: str, seq: int, text: str | None = None, **overrides: Any) -> LogLine:
    line = LogLine(
        request_id=request_id,
        seq=seq,
        ts=time.time(),
        stream=LogStream.STDOUT,
        text=f"line {seq}" if text is None else text,
    )
    return dataclasses.replace(line, **overrides)
