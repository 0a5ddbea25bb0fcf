"""The SQLite store's hottest writes, run straight on the writer's ``sqlite3`` connection:
enqueue, claim, finish (and recover), heartbeat and log appends.

Under load these run thousands of times a second on the one writer thread, and most of
their cost was the Python around each statement (SQLAlchemy's execute path: statement
cache lookup, parameter processing, result rows), not SQLite. Here each statement's SQL
text is built once, parameters go to the driver as plain tuples and rows come back as
plain tuples. Each function has the signature, the results and the errors of its twin in
``store.queue`` / ``store.queries`` (which PostgreSQL keeps using), and hands the cases
off the hot path (keyed rows, claims that exclude functions or name several) to that twin.

Each is *self-contained* in the sense of ``SqliteWriter.write``: it runs one statement, or
calls ``sqlite_writer.begin`` before running more (a large batch, a hand-off to a twin).
Alone in a writer round it then runs with no BEGIN and COMMIT around it; beside other
writes, inside the round's transaction.

Rows are written with multi-row ``INSERT ... VALUES (...), (...)`` rather than an
``executemany`` of a one-row INSERT: ``sqlite3`` lets go of the GIL around every statement
step, and on a server whose event loop thread wants the GIL, each time the writer takes it
back can cost far more than the step itself.

Driver errors come out wrapped as SQLAlchemy's are (``IntegrityError`` and so on), so that
``engine.translate`` and the writer treat them as they treat the twins'.
"""

from __future__ import annotations

import functools
import operator
import sqlite3
from collections.abc import Callable, Sequence
from typing import Any

import sqlalchemy as sa

from cumulo.models import Invocation, LogLine, Status
from cumulo.store import queue
from cumulo.store.schema import (
    invocation_from_row,
    invocation_values,
    invocations,
    log_line_values,
    log_lines,
    outcome_values,
)
from cumulo.store.sqlite_writer import begin

_QUEUED = Status.QUEUED.value
_RUNNING = Status.RUNNING.value

#: Rows per multi-row INSERT: well under SQLite's 32,766 parameters at 26 columns.
_INVOCATION_ROWS_PER_INSERT = 500
_LOG_ROWS_PER_INSERT = 1_000
#: Request ids per heartbeat UPDATE.
_IDS_PER_UPDATE = 1_000

_INVOCATION_COLUMNS = tuple(column.name for column in invocations.c)
_LOG_COLUMNS = tuple(column.name for column in log_lines.c)
_invocation_params: Callable[[dict[str, Any]], tuple[Any, ...]] = operator.itemgetter(
    *_INVOCATION_COLUMNS
)
_log_params: Callable[[dict[str, Any]], tuple[Any, ...]] = operator.itemgetter(*_LOG_COLUMNS)

# The outcome columns of ``schema.outcome_values``: the lease columns only for a retry.
_OUTCOME_COLUMNS = (
    "status",
    "result",
    "error",
    "attempt",
    "run_after",
    "started_at",
    "finished_at",
    "duration_ms",
    "billed_duration_ms",
    "peak_memory_mb",
    "dead_lettered",
)
_RETRY_COLUMNS = (*_OUTCOME_COLUMNS, "lease_owner", "lease_expires_at")
_outcome_params: Callable[[dict[str, Any]], tuple[Any, ...]] = operator.itemgetter(
    *_OUTCOME_COLUMNS
)
_retry_params: Callable[[dict[str, Any]], tuple[Any, ...]] = operator.itemgetter(*_RETRY_COLUMNS)


def _update_outcome(columns: Sequence[str], owned: bool) -> str:
    assignments = ", ".join(f"{name} = ?" for name in columns)
    fence = "lease_owner = ?" if owned else "lease_owner IS NULL"
    return (
        f"UPDATE invocations SET {assignments} "
        f"WHERE request_id = ? AND status = '{_RUNNING}' AND attempt = ? AND {fence}"
    )


#: By (a retry, fenced on an owner).
_OUTCOMES = {
    (retry, owned): _update_outcome(_RETRY_COLUMNS if retry else _OUTCOME_COLUMNS, owned)
    for retry in (False, True)
    for owned in (False, True)
}


def _claim_sql(index: str, one_function: bool) -> str:
    """The claim of ``queue.claim`` (see there why a materialised CTE), with the index to
    walk named: SQLite's planner, without statistics, picks the ``(status, run_after)``
    index for a one-function claim too, and then walks every due row of the other
    functions before reaching this one's."""
    of_function = "function_id = ? AND " if one_function else ""
    return (
        "WITH picked AS MATERIALIZED ("
        f"SELECT request_id FROM invocations INDEXED BY {index} "
        f"WHERE {of_function}status = '{_QUEUED}' AND run_after <= ? "
        "ORDER BY run_after, created_at, request_id LIMIT ?) "
        f"UPDATE invocations SET status = '{_RUNNING}', lease_owner = ?, "
        "lease_expires_at = ?, attempt = attempt + 1, started_at = ? "
        "FROM picked WHERE invocations.request_id = picked.request_id "
        f"AND invocations.status = '{_QUEUED}' "
        f"RETURNING {', '.join(_INVOCATION_COLUMNS)}"
    )


_CLAIM_ANY = _claim_sql("ix_invocations_claim", one_function=False)
_CLAIM_ONE_FUNCTION = _claim_sql("ix_invocations_function_claim", one_function=True)


