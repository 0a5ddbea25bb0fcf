"""``SqlStore``: every store seam of ``store.base`` on SQLAlchemy Core, over embedded SQLite
(one process) or PostgreSQL (a cluster).

Every query is written once, as a sync named query (``store.queries``, ``store.queue``);
this module is the async facade that hands each one to the backend (``store.backends``):
on SQLite to a single writer thread that commits all pending writes together, with reads
on threads beside it (WAL snapshots); on PostgreSQL to the asyncio engine, where each write
is its own transaction and dispatchers claim rows with ``FOR UPDATE SKIP LOCKED``. Driver
errors are translated into ``cumulo.errors`` here (see ``engine.translate``); nothing above
this module sees SQLAlchemy or a driver.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Concatenate, ParamSpec, TypeVar

import sqlalchemy as sa

from cumulo.errors import InvalidParameter, StoreUnavailable
from cumulo.models import (
    Alias,
    ApiKey,
    Function,
    FunctionVersion,
    Invocation,
    InvocationFilter,
    InvocationOrder,
    LogLine,
    Namespace,
    Page,
    TerminateMode,
    Trigger,
)
from cumulo.store import catalog, queries, queue, sqlite_fast
from cumulo.store import engine as db
from cumulo.store.backends import make_backend
from cumulo.store.sql_builds import BuildsFacade

log = logging.getLogger(__name__)

DEFAULT_NAMESPACE = "default"

P = ParamSpec("P")
T = TypeVar("T")


class SqlStore(BuildsFacade):
    """The store on ``sqlite:///path`` (also spelt ``sqlite+aiosqlite:///path``) or
    ``postgresql+asyncpg://...``.

    Building one does no I/O; :meth:`open` connects and migrates; :meth:`close` commits the
    writes already asked for and releases every connection, after which every method raises
    ``StoreUnavailable``. Raises ``InvalidParameter`` for an unsupported URL.
    ``connect_args`` go to the driver's ``connect()`` as they are (e.g. ``{"server_settings":
    {"search_path": "s"}}`` for asyncpg, ``{"timeout": 30}`` for sqlite3).
    """

    def __init__(self, url: str, *, connect_args: Mapping[str, Any] | None = None) -> None:
        self._url = db.parse_url(url)
        self._dialect = self._url.get_backend_name()
        self._backend = make_backend(self._url, connect_args or {})
        # The hottest writes run straight on the driver on SQLite (``store.sqlite_fast``),
        # where they share one writer thread; PostgreSQL keeps the Core queries.
        fast = self._dialect == "sqlite"
        self._enqueue = sqlite_fast.enqueue if fast else queue.enqueue
        self._claim = sqlite_fast.claim if fast else queue.claim
        self._heartbeat = sqlite_fast.heartbeat if fast else queue.heartbeat
        self._write_outcome = sqlite_fast.write_outcome if fast else queue.write_outcome
        self._append_logs = sqlite_fast.append_logs if fast else queries.append_logs

    # --- life cycle -----------------------------------------------------------------

    @property
    def exclusive(self) -> bool:
        return self._dialect == "sqlite"

    async def open(self) -> None:
        """Connect and migrate to head (a no-op when already there). The migration creates
        the ``default`` namespace. Raises ``StoreUnavailable``."""
        database = self._url.database
        if self._dialect == "sqlite" and database:
            try:
                Path(database).parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StoreUnavailable(f"cannot create the store's directory: {exc}") from exc
        await self._write(db.upgrade_to_head)
        log.info("store open", extra={"backend": self._dialect})

    async def close(self) -> None:
        """Commit the writes already asked for, then release every connection. Idempotent."""
        await self._backend.close()

    async def _write(
        self, query: Callable[Concatenate[sa.Connection, P], T], *args: P.args, **kw: P.kwargs
    ) -> T:
        """``query(conn, *args, **kw)`` in a write transaction, committed before this
        returns."""
        try:
            return await self._backend.write(lambda conn: query(conn, *args, **kw))
        except db.DRIVER_ERRORS as exc:
            raise db.translate(exc) from exc

    async def _write_hot(
        self, query: Callable[Concatenate[sa.Connection, P], T], *args: P.args, **kw: P.kwargs
    ) -> T:
        """:meth:`_write` for the hot queries (``self._enqueue`` and its siblings), which
        are self-contained (see ``store.sqlite_fast``): alone in a SQLite writer round, they
        run with no BEGIN and COMMIT of the writer's."""
        try:
            return await self._backend.write(
                lambda conn: query(conn, *args, **kw), self_contained=True
            )
        except db.DRIVER_ERRORS as exc:
            raise db.translate(exc) from exc

    async def _read(
        self, query: Callable[Concatenate[sa.Connection, P], T], *args: P.args, **kw: P.kwargs
    ) -> T:
        """``query(conn, *args, **kw)`` on a connection for reads; never committed."""
        try:
            return await self._backend.read(lambda conn: query(conn, *args, **kw))
        except db.DRIVER_ERRORS as exc:
            raise db.translate(exc) from exc

    # --- namespaces -----------------------------------------------------------------

    async def create_namespace(self, namespace: Namespace) -> Namespace:
        """Raises ``NamespaceExists``."""
        return await self._write(queries.create_namespace, namespace)

    async def list_namespaces(self) -> list[Namespace]:
        return await self._read(queries.list_namespaces)

    async def delete_namespace(self, name: str) -> None:
        """Raises ``NamespaceNotFound``; ``InvalidParameter`` for ``default`` or a namespace
        that still holds functions. The API keys bound to it are revoked with it."""
        if name == DEFAULT_NAMESPACE:
            raise InvalidParameter("the default namespace cannot be deleted", field="namespace")
        await self._write(queries.delete_namespace, name)

    async def update_namespace(self, name: str, description: str) -> Namespace:
        """Raises ``NamespaceNotFound``."""
        return await self._write(queries.update_namespace, name, description)

    # --- code packages and functions ------------------------------------------------

    async def save_code(self, sha256: str, zip_bytes: bytes) -> None:
        """Store a code package under its SHA-256. Idempotent (same sha, same bytes)."""
        values = {
            "sha256": sha256,
            "data": zip_bytes,
            "size_bytes": len(zip_bytes),
            "created_at": time.time(),
        }
        await self._write(queries.save_code, values)

    async def load_code(self, sha256: str) -> bytes:
        """Raises ``NotFound`` for an unknown package."""
        return await self._read(queries.load_code, sha256)

    async def create_function(self, function: Function) -> Function:
        """Insert. Raises ``FunctionExists``, ``NamespaceNotFound``."""
        return await self._write(queries.create_function, function)

    async def get_function(self, namespace: str, name: str) -> Function:
        """Raises ``FunctionNotFound``."""
        return await self._read(queries.get_function, namespace, name)

    async def list_functions(self, namespace: str) -> list[Function]:
        """By name; empty for an unknown namespace."""
        return await self._read(queries.list_functions, namespace)

    async def update_function(self, function: Function, expected_revision: int) -> Function:
        """Replace the row of ``function.id`` (every column, ``revision`` and ``updated_at``
        as given) if its revision is still ``expected_revision``. Raises
        ``FunctionNotFound``; ``FunctionExists`` when renamed onto another function;
        ``FunctionChanged`` when another write came first."""
        return await self._write(queries.update_function, function, expected_revision)

    async def delete_function(self, namespace: str, name: str) -> None:
        """Raises ``FunctionNotFound``. Invocations stay until purged."""
        await self._write(queries.delete_function, namespace, name)

    # --- the queue ------------------------------------------------------------------

    async def enqueue(self, invocations: Sequence[Invocation]) -> list[Invocation]:
        """Commit all rows in one transaction (group commit) and return, for each input in
        order, the stored row. When an input carries an ``idempotency_key`` already used for
        the same function (earlier, or earlier in the same batch), that row is returned and
        nothing is inserted."""
        if not invocations:
            return []
        return await self._write_hot(self._enqueue, list(invocations))

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
        ``run_after`` first), owned by ``node_id`` until ``now + lease_s``, ``attempt`` + 1,
        ``started_at`` = now. Rows of ``exclude_function_ids`` are skipped; when
        ``only_function_ids`` is given, only rows of those functions are taken (none for an
        empty list). A row goes to one node only, whatever the number of claimers.

        ``limits`` (``{function_id: max running}``): of each function named, the claim takes
        no more rows than that number less the function's rows running on any node, counted
        and claimed atomically against every other claimer with ``limits`` (on PostgreSQL
        under an advisory lock per function). Such functions are claimed first, then the
        others; a claim without ``limits`` pays for none of this.

        A claimed row may carry ``terminate_mode``: a terminate asked for while its previous
        attempt was ending. The dispatcher should then end it as ``terminated`` unrun."""
        if limit < 1 or (only_function_ids is not None and not only_function_ids):
            return []
        # Copies: the query runs later, maybe on another thread.
        only = None if only_function_ids is None else list(only_function_ids)
        exclude = list(exclude_function_ids)
        if limits:
            # Off SQLite's fast path (``store.sqlite_fast``): a count and a claim per limited
            # function, in one ordinary write transaction.
            return await self._write(
                queue.claim, node_id, limit, lease_s, now, exclude, only, dict(limits)
            )
        return await self._write_hot(self._claim, node_id, limit, lease_s, now, exclude, only)

    async def queued_function_ids(self, now: float) -> list[str]:
        """Ids of the functions that have at least one queued row with ``run_after <= now``
        (in id order; a deleted function's rows count until purged). One indexed probe per
        function that has rows, whatever the depth of the queue."""
        return await self._read(queue.queued_function_ids, now)

    async def heartbeat(
        self, node_id: str, request_ids: Sequence[str], lease_s: float, now: float
    ) -> set[str]:
        """Extend the leases of these running rows still owned by ``node_id``; return the ids
        whose lease was extended (others were lost to recovery or terminated)."""
        if not request_ids:
            return set()
        return await self._write_hot(self._heartbeat, node_id, list(request_ids), lease_s, now)

    async def finish(self, invocation: Invocation, node_id: str) -> bool:
        """Write the outcome of a run: status, result, error, timings, attempt, run_after,
        dead_lettered (``queued`` for a retry also clears the lease; ``terminate_mode`` is
        never overwritten). Fenced: only if the row is ``running`` and leased to ``node_id``.
        Returns whether it was written."""
        return await self._write_hot(self._write_outcome, invocation, node_id)

    async def expired(self, now: float, limit: int = 500) -> list[Invocation]:
        """Running rows whose lease ran out before ``now``, longest expired first."""
        return await self._read(queue.expired, now, limit)

    async def recover(self, invocation: Invocation, expected_owner: str | None) -> bool:
        """Write a recovery outcome (as :meth:`finish`) for a row found by :meth:`expired`,
        only if it is still running and owned by ``expected_owner``."""
        return await self._write_hot(self._write_outcome, invocation, expected_owner)

    # --- invocations ----------------------------------------------------------------

    async def get_invocation(self, namespace: str, request_id: str) -> Invocation:
        """Raises ``InvocationNotFound``."""
        return await self._read(queries.get_invocation, namespace, request_id)

    async def list_invocations(
        self, where: InvocationFilter, limit: int, cursor: str | None
    ) -> Page:
        """Newest first (``created_at``, then ``request_id``, both descending), at most
        ``limit`` rows. ``created_after`` is inclusive and ``created_before`` exclusive.
        Raises ``InvalidParameter`` for a bad cursor or a ``limit`` below 1."""
        if limit < 1:
            raise InvalidParameter(f"limit must be at least 1, not {limit}", field="limit")
        after = None if cursor is None else queries.decode_cursor(cursor)
        return await self._read(queries.list_invocations, where, limit, after)

    async def search_invocations(
        self,
        where: InvocationFilter,
        order: InvocationOrder = InvocationOrder.CREATED,
        ascending: bool = False,
        offset: int = 0,
        limit: int = 20,
    ) -> tuple[list[Invocation], int]:
        """A page by offset (for APIs that page that way), and how many rows match in all.
        Raises ``InvalidParameter`` for a negative offset or a limit below 1."""
        if offset < 0:
            raise InvalidParameter(f"offset must be 0 or more, not {offset}", field="offset")
        if limit < 1:
            raise InvalidParameter(f"limit must be at least 1, not {limit}", field="limit")
        return await self._read(queries.search_invocations, where, order, ascending, offset, limit)

    async def request_terminate(
        self, namespace: str, request_id: str, mode: TerminateMode, now: float
    ) -> Invocation:
        """A queued row becomes ``terminated`` at once (``finished_at`` = now). A running row
        gets ``terminate_mode`` set; ``force`` replaces an earlier ``graceful`` but not the
        other way round. A terminal row is returned unchanged. Idempotent. Raises
        ``InvocationNotFound``."""
        return await self._write(queries.request_terminate, namespace, request_id, mode, now)

    async def count_by_status(self) -> dict[tuple[str, str, str], int]:
        """``{(namespace, function_name, status): count}`` over all rows (for metrics)."""
        return await self._read(queries.count_by_status)

    async def purge(self, finished_before: float) -> int:
        """Delete terminal rows (and their log lines) finished before the given time; return
        how many invocations went."""
        return await self._write(queries.purge, finished_before)

    # --- logs -----------------------------------------------------------------------

    async def append_logs(self, lines: Sequence[LogLine]) -> None:
        """Persist lines (one transaction). A repeated ``(request_id, seq)`` is ignored."""
        if lines:
            await self._write_hot(self._append_logs, list(lines))

    async def read_logs(
        self, request_id: str, after_seq: int = 0, limit: int = 10_000
    ) -> list[LogLine]:
        """Lines with ``seq > after_seq``, in order, at most ``limit``."""
        return await self._read(queries.read_logs, request_id, after_seq, limit)

    # --- versions and aliases -------------------------------------------------------

    async def publish_version(
        self, function: Function, description: str, now: float
    ) -> FunctionVersion:
        """Snapshot ``function`` as its next version (numbers are never reused). Raises
        ``Conflict`` when another publish of the same function won the number."""
        return await self._write(catalog.publish_version, function, description, now)

    async def get_version(self, function_id: str, version: int) -> FunctionVersion:
        """Raises ``NotFound`` (``ResourceNotFound.Version``)."""
        return await self._read(catalog.get_version, function_id, version)

    async def list_versions(self, function_id: str) -> list[FunctionVersion]:
        """By number, deleted ones left out."""
        return await self._read(catalog.list_versions, function_id)

    async def delete_version(self, function_id: str, version: int) -> None:
        """Raises ``NotFound``; ``Conflict`` while an alias routes to it."""
        await self._write(catalog.delete_version, function_id, version)

    async def create_alias(self, alias: Alias) -> Alias:
        """Raises ``Conflict`` when the name is taken."""
        return await self._write(catalog.create_alias, alias)

    async def get_alias(self, function_id: str, name: str) -> Alias:
        """Raises ``NotFound`` (``ResourceNotFound.Alias``)."""
        return await self._read(catalog.get_alias, function_id, name)

    async def list_aliases(self, function_id: str) -> list[Alias]:
        return await self._read(catalog.list_aliases, function_id)

    async def update_alias(self, alias: Alias) -> Alias:
        """Raises ``NotFound``."""
        return await self._write(catalog.update_alias, alias)

    async def delete_alias(self, function_id: str, name: str) -> None:
        """Raises ``NotFound``."""
        await self._write(catalog.delete_alias, function_id, name)

    # --- API keys -------------------------------------------------------------------

    async def create_key(self, key: ApiKey) -> ApiKey:
        return await self._write(catalog.create_key, key)

    async def get_key(self, secret_id: str) -> ApiKey | None:
        return await self._read(catalog.get_key, secret_id)

    async def list_keys(self) -> list[ApiKey]:
        return await self._read(catalog.list_keys)

    async def revoke_key(self, secret_id: str, now: float) -> ApiKey:
        """Idempotent. Raises ``NotFound``."""
        return await self._write(catalog.revoke_key, secret_id, now)

    # --- triggers -------------------------------------------------------------------

    async def create_trigger(self, trigger: Trigger) -> Trigger:
        """Raises ``Conflict`` for a name the function already uses."""
        return await self._write(catalog.create_trigger, trigger)

    async def list_triggers(
        self, function_id: str | None = None, type_: str | None = None
    ) -> list[Trigger]:
        return await self._read(catalog.list_triggers, function_id, type_)

    async def update_trigger(
        self, function_id: str, name: str, changes: Mapping[str, Any]
    ) -> Trigger:
        """Set the given columns. Raises ``NotFound``."""
        return await self._write(catalog.update_trigger, function_id, name, dict(changes))

    async def delete_trigger(self, function_id: str, name: str) -> None:
        """Raises ``NotFound``."""
        await self._write(catalog.delete_trigger, function_id, name)
