"""The values cumulo passes around: functions, invocations, log lines, statuses.

All records are frozen; change one with :func:`dataclasses.replace`. Times are Unix time in
seconds (``float``), durations carry their unit in their name.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


class Status(enum.StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    TIMED_OUT = "timed_out"
    TERMINATED = "terminated"

    @property
    def terminal(self) -> bool:
        return self not in (Status.QUEUED, Status.RUNNING)

    @property
    def scf_name(self) -> str:
        """The SCF async-event status: RUNNING, FINISHED, FAILED or ABORTED."""
        return _SCF_NAMES[self]


_SCF_NAMES = {
    Status.QUEUED: "RUNNING",
    Status.RUNNING: "RUNNING",
    Status.SUCCEEDED: "FINISHED",
    Status.FAILED: "FAILED",
    Status.TIMED_OUT: "FAILED",
    Status.TERMINATED: "ABORTED",
}

TERMINAL_STATUSES = frozenset(s for s in Status if s.terminal)


class InvocationType(enum.StrEnum):
    """What the caller asked for. An async-run function always answers like ``async``."""

    SYNC = "sync"
    ASYNC = "async"


class LogStream(enum.StrEnum):
    STDOUT = "stdout"
    STDERR = "stderr"
    PLATFORM = "platform"


class TerminateMode(enum.StrEnum):
    FORCE = "force"
    GRACEFUL = "graceful"


@dataclass(frozen=True, slots=True)
class Namespace:
    name: str
    description: str = ""
    created_at: float = 0.0


@dataclass(frozen=True, slots=True)
class Function:
    """A function's configuration. ``revision`` grows by one on every change of config or code;
    the runtime keys its zygotes on ``(id, revision)``."""

    id: str
    namespace: str
    name: str
    handler: str
    code_sha256: str
    code_size_bytes: int
    timeout_s: float
    memory_mb: int
    async_run: bool
    max_qps: int
    max_concurrency: int | None
    retry_attempts: int
    max_event_age_s: float
    environment: Mapping[str, str] = field(default_factory=dict)
    description: str = ""
    revision: int = 1
    created_at: float = 0.0
    updated_at: float = 0.0
    #: ``$LATEST`` for the function itself; a version's number (as text) for a snapshot.
    version: str = "$LATEST"


@dataclass(frozen=True, slots=True)
class Invocation:
    """One event for one function, and everything known about its run.

    ``event`` and ``result`` are JSON text exactly as received / returned. ``error`` is
    ``{"type", "message", "traceback"}`` once the run failed. ``attempt`` counts runs started
    (1 for the first). ``lease_owner``/``lease_expires_at`` belong to the dispatcher that
    claimed the row; a terminal write is fenced on them.
    """

    request_id: str
    namespace: str
    function_name: str
    function_id: str
    function_revision: int
    type: InvocationType
    async_run: bool
    status: Status
    event: str
    created_at: float
    run_after: float
    max_attempts: int
    expires_at: float
    attempt: int = 0
    result: str | None = None
    error: Mapping[str, Any] | None = None
    started_at: float | None = None
    finished_at: float | None = None
    duration_ms: float | None = None
    billed_duration_ms: int | None = None
    peak_memory_mb: float | None = None
    idempotency_key: str | None = None
    lease_owner: str | None = None
    lease_expires_at: float | None = None
    dead_lettered: bool = False
    terminate_mode: TerminateMode | None = None
    #: The version that runs it: ``$LATEST`` or a published version's number.
    function_version: str = "$LATEST"


@dataclass(frozen=True, slots=True)
class LogLine:
    """One line an instance wrote (or the platform wrote about it). ``seq`` starts at 1 and
    grows by one per line of the invocation; it is the SSE event id."""

    request_id: str
    seq: int
    ts: float
    stream: LogStream
    text: str


@dataclass(frozen=True, slots=True)
class InvocationFilter:
    namespace: str
    function_name: str | None = None
    status: frozenset[Status] | None = None
    created_after: float | None = None
    created_before: float | None = None
    dead_lettered: bool | None = None
    request_id: str | None = None
    types: frozenset[InvocationType] | None = None
    function_version: str | None = None
    #: Only rows that began (ended) in ``[start, end)``, when given.
    started_between: tuple[float, float] | None = None
    finished_between: tuple[float, float] | None = None
    #: Only rows whose ``error.type`` is this one.
    error_type: str | None = None


class InvocationOrder(enum.StrEnum):
    """What :meth:`search_invocations` sorts by."""

    CREATED = "created_at"
    STARTED = "started_at"
    FINISHED = "finished_at"
    DURATION = "duration_ms"
    MEMORY = "peak_memory_mb"
    FUNCTION = "function_name"


@dataclass(frozen=True, slots=True)
class Page:
    items: list[Invocation]
    #: Opaque; pass back to get the next (older) page. ``None`` at the end.
    next_cursor: str | None


#: The version every function has: its current code and configuration.
LATEST = "$LATEST"


@dataclass(frozen=True, slots=True)
class FunctionVersion:
    """A published, immutable version of a function: a snapshot of its code and runtime
    configuration (``function``, whose ``version`` field holds the number as text).
    Numbers start at 1 and are never reused, even after a version is deleted."""

    function_id: str
    version: int
    function: Function
    description: str = ""
    created_at: float = 0.0


@dataclass(frozen=True, slots=True)
class Alias:
    """A name for a version of a function, optionally splitting traffic: each entry of
    ``additional_weights`` (version → fraction, together below 1) takes that share of the
    calls; ``function_version`` takes the rest."""

    function_id: str
    name: str
    function_version: str
    additional_weights: Mapping[str, float] = field(default_factory=dict)
    description: str = ""
    created_at: float = 0.0
    updated_at: float = 0.0


@dataclass(frozen=True, slots=True)
class ApiKey:
    """A SecretId/SecretKey pair for the SCF API. ``namespace`` None means the key acts as the
    admin (every namespace); otherwise it is confined to that namespace. The store holds
    ``secret_enc`` (the secret, encrypted with the server's key), never the plain secret."""

    secret_id: str
    secret_enc: str
    namespace: str | None = None
    description: str = ""
    created_at: float = 0.0
    revoked_at: float | None = None


class TriggerType(enum.StrEnum):
    TIMER = "timer"


@dataclass(frozen=True, slots=True)
class Trigger:
    """Something that creates invocations of a function. ``description`` is the kind's
    configuration (a cron expression for a timer); ``qualifier`` the version or alias it
    invokes."""

    function_id: str
    namespace: str
    function_name: str
    name: str
    type: str
    description: str
    qualifier: str = LATEST
    enabled: bool = True
    custom_argument: str = ""
    created_at: float = 0.0
    updated_at: float = 0.0
    #: Free text about the trigger (SCF's trigger ``Description``).
    note: str = ""
