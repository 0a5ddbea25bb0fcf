"""The runtime seam: what the dispatcher asks of the instance pool."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from cumulo.models import Function, LogStream, Status, TerminateMode

#: Called once per line an instance writes while it runs an invocation (without the newline),
#: and for ``[PLATFORM]`` lines the pool writes about it. Must not block.
LogSink = Callable[[LogStream, str], None]


@dataclass(frozen=True, slots=True)
class RunRequest:
    function: Function
    #: The function's code package, unpacked (read-only for the instance): first on the
    #: instance's import path.
    code_dir: Path
    request_id: str
    #: JSON text of the event.
    event: str
    #: Wall-clock budget of this run; past it the instance's group is killed: ``timed_out``.
    timeout_s: float
    function_version: str = "$LATEST"
    #: Extra platform variables added to the instance's environment for this function.
    platform_env: Mapping[str, str] = field(default_factory=dict)
    #: Folders after the code on the import path, in order: the function's installed
    #: environment, then its layers (read-only).
    site_dirs: tuple[Path, ...] = ()


@dataclass(frozen=True, slots=True)
class RunOutcome:
    """How one run ended. ``status`` is one of SUCCEEDED, FAILED, TIMED_OUT, TERMINATED.
    ``result`` is JSON text on success; ``error`` is ``{"type", "message", "traceback"}``
    otherwise (types used by the pool: the exception's class name, ``TimeoutError``,
    ``MemoryLimitExceeded``, ``InstanceCrashed``, ``Terminated``, ``ResultNotSerializable``).
    """

    status: Status
    result: str | None
    error: Mapping[str, Any] | None
    duration_ms: float
    peak_memory_mb: float
    cold_start: bool
    instance_pid: int


@dataclass(frozen=True, slots=True)
class PoolStats:
    instances_live: int
    instances_idle: int
    zygotes: int
    cold_starts_total: int


class Pool(Protocol):
    async def run(self, request: RunRequest, on_log: LogSink) -> RunOutcome:
        """Run one invocation in an idle healthy instance of the function's current revision,
        or a new one forked from its zygote. Returns when the run ended *and* every line the
        instance wrote for it went to ``on_log``. Never raises for what the handler does; an
        instance that failed, timed out, ran out of memory or was terminated is repossessed
        (its process group killed), a healthy one goes back to the idle set."""

    async def terminate(self, request_id: str, mode: TerminateMode, grace_s: float) -> bool:
        """End a run of this pool. FORCE: SIGKILL to the group. GRACEFUL: SIGTERM, then
        SIGKILL after ``grace_s``. Writes a ``[PLATFORM]`` line saying which. The run's outcome
        is ``TERMINATED``. False when no such run is here. Idempotent."""

    def stats(self) -> PoolStats: ...

    async def close(self) -> None:
        """Kill every instance and zygote; wait for them."""
