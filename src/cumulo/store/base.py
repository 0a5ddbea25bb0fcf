"""The store's seams. One SQL implementation serves them all (``store.sql.SqlStore``), on
embedded SQLite by default and on PostgreSQL for a cluster.

Every method may raise :class:`cumulo.errors.StoreUnavailable` when the database cannot be
reached; driver errors never escape. Times are Unix seconds.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from cumulo.models import (
    Alias,
    ApiKey,
    Build,
    Environment,
    Function,
    FunctionState,
    FunctionVersion,
    Invocation,
    InvocationFilter,
    InvocationOrder,
    LayerVersion,
    LogLine,
    Namespace,
    Page,
    TerminateMode,
    Trigger,
)


class NamespaceStore(Protocol):
    async def create_namespace(self, namespace: Namespace) -> Namespace:
        """Raises ``NamespaceExists``."""

    async def list_namespaces(self) -> list[Namespace]:
        """All namespaces, by name. ``default`` is always there (made by the migration)."""

    async def update_namespace(self, name: str, description: str) -> Namespace:
        """Raises ``NamespaceNotFound``."""

    async def delete_namespace(self, name: str) -> None:
        """Raises ``NamespaceNotFound``; ``InvalidParameter`` for ``default`` or a namespace
        that still holds functions."""


class FunctionStore(Protocol):
    async def save_code(self, sha256: str, zip_bytes: bytes) -> None:
        """Store a code package under its SHA-256. Idempotent (same sha, same bytes)."""

    async def load_code(self, sha256: str) -> bytes:
        """Raises ``NotFound`` for an unknown package."""

    async def create_function(self, function: Function) -> Function:
        """Insert. Raises ``FunctionExists``, ``NamespaceNotFound``."""

    async def get_function(self, namespace: str, name: str) -> Function:
        """Raises ``FunctionNotFound``."""

    async def list_functions(self, namespace: str) -> list[Function]:
        """By name."""

    async def update_function(self, function: Function, expected_revision: int) -> Function:
        """Replace the row of ``function.id`` if its revision is still ``expected_revision``;
        stores ``revision`` and ``updated_at`` as given. Raises ``FunctionNotFound``;
        ``FunctionChanged`` when another write came first (read again and retry)."""

    async def get_function_by_id(self, function_id: str) -> Function:
        """Raises ``FunctionNotFound``."""

    async def delete_function(self, namespace: str, name: str) -> None:
        """Raises ``FunctionNotFound``. Invocations stay until purged; its builds go."""


class QueueStore(Protocol):
    """The invocation table as a durable queue, with leases for dispatchers."""

    async def enqueue(self, invocations: Sequence[Invocation]) -> list[Invocation]:
        """Commit all rows in one transaction (group commit) and return, for each input in
        order, the stored row. When an input carries an ``idempotency_key`` already used for
        the same function, the earlier row is returned and nothing is inserted."""

    async def claim(
        self,
        node_id: str,
        limit: int,
        lease_s: float,
        now: float,
        exclude_function_ids: Sequence[str] = (),
        only_function_ids: Sequence[str] | None = None,
        limits: Mapping[str, int] | None = None,
    ) -> list[Invocation]:
        """Move up to ``limit`` queued rows whose ``run_after <= now`` to ``running`` (oldest
        first), owned by ``node_id`` until ``now + lease_s``, ``attempt`` + 1, ``started_at``
        = now. Rows of ``exclude_function_ids`` are skipped; when ``only_function_ids`` is
        given, only rows of those functions are taken. Safe under concurrent callers (SKIP
        LOCKED): a row goes to one node only.

        ``limits`` maps function ids to a maximum of running rows (``max_concurrency``): of
        each, no more rows are taken than that maximum less the function's rows already
        ``running`` on any node, decided atomically against every concurrent claim that
        passes ``limits`` (so claimers on all nodes together never exceed it). Functions in
        ``limits`` are claimed before the others. Functions not in it cost nothing extra."""

    async def queued_function_ids(self, now: float) -> list[str]:
        """Ids of the functions that have at least one queued row with ``run_after <= now``.
        Cheap whatever the queue depth: one indexed probe per function (EXISTS on
        (function_id, status, run_after)), not a scan of the queued rows."""

    async def heartbeat(
        self, node_id: str, request_ids: Sequence[str], lease_s: float, now: float
    ) -> set[str]:
        """Extend the leases of these running rows still owned by ``node_id``; return the ids
        whose lease was extended (others were lost to recovery or terminated)."""

    async def finish(self, invocation: Invocation, node_id: str) -> bool:
        """Write the outcome of a run: the row's status, result, error, timings, attempt,
        run_after, dead_lettered (status may be ``queued`` again for a retry, which clears the
        lease). Fenced: only if the row is ``running`` and leased to ``node_id``. Returns
        whether it was written."""

    async def expired(self, now: float, limit: int = 500) -> list[Invocation]:
        """Running rows whose lease ran out before ``now``."""

    async def recover(self, invocation: Invocation, expected_owner: str | None) -> bool:
        """Write a recovery outcome for a row found by ``expired`` (terminal, or queued for a
        retry). Only if it is still running and owned by ``expected_owner``."""


class InvocationStore(Protocol):
    async def get_invocation(self, namespace: str, request_id: str) -> Invocation:
        """Raises ``InvocationNotFound``."""

    async def list_invocations(
        self, where: InvocationFilter, limit: int, cursor: str | None
    ) -> Page:
        """Newest first (created_at, then request_id). ``cursor`` comes from a previous page;
        a bad cursor raises ``InvalidParameter``."""

    async def search_invocations(
        self,
        where: InvocationFilter,
        order: InvocationOrder = InvocationOrder.CREATED,
        ascending: bool = False,
        offset: int = 0,
        limit: int = 20,
    ) -> tuple[list[Invocation], int]:
        """A page by offset, and how many rows match in all (for APIs that page by offset).
        Rows with no value for ``order`` come last."""

    async def request_terminate(
        self, namespace: str, request_id: str, mode: TerminateMode, now: float
    ) -> Invocation:
        """A queued row becomes ``terminated`` at once (finished_at = now). A running row gets
        ``terminate_mode`` set (the owning dispatcher acts on it). A terminal row is returned
        unchanged. Idempotent. Raises ``InvocationNotFound``."""

    async def count_by_status(self) -> dict[tuple[str, str, str], int]:
        """``{(namespace, function_name, status): count}`` over all rows (for metrics)."""

    async def purge(self, finished_before: float) -> int:
        """Delete terminal rows (and their log lines) finished before the given time; return
        how many invocations went."""


class VersionStore(Protocol):
    """Published versions of functions."""

    async def publish_version(
        self, function: Function, description: str, now: float
    ) -> FunctionVersion:
        """Snapshot ``function`` as its next version number (never reused). Raises
        ``Conflict`` when a concurrent publish took the number."""

    async def get_version(self, function_id: str, version: int) -> FunctionVersion:
        """Raises ``NotFound``."""

    async def list_versions(self, function_id: str) -> list[FunctionVersion]: ...

    async def delete_version(self, function_id: str, version: int) -> None:
        """Raises ``NotFound``; ``Conflict`` while an alias routes to it."""


class AliasStore(Protocol):
    async def create_alias(self, alias: Alias) -> Alias:
        """Raises ``Conflict`` for a taken name."""

    async def get_alias(self, function_id: str, name: str) -> Alias:
        """Raises ``NotFound``."""

    async def list_aliases(self, function_id: str) -> list[Alias]: ...

    async def update_alias(self, alias: Alias) -> Alias:
        """Raises ``NotFound``."""

    async def delete_alias(self, function_id: str, name: str) -> None:
        """Raises ``NotFound``."""


class KeyStore(Protocol):
    """API keys of the SCF API; secrets are stored encrypted."""

    async def create_key(self, key: ApiKey) -> ApiKey: ...

    async def get_key(self, secret_id: str) -> ApiKey | None: ...

    async def list_keys(self) -> list[ApiKey]: ...

    async def revoke_key(self, secret_id: str, now: float) -> ApiKey:
        """Idempotent. Raises ``NotFound``."""


class TriggerStore(Protocol):
    async def create_trigger(self, trigger: Trigger) -> Trigger:
        """Raises ``Conflict`` for a name the function already uses."""

    async def list_triggers(
        self, function_id: str | None = None, type_: str | None = None
    ) -> list[Trigger]: ...

    async def update_trigger(
        self, function_id: str, name: str, changes: Mapping[str, Any]
    ) -> Trigger:
        """Raises ``NotFound``."""

    async def delete_trigger(self, function_id: str, name: str) -> None:
        """Raises ``NotFound``."""


class BuildStore(Protocol):
    """Builds of functions' code and of layer versions. A running build is leased to its
    node like a running invocation; another node takes over one whose lease ran out."""

    async def create_build(self, build: Build) -> Build: ...

    async def get_build(self, build_id: str) -> Build:
        """Raises ``NotFound`` (``ResourceNotFound.Build``)."""

    async def finish_build(self, build: Build, node_id: str) -> bool:
        """Write how it ended, only while it is ``building`` on ``node_id``."""

    async def renew_builds(self, node_id: str, build_ids: Sequence[str], until: float) -> set[str]:
        """Extend the leases of these builds of ``node_id``; the ids still held."""

    async def take_orphaned_builds(self, node_id: str, now: float, until: float) -> list[Build]:
        """Builds whose node stopped (every running one, on an exclusive store), now leased
        to ``node_id`` until ``until``."""

    async def apply_build(
        self, function_id: str, build_id: str, node_id: str, changes: Mapping[str, Any]
    ) -> Function | None:
        """Set ``changes`` on the function (revision + 1) while ``build_id`` is its latest
        build and runs on ``node_id``; ``None`` when superseded, taken over by another node,
        or the function is gone."""

    async def settle_queued(
        self, function_id: str, error: Mapping[str, Any], now: float
    ) -> list[str]:
        """End the function's queued invocations as ``failed`` with ``error`` (its first
        build failed: there is no code to run them); their request ids."""


class EnvironmentStore(Protocol):
    """Installed package sets, shared by content across functions, layers and nodes."""

    async def claim_environment(
        self, env: Environment, node_id: str, now: float, until: float
    ) -> Environment:
        """The row for ``env.key``: made (or taken over, when it failed or its builder's
        lease ran out) as ``building`` by ``node_id``, or as it stands. Only the holder
        (``builder == node_id``) installs; others wait for ``ready`` or ``failed``."""

    async def get_environment(self, key: str) -> Environment | None: ...

    async def finish_environment(self, env: Environment, node_id: str) -> bool:
        """Record a finished install (ready or failed), only while ``node_id`` holds it."""

    async def renew_environment(self, key: str, node_id: str, until: float) -> bool: ...

    async def list_environments(self) -> list[Environment]: ...

    async def sweep_environments(self, now: float, grace_s: float) -> list[str]:
        """Note which environments nothing uses any more (functions, published versions,
        layer versions, running builds); delete those unused for over ``grace_s``; return
        the keys deleted (each node then removes its own tree)."""


class LayerStore(Protocol):
    """Published layer versions; numbers are never given out twice."""

    async def publish_layer(self, layer: LayerVersion) -> LayerVersion:
        """Insert as the next version of ``layer.name`` (its ``version`` is ignored)."""

    async def get_layer_version(self, name: str, version: int) -> LayerVersion:
        """Raises ``NotFound`` (``ResourceNotFound.LayerVersion``)."""

    async def list_layer_versions(self, name: str | None = None) -> list[LayerVersion]:
        """Live versions, by name and number."""

    async def update_layer_state(
        self, name: str, version: int, state: FunctionState, reason: str, deps_key: str | None
    ) -> None: ...

    async def delete_layer_version(self, name: str, version: int) -> None:
        """Raises ``NotFound``; ``Conflict`` (``ResourceInUse.Layer``) while in use."""


class LogStore(Protocol):
    async def append_logs(self, lines: Sequence[LogLine]) -> None:
        """Persist lines (one transaction). A repeated ``(request_id, seq)`` is ignored."""

    async def read_logs(
        self, request_id: str, after_seq: int = 0, limit: int = 10_000
    ) -> list[LogLine]:
        """Lines with ``seq > after_seq``, in order."""


class Store(
    NamespaceStore,
    FunctionStore,
    QueueStore,
    InvocationStore,
    LogStore,
    VersionStore,
    AliasStore,
    KeyStore,
    TriggerStore,
    BuildStore,
    EnvironmentStore,
    LayerStore,
    Protocol,
):
    """Everything the engine needs from the database, plus its life cycle."""

    async def open(self) -> None:
        """Connect and run the migrations up to head."""

    async def close(self) -> None: ...

    @property
    def exclusive(self) -> bool:
        """True when only this process can use the database (embedded SQLite): on start, every
        running row is then known to be lost, without waiting for its lease."""
        ...