@functools.lru_cache(maxsize=64)
def _insert_sql(table: str, columns: tuple[str, ...], rows: int, ignore: bool) -> str:
    """``INSERT INTO table (columns) VALUES (?, ...) x rows``, ``ON CONFLICT DO NOTHING``
    when ``ignore``. Cached: the same text also finds the driver's prepared statement."""
    row = f"({', '.join('?' * len(columns))})"
    conflict = " ON CONFLICT DO NOTHING" if ignore else ""
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES {', '.join([row] * rows)}{conflict}"


@functools.lru_cache(maxsize=64)
def _heartbeat_sql(ids: int) -> str:
    return (
        f"UPDATE invocations SET lease_expires_at = ? "
        f"WHERE request_id IN ({', '.join('?' * ids)}) "
        f"AND status = '{_RUNNING}' AND lease_owner = ? RETURNING request_id"
    )


def _driver(conn: sa.Connection) -> sqlite3.Connection:
    driver = conn.connection.driver_connection
    if not isinstance(driver, sqlite3.Connection):
        raise sa.exc.ResourceClosedError("the SQLite connection is closed")
    return driver


def _execute(conn: sa.Connection, sql: str, params: Sequence[Any]) -> sqlite3.Cursor:
    """``sql`` with ``params`` on the driver connection under ``conn``, errors wrapped."""
    try:
        return _driver(conn).execute(sql, params)
    except sqlite3.Error as exc:
        raise sa.exc.DBAPIError.instance(sql, params, exc, sqlite3.Error) from exc


def _insert_rows(
    conn: sa.Connection,
    table: str,
    columns: tuple[str, ...],
    rows: Sequence[tuple[Any, ...]],
    per_insert: int,
    ignore: bool,
) -> None:
    if len(rows) > per_insert:
        begin(conn)
    for start in range(0, len(rows), per_insert):
        page = rows[start : start + per_insert]
        params = [value for row in page for value in row]
        _execute(conn, _insert_sql(table, columns, len(page), ignore), params)


def enqueue(conn: sa.Connection, batch: Sequence[Invocation]) -> list[Invocation]:
    """``queue.enqueue``: rows without an idempotency key (the inputs are then what was
    stored) in multi-row INSERTs; a batch with a keyed row goes to ``queue.enqueue``."""
    if any(inv.idempotency_key is not None for inv in batch):
        begin(conn)
        return queue.enqueue(conn, batch)
    rows = [_invocation_params(invocation_values(inv)) for inv in batch]
    _insert_rows(
        conn, "invocations", _INVOCATION_COLUMNS, rows, _INVOCATION_ROWS_PER_INSERT, ignore=False
    )
    return list(batch)


def claim(
    conn: sa.Connection,
    node_id: str,
    limit: int,
    lease_s: float,
    now: float,
    exclude_function_ids: Sequence[str],
    only_function_ids: Sequence[str] | None,
) -> list[Invocation]:
    """``queue.claim``. A claim of all functions or of one function (the dispatcher's) runs
    here; one that excludes functions or names several goes to ``queue.claim``."""
    if limit < 1 or (only_function_ids is not None and not only_function_ids):
        return []
    if exclude_function_ids or (only_function_ids is not None and len(only_function_ids) > 1):
        begin(conn)
        return queue.claim(
            conn, node_id, limit, lease_s, now, exclude_function_ids, only_function_ids
        )
    lease = (node_id, now + lease_s, now)
    if only_function_ids is None:
        cursor = _execute(conn, _CLAIM_ANY, (now, limit, *lease))
    else:
        cursor = _execute(conn, _CLAIM_ONE_FUNCTION, (only_function_ids[0], now, limit, *lease))
    claimed = [invocation_from_row(row) for row in cursor.fetchall()]
    # RETURNING gives no order; the caller was promised oldest first.
    claimed.sort(key=lambda inv: (inv.run_after, inv.created_at, inv.request_id))
    return claimed


def heartbeat(
    conn: sa.Connection, node_id: str, request_ids: Sequence[str], lease_s: float, now: float
) -> set[str]:
    """``queue.heartbeat``."""
    if not request_ids:
        return set()
    ids = list(dict.fromkeys(request_ids))
    if len(ids) > _IDS_PER_UPDATE:
        begin(conn)
    extended: set[str] = set()
    for start in range(0, len(ids), _IDS_PER_UPDATE):
        page = ids[start : start + _IDS_PER_UPDATE]
        cursor = _execute(conn, _heartbeat_sql(len(page)), (now + lease_s, *page, node_id))
        extended.update(row[0] for row in cursor.fetchall())
    return extended


def write_outcome(conn: sa.Connection, invocation: Invocation, owner: str | None) -> bool:
    """``queue.write_outcome``."""
    values = outcome_values(invocation)
    retry = "lease_owner" in values
    params = _retry_params(values) if retry else _outcome_params(values)
    fence: tuple[Any, ...] = (invocation.request_id, invocation.attempt)
    if owner is not None:
        fence = (*fence, owner)
    cursor = _execute(conn, _OUTCOMES[(retry, owner is not None)], (*params, *fence))
    return cursor.rowcount == 1


def append_logs(conn: sa.Connection, lines: Sequence[LogLine]) -> None:
    """``queries.append_logs``: a repeated ``(request_id, seq)`` is ignored."""
    if not lines:
        return
    rows = [_log_params(log_line_values(line)) for line in lines]
    _insert_rows(conn, "log_lines", _LOG_COLUMNS, rows, _LOG_ROWS_PER_INSERT, ignore=True)
