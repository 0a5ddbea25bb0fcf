"""The invocation table as a durable queue: the named queries behind ``SqlStore``'s
``QueueStore`` methods.

Each function is a plain sync function over a ``sqlalchemy.Connection`` already inside a
write transaction (the caller commits), speaks both dialects and returns plain values (no
open cursors), so the store can run it on its SQLite writer thread or through
``run_sync`` on PostgreSQL. Times are Unix seconds.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa

from cumulo.models import Invocation, Status
from cumulo.store.engine import insert_ignoring_conflicts
from cumulo.store.schema import (
    invocation_from_row,
    invocation_values,
    invocations,
    outcome_values,
)

_c = invocations.c
_QUEUED = Status.QUEUED.value
_RUNNING = Status.RUNNING.value

# The hottest statements are built once: building one costs more than running it. An UPDATE
# without ``.values()`` sets the columns its parameters name; the WHERE clause's parameters
# are named apart from the columns (``w_*``).
_INSERT = sa.insert(invocations)
# Fenced on the attempt too: a node that lost its lease and later claimed the row's retry
# must not write the old attempt's outcome over the new one.
_OUTCOME_UNOWNED = sa.update(invocations).where(
    _c.request_id == sa.bindparam("w_request_id"),
    _c.status == _RUNNING,
    _c.attempt == sa.bindparam("w_attempt"),
    _c.lease_owner.is_(None),
)
_OUTCOME_OWNED = sa.update(invocations).where(
    _c.request_id == sa.bindparam("w_request_id"),
    _c.status == _RUNNING,
    _c.attempt == sa.bindparam("w_attempt"),
    _c.lease_owner == sa.bindparam("w_owner"),
)


def enqueue(conn: sa.Connection, batch: Sequence[Invocation]) -> list[Invocation]:
    """Insert ``batch`` with one executemany and return, per input in order, the stored row.

    Inputs without an idempotency key are returned as given (they are what was stored).
    Keyed inputs go through ``ON CONFLICT DO NOTHING`` on the ``(function_id,
    idempotency_key)`` index; an input that lost to a row of the same batch gets that row,
    and only keys held by rows from earlier batches are read back.
    """
    if not batch:
        return []
    rows = [invocation_values(inv) for inv in batch]
    if all(inv.idempotency_key is None for inv in batch):
        conn.execute(_INSERT, rows)
        return list(batch)
    insert = insert_ignoring_conflicts(
        conn,
        invocations,
        index_elements=[_c.function_id, _c.idempotency_key],
        index_where=_c.idempotency_key.is_not(None),
    )
    result = conn.execute(insert.returning(_c.request_id), rows)
    inserted = set(result.scalars())
    winners: dict[tuple[str, str], Invocation] = {}
    for inv in batch:
        if inv.idempotency_key is not None and inv.request_id in inserted:
            winners[(inv.function_id, inv.idempotency_key)] = inv
    earlier = {
        (inv.function_id, inv.idempotency_key)
        for inv in batch
        if inv.idempotency_key is not None and inv.request_id not in inserted
    } - winners.keys()
    if earlier:
        winners.update(_holders_of(conn, earlier))
    return [
        inv if inv.idempotency_key is None else winners[(inv.function_id, inv.idempotency_key)]
        for inv in batch
    ]


def _holders_of(
    conn: sa.Connection, keys: set[tuple[str, str]]
) -> dict[tuple[str, str], Invocation]:
    """The rows holding these ``(function_id, idempotency_key)`` pairs."""
    # Two plain IN lists (filtered again below) rather than a row-value IN: both planners
    # then use the partial unique index, which the IS NOT NULL term makes eligible.
    result = conn.execute(
        sa.select(invocations).where(
            _c.function_id.in_(sorted({function_id for function_id, _ in keys})),
            _c.idempotency_key.in_(sorted({key for _, key in keys})),
            _c.idempotency_key.is_not(None),
        )
    )
    holders = {}
    for row in result:
        pair = (row.function_id, row.idempotency_key)
        if pair in keys:
            holders[pair] = invocation_from_row(row)
    return holders


def _claim_statement(only: bool, exclude: bool) -> sa.Update:
    """The claim statement of :func:`claim`, with ``only``/``exclude`` function filters."""
    due = sa.select(_c.request_id).where(
        _c.status == _QUEUED, _c.run_after <= sa.bindparam("w_now")
    )
    if only:
        due = due.where(_c.function_id.in_(sa.bindparam("w_only", expanding=True)))
    if exclude:
        due = due.where(_c.function_id.not_in(sa.bindparam("w_exclude", expanding=True)))
    picked = (
        due.order_by(_c.run_after, _c.created_at, _c.request_id)
        .limit(sa.bindparam("w_limit", type_=sa.Integer))
        .with_for_update(skip_locked=True)
        .cte("picked")
        .prefix_with("MATERIALIZED")
    )
    return (
        sa.update(invocations)
        .where(_c.request_id == picked.c.request_id, _c.status == _QUEUED)
        .values(
            status=_RUNNING,
            lease_owner=sa.bindparam("w_owner"),
            lease_expires_at=sa.bindparam("w_expires"),
            attempt=_c.attempt + 1,
            started_at=sa.bindparam("w_now"),
        )
        .returning(*invocations.c)
    )


#: By (``only_function_ids`` given, ``exclude_function_ids`` given).
_CLAIMS = {
    (only, exclude): _claim_statement(only, exclude)
    for only in (False, True)
    for exclude in (False, True)
}


def claim(
    conn: sa.Connection,
    node_id: str,
    limit: int,
    lease_s: float,
    now: float,
    exclude_function_ids: Sequence[str],
    only_function_ids: Sequence[str] | None,
    limits: Mapping[str, int] | None = None,
) -> list[Invocation]:
    """Lease up to ``limit`` due queued rows to ``node_id``, oldest ``run_after`` first,
    skipping ``exclude_function_ids`` and, unless ``None``, keeping to ``only_function_ids``;
    of a function in ``limits``, no more rows than its limit less its rows running on any
    node (such functions are claimed first, one at a time, in id order).

    One statement: ``WITH picked AS MATERIALIZED (SELECT ... LIMIT n FOR UPDATE SKIP LOCKED)
    UPDATE ... FROM picked``. The CTE is evaluated exactly once; a ``LIMIT`` subquery inside
    ``IN (...)`` may be re-scanned by the planner and then yields more than ``n`` rows. On
    PostgreSQL a row locked by another claimer is skipped rather than waited for, and the
    UPDATE re-checks ``status``, so a row goes to one node only. On SQLite ``FOR UPDATE``
    renders as nothing; the write lock already serialises claimers.
    """
    if limit < 1 or (only_function_ids is not None and not only_function_ids):
        return []
    limited = {
        function_id: max_running
        for function_id, max_running in (limits or {}).items()
        if function_id not in exclude_function_ids
        and (only_function_ids is None or function_id in only_function_ids)
    }
    claimed: list[Invocation] = []
    # Sorted: every claimer takes the functions' locks in one order, so none waits in a
    # cycle.
    for function_id in sorted(limited):
        room = min(limit - len(claimed), _room(conn, function_id, limited[function_id]))
        claimed += _claim(conn, node_id, room, lease_s, now, (), [function_id])
    if limited:
        exclude_function_ids = [*exclude_function_ids, *limited]
        if only_function_ids is not None:
            only_function_ids = [fid for fid in only_function_ids if fid not in limited]
    if only_function_ids is None or only_function_ids:
        rest = limit - len(claimed)
        claimed += _claim(
            conn, node_id, rest, lease_s, now, exclude_function_ids, only_function_ids
        )
    # RETURNING gives no order; the caller was promised oldest first.
    claimed.sort(key=lambda inv: (inv.run_after, inv.created_at, inv.request_id))
    return claimed


def _claim(
    conn: sa.Connection,
    node_id: str,
    limit: int,
    lease_s: float,
    now: float,
    exclude_function_ids: Sequence[str],
    only_function_ids: Sequence[str] | None,
) -> list[Invocation]:
    """:func:`claim` without ``limits``, in no particular order."""
    if limit < 1:
        return []
    params: dict[str, Any] = {
        "w_now": now,
        "w_limit": limit,
        "w_owner": node_id,
        "w_expires": now + lease_s,
    }
    if only_function_ids is not None:
        params["w_only"] = list(only_function_ids)
    if exclude_function_ids:
        params["w_exclude"] = list(exclude_function_ids)
    statement = _CLAIMS[(only_function_ids is not None, bool(exclude_function_ids))]
    return [invocation_from_row(row) for row in conn.execute(statement, params)]


_LOCK_FUNCTION = sa.select(
    sa.func.pg_advisory_xact_lock(sa.func.hashtextextended(sa.bindparam("w_function_id"), 0))
)
_RUNNING_OF_FUNCTION = (
    sa.select(sa.func.count())
    .select_from(invocations)
    .where(_c.function_id == sa.bindparam("w_function_id"), _c.status == _RUNNING)
)


def _room(conn: sa.Connection, function_id: str, max_running: int) -> int:
    """How many more rows of the function may start: ``max_running`` less its rows running
    on any node. Until the transaction ends, no other claimer counts this function: on
    PostgreSQL a transaction-scoped advisory lock on its id serialises them (and under READ
    COMMITTED the count, a later statement, sees every claim committed before the lock was
    ours); on SQLite the write lock already does."""
    params = {"w_function_id": function_id}
    if conn.dialect.name == "postgresql":
        conn.execute(_LOCK_FUNCTION, params)
    running: int = conn.execute(_RUNNING_OF_FUNCTION, params).scalar_one()
    return max_running - running


def heartbeat(
    conn: sa.Connection, node_id: str, request_ids: Sequence[str], lease_s: float, now: float
) -> set[str]:
    """Extend to ``now + lease_s`` the leases of those rows still running under
    ``node_id``; return their ids."""
    if not request_ids:
        return set()
    result = conn.execute(
        sa.update(invocations)
        .where(
            _c.request_id.in_(list(request_ids)),
            _c.status == _RUNNING,
            _c.lease_owner == node_id,
        )
        .values(lease_expires_at=now + lease_s)
        .returning(_c.request_id)
    )
    return set(result.scalars())


def write_outcome(conn: sa.Connection, invocation: Invocation, owner: str | None) -> bool:
    """Write the outcome columns of ``invocation`` if its row is still running the same
    attempt and leased to ``owner`` (``None``: a running row with no owner). Returns whether
    it was written."""
    params = outcome_values(invocation)
    params["w_request_id"] = invocation.request_id
    params["w_attempt"] = invocation.attempt
    if owner is None:
        statement = _OUTCOME_UNOWNED
    else:
        statement = _OUTCOME_OWNED
        params["w_owner"] = owner
    return conn.execute(statement, params).rowcount == 1


def expired(conn: sa.Connection, now: float, limit: int) -> list[Invocation]:
    """Running rows whose lease ran out before ``now``, longest expired first."""
    result = conn.execute(
        sa.select(invocations)
        .where(_c.status == _RUNNING, _c.lease_expires_at < now)
        .order_by(_c.lease_expires_at)
        .limit(limit)
    )
    return [invocation_from_row(row) for row in result]


# A loose index scan: from one function id to the next in ix_invocations_function_claim,
# and one probe of that function's due queued rows. Its cost grows with the number of
# functions that have rows, not with the depth of the queue. The probe is a scalar subquery
# with LIMIT rather than EXISTS: PostgreSQL turns an EXISTS into a semi-join that reads
# every queued row. Plain SQL that both dialects run alike (Core has no spelling for a
# recursive CTE stepping through a scalar subquery).
_QUEUED_FUNCTION_IDS = sa.text(
    f"""
    WITH RECURSIVE ids (function_id) AS (
        SELECT MIN(function_id) FROM invocations
        UNION ALL
        SELECT (
            SELECT i.function_id FROM invocations AS i
            WHERE i.function_id > ids.function_id
            ORDER BY i.function_id LIMIT 1
        )
        FROM ids WHERE ids.function_id IS NOT NULL
    )
    SELECT function_id FROM ids
    WHERE function_id IS NOT NULL AND (
        SELECT 1 FROM invocations AS q
        WHERE q.function_id = ids.function_id AND q.status = '{_QUEUED}'
        AND q.run_after <= :now
        LIMIT 1
    ) = 1
    ORDER BY function_id
    """
)


def queued_function_ids(conn: sa.Connection, now: float) -> list[str]:
    """Ids of the functions with at least one queued row whose ``run_after <= now``, in
    order; rows of deleted functions count (their rows stay until purged)."""
    return list(conn.execute(_QUEUED_FUNCTION_IDS, {"now": now}).scalars())
