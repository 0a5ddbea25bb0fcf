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


class FunctionState(enum.StrEnum):
    """Where a function's code stands (Lambda's ``State``, SCF's ``Status``): ``pending``
    while its environment builds, ``active`` once it can run, ``failed`` when the last build
    failed (the reason is in ``state_reason``)."""

    PENDING = "pending"
    ACTIVE = "active"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class LayerRef:
    """A function's use of one version of a layer."""

    name: str
    version: int


@dataclass(frozen=True, slots=True)
class Function:
    """A function's configuration. ``revision`` grows by one on every change of config or code;
    the runtime keys its zygotes on ``(id, revision)``.

    The row always holds the code that serves. ``ready`` is whether there is any: false only
    until the first build of a new function succeeds. A build of new code (``build_id``)
    replaces the code only when it succeeds; until then the last good code keeps serving.
    """

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
    state: FunctionState = FunctionState.ACTIVE
    #: Why the last build failed (the installer's own words), or empty.
    state_reason: str = ""
    ready: bool = True
    #: The installed environment (``requirements.txt``) its code runs with, if any.
    deps_key: str | None = None
    #: In order: the first one listed wins when two hold the same module.
    layers: tuple[LayerRef, ...] = ()
    #: Install the package's ``requirements.txt`` (SCF's ``InstallDependency``).
    install_dependency: bool = True
    #: The latest build of this function's code (running, or how it ended).
    build_id: str | None = None

    @property
    def scf_status(self) -> str:
        """SCF's ``Status``: Creating / Updating, Active, CreateFailed / UpdateFailed."""
        if self.state is FunctionState.ACTIVE:
            return "Active"
        if self.state is FunctionState.PENDING:
            return "Updating" if self.ready else "Creating"
        return "UpdateFailed" if self.ready else "CreateFailed"


class BuildStatus(enum.StrEnum):
    BUILDING = "building"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class BuildTarget:
    """What a build makes ready: a code package (a function's, or a layer version's) with
    the handler it serves."""

    code_sha256: str
    code_size_bytes: int
    handler: str = ""
    install_dependency: bool = True


@dataclass(frozen=True, slots=True)
class Build:
    """One build of a function's code (or of a layer version): its ``requirements.txt``
    resolved and installed (or found installed already: ``reused``). Its log lines are
    stored like an invocation's, under the build's ``id``."""

    id: str
    status: BuildStatus
    target: BuildTarget
    created_at: float
    #: Whose build: a function (``function_id``, ``namespace``, ``function_name``) or a
    #: layer version (``layer_name``, ``layer_version``).
    function_id: str | None = None
    namespace: str = ""
    function_name: str = ""
    layer_name: str | None = None
    layer_version: int | None = None
    #: The node running it and until when (renewed while it runs; another node takes over
    #: a build whose lease ran out).
    node_id: str | None = None
    lease_expires_at: float | None = None
    finished_at: float | None = None
    duration_ms: float | None = None
    deps_key: str | None = None
    reused: bool = False
    installed_bytes: int | None = None
    #: ``(name, version)`` of every installed package.
    packages: tuple[tuple[str, str], ...] = ()
    reason: str = ""


class EnvironmentStatus(enum.StrEnum):
    BUILDING = "building"
    READY = "ready"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class Environment:
    """An installed package set, shared by every function and layer that asks for it. Its
    ``key`` is the SHA-256 of the resolved requirements and the interpreter's tag."""

    key: str
    requirements: str
    interpreter: str
    status: EnvironmentStatus
    created_at: float
    builder: str | None = None
    lease_expires_at: float | None = None
    size_bytes: int = 0
    packages: tuple[tuple[str, str], ...] = ()
    build_ms: float = 0.0
    #: Since when nothing uses it (it is removed after the grace period); None while used.
    unused_since: float | None = None
    error: str = ""


@dataclass(frozen=True, slots=True)
class LayerVersion:
    """A published, immutable version of a layer: a zip whose ``python/`` folder (else its
    root) goes on the import path of the functions that use it, with its own
    ``requirements.txt`` installed like a function's."""

    name: str
    version: int
    code_sha256: str
    code_size_bytes: int
    unpacked_bytes: int
    created_at: float
    description: str = ""
    compatible_runtimes: tuple[str, ...] = ()
    license_info: str = ""
    state: FunctionState = FunctionState.ACTIVE
    state_reason: str = ""
    deps_key: str | None = None
    build_id: str | None = None

    @property
    def scf_status(self) -> str:
        """SCF's layer ``Status``: Publishing, Active, PublishFailed."""
        return {
            FunctionState.PENDING: "Publishing",
            FunctionState.ACTIVE: "Active",
            FunctionState.FAILED: "PublishFailed",
        }[self.state]


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
