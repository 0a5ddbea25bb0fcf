"""The named queries behind ``SqlStore``'s namespace, function, invocation and log methods
(the queue's are in ``store.queue``).

Each is a plain sync function over a ``sqlalchemy.Connection``: writes run inside a
transaction the caller commits, reads on any connection. They speak both dialects, return
plain values (no open cursors) and raise ``cumulo.errors`` for what the caller asked wrong
(a missing row, a name taken); other driver errors pass through for the store to translate.
Times are Unix seconds.
"""

from __future__ import annotations

import base64
import binascii
import time
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.sql import Select

from cumulo.errors import (
    FunctionChanged,
    FunctionExists,
    FunctionNotFound,
    InvalidParameter,
    InvocationNotFound,
    NamespaceExists,
    NamespaceNotFound,
    NotFound,
)
from cumulo.models import (
    TERMINAL_STATUSES,
    Function,
    Invocation,
    InvocationFilter,
    InvocationOrder,
    LogLine,
    Namespace,
    Page,
    Status,
    TerminateMode,
)
from cumulo.store.builds import delete_function_builds
from cumulo.store.catalog import delete_function_catalog
from cumulo.store.engine import (
    insert_ignoring_conflicts,
    is_foreign_key_violation,
    is_unique_violation,
)
from cumulo.store.schema import (
    api_keys,
    code_packages,
    function_from_row,
    function_values,
    functions,
    invocation_from_row,
    invocations,
    log_line_from_row,
    log_line_values,
    log_lines,
    namespace_from_row,
    namespace_values,
    namespaces,
)

_c = invocations.c
_TERMINAL = sorted(s.value for s in TERMINAL_STATUSES)
_LOG_ROWS_PER_INSERT = 1_000

# --- namespaces -------------------------------------------------------------------------


def create_namespace(conn: sa.Connection, namespace: Namespace) -> Namespace:
    """Raises ``NamespaceExists``."""
    try:
        conn.execute(sa.insert(namespaces).values(namespace_values(namespace)))
    except sa.exc.IntegrityError as exc:
        if is_unique_violation(exc):
            raise NamespaceExists(f"namespace {namespace.name!r} already exists") from exc
        raise
    return namespace


def list_namespaces(conn: sa.Connection) -> list[Namespace]:
    rows = conn.execute(sa.select(namespaces).order_by(namespaces.c.name))
    return [namespace_from_row(row) for row in rows]


def delete_namespace(conn: sa.Connection, name: str) -> None:
    """Raises ``NamespaceNotFound``; ``InvalidParameter`` when it still holds functions."""
    held = conn.scalar(sa.select(sa.func.count()).where(functions.c.namespace == name))
    if held:
        raise InvalidParameter(
            f"namespace {name!r} still holds {held} function(s); delete them first",
            field="namespace",
        )
    try:
        deleted = conn.execute(sa.delete(namespaces).where(namespaces.c.name == name))
    except sa.exc.IntegrityError as exc:
        # A function was created in it after the count (PostgreSQL, another node).
        raise InvalidParameter(
            f"namespace {name!r} still holds functions; delete them first", field="namespace"
        ) from exc
    if deleted.rowcount == 0:
        raise NamespaceNotFound(f"namespace {name!r} does not exist")
    # Its keys go with it: a namespace made later under the same name is not theirs.
    conn.execute(
        sa.update(api_keys)
        .where(api_keys.c.namespace == name, api_keys.c.revoked_at.is_(None))
        .values(revoked_at=time.time())
    )


def update_namespace(conn: sa.Connection, name: str, description: str) -> Namespace:
    """Raises ``NamespaceNotFound``."""
    updated = conn.execute(
        sa.update(namespaces).where(namespaces.c.name == name).values(description=description)
    )
    if updated.rowcount == 0:
        raise NamespaceNotFound(f"namespace {name!r} does not exist")
    row = conn.execute(sa.select(namespaces).where(namespaces.c.name == name)).one()
    return namespace_from_row(row)


# --- code packages and functions --------------------------------------------------------


def save_code(conn: sa.Connection, values: dict[str, Any]) -> None:
    """Insert a ``code_packages`` row unless its sha256 is there already."""
    conn.execute(insert_ignoring_conflicts(conn, code_packages), values)


def load_code(conn: sa.Connection, sha256: str) -> bytes:
    """Raises ``NotFound`` for an unknown package."""
    data = conn.scalar(sa.select(code_packages.c.data).where(code_packages.c.sha256 == sha256))
    if data is None:
        raise NotFound(f"no code package with sha256 {sha256}")
    return bytes(data)


def _function_conflict(exc: sa.exc.IntegrityError, function: Function) -> Exception | None:
    """The error a function write that broke a constraint means, or None (unexpected)."""
    if is_foreign_key_violation(exc):
        return NamespaceNotFound(f"namespace {function.namespace!r} does not exist")
    if is_unique_violation(exc):
        return FunctionExists(
            f"function {function.name!r} already exists in namespace {function.namespace!r}"
        )
    return None


def create_function(conn: sa.Connection, function: Function) -> Function:
    """Raises ``FunctionExists``, ``NamespaceNotFound``."""
    try:
        conn.execute(sa.insert(functions).values(function_values(function)))
    except sa.exc.IntegrityError as exc:
        conflict = _function_conflict(exc, function)
        if conflict is None:
            raise
        raise conflict from exc
    return function


def get_function(conn: sa.Connection, namespace: str, name: str) -> Function:
    """Raises ``FunctionNotFound``."""
    row = conn.execute(
        sa.select(functions).where(functions.c.namespace == namespace, functions.c.name == name)
    ).first()
    if row is None:
        raise FunctionNotFound(f"function {name!r} not found in namespace {namespace!r}")
    return function_from_row(row)


def list_functions(conn: sa.Connection, namespace: str) -> list[Function]:
    rows = conn.execute(
        sa.select(functions).where(functions.c.namespace == namespace).order_by(functions.c.name)
    )
    return [function_from_row(row) for row in rows]


def update_function(conn: sa.Connection, function: Function, expected_revision: int) -> Function:
    """Replace every column of the row of ``function.id``, only if its revision is still
    ``expected_revision``. Raises ``FunctionNotFound``, ``FunctionExists``,
    ``NamespaceNotFound``; ``FunctionChanged`` when another write came first."""
    values = function_values(function)
    del values["id"]
    try:
        updated = conn.execute(
            sa.update(functions)
            .where(functions.c.id == function.id, functions.c.revision == expected_revision)
            .values(values)
        )
    except sa.exc.IntegrityError as exc:
        conflict = _function_conflict(exc, function)
        if conflict is None:
            raise
        raise conflict from exc
    if updated.rowcount == 0:
        exists = conn.scalar(sa.select(functions.c.id).where(functions.c.id == function.id))
        if exists is not None:
            raise FunctionChanged(f"function {function.name!r} was changed at the same time; retry")
        raise FunctionNotFound(
            f"function {function.name!r} not found in namespace {function.namespace!r}"
        )
    return function


def delete_function(conn: sa.Connection, namespace: str, name: str) -> None:
    """Raises ``FunctionNotFound``. Its versions, aliases and triggers go with it."""
    function_id = conn.scalar(
        sa.select(functions.c.id).where(
            functions.c.namespace == namespace, functions.c.name == name
        )
    )
    if function_id is None:
        raise FunctionNotFound(f"function {name!r} not found in namespace {namespace!r}")
    delete_function_catalog(conn, function_id)
    build_ids = delete_function_builds(conn, function_id)
    if build_ids:
        conn.execute(sa.delete(log_lines).where(log_lines.c.request_id.in_(build_ids)))
    conn.execute(sa.delete(functions).where(functions.c.id == function_id))


# --- invocations ------------------------------------------------------------------------


def get_invocation(conn: sa.Connection, namespace: str, request_id: str) -> Invocation:
    """Raises ``InvocationNotFound``."""
    row = conn.execute(
        sa.select(invocations).where(_c.namespace == namespace, _c.request_id == request_id)
    ).first()
    if row is None:
        raise InvocationNotFound(f"invocation {request_id!r} not found in namespace {namespace!r}")
    return invocation_from_row(row)


def _filtered(query: Select[Any], where: InvocationFilter, dialect: str) -> Select[Any]:
    query = query.where(_c.namespace == where.namespace)
    if where.function_name is not None:
        query = query.where(_c.function_name == where.function_name)
    if where.status is not None:
        query = query.where(_c.status.in_(sorted(s.value for s in where.status)))
    if where.created_after is not None:
        query = query.where(_c.created_at >= where.created_after)
    if where.created_before is not None:
        query = query.where(_c.created_at < where.created_before)
    if where.dead_lettered is not None:
        query = query.where(_c.dead_lettered == where.dead_lettered)
    if where.request_id is not None:
        query = query.where(_c.request_id == where.request_id)
    if where.types is not None:
        query = query.where(_c.type.in_(sorted(t.value for t in where.types)))
    if where.function_version is not None:
        query = query.where(_c.function_version == where.function_version)
    if where.started_between is not None:
        start, end = where.started_between
        query = query.where(_c.started_at >= start, _c.started_at < end)
    if where.finished_between is not None:
        start, end = where.finished_between
        query = query.where(_c.finished_at >= start, _c.finished_at < end)
    if where.error_type is not None:
        # ``error`` is orjson text: compact, so the pair is spelt exactly like this.
        needle = orjson.dumps({"type": where.error_type}).decode()[1:-1]
        # A case-sensitive substring test (LIKE ignores ASCII case on SQLite).
        find = sa.func.instr if dialect == "sqlite" else sa.func.strpos
        query = query.where(find(_c.error, needle) > 0)
    return query


def list_invocations(
    conn: sa.Connection, where: InvocationFilter, limit: int, after: tuple[float, str] | None
) -> Page:
    """Newest first, at most ``limit`` (>= 1) rows older than ``after`` (a decoded cursor)."""
    query = _filtered(sa.select(invocations), where, conn.dialect.name)
    if after is not None:
        created_at, request_id = after
        query = query.where(
            sa.or_(
                _c.created_at < created_at,
                sa.and_(_c.created_at == created_at, _c.request_id < request_id),
            )
        )
    query = query.order_by(_c.created_at.desc(), _c.request_id.desc()).limit(limit + 1)
    rows = conn.execute(query).all()
    items = [invocation_from_row(row) for row in rows[:limit]]
    next_cursor = None
    if len(rows) > limit:
        last = items[-1]
        next_cursor = encode_cursor(last.created_at, last.request_id)
    return Page(items=items, next_cursor=next_cursor)


def search_invocations(
    conn: sa.Connection,
    where: InvocationFilter,
    order: InvocationOrder,
    ascending: bool,
    offset: int,
    limit: int,
) -> tuple[list[Invocation], int]:
    """One page by offset, and the number of rows that match in all. Rows without a value
    for the order (not started, not finished) come last either way."""
    dialect = conn.dialect.name
    counted = sa.select(sa.func.count()).select_from(invocations)
    total = conn.scalar(_filtered(counted, where, dialect))
    column = _c[order.value]
    direction = column.asc() if ascending else column.desc()
    tie = _c.request_id.asc() if ascending else _c.request_id.desc()
    query = (
        _filtered(sa.select(invocations), where, dialect)
        .order_by(column.is_(None), direction, tie)
        .offset(offset)
        .limit(limit)
    )
    return [invocation_from_row(row) for row in conn.execute(query)], int(total or 0)


def request_terminate(
    conn: sa.Connection, namespace: str, request_id: str, mode: TerminateMode, now: float
) -> Invocation:
    """Terminate a queued row, mark a running one, return a terminal one unchanged. Raises
    ``InvocationNotFound``."""
    mine = sa.and_(_c.namespace == namespace, _c.request_id == request_id)
    # Conditional updates rather than read-then-write: the row may move from queued to
    # running (another node's claim) between two statements, and each UPDATE re-checks.
    stop_queued = (
        sa.update(invocations)
        .where(mine, _c.status == Status.QUEUED.value)
        .values(status=Status.TERMINATED.value, finished_at=now, terminate_mode=mode.value)
        .returning(*invocations.c)
    )
    mark_running = (
        sa.update(invocations)
        .where(
            mine,
            _c.status == Status.RUNNING.value,
            sa.or_(_c.terminate_mode.is_(None), _c.terminate_mode != TerminateMode.FORCE.value),
        )
        .values(terminate_mode=mode.value)
        .returning(*invocations.c)
    )
    for statement in (stop_queued, mark_running, sa.select(invocations).where(mine)):
        row = conn.execute(statement).first()
        if row is not None:
            return invocation_from_row(row)
    raise InvocationNotFound(f"invocation {request_id!r} not found in namespace {namespace!r}")


def count_by_status(conn: sa.Connection) -> dict[tuple[str, str, str], int]:
    query = sa.select(_c.namespace, _c.function_name, _c.status, sa.func.count()).group_by(
        _c.namespace, _c.function_name, _c.status
    )
    return {(ns, fn, status): count for ns, fn, status, count in conn.execute(query)}


def purge(conn: sa.Connection, finished_before: float) -> int:
    """Delete terminal rows finished before the given time, and their log lines; return how
    many invocations went."""
    old = sa.and_(_c.status.in_(_TERMINAL), _c.finished_at < finished_before)
    conn.execute(
        sa.delete(log_lines).where(log_lines.c.request_id.in_(sa.select(_c.request_id).where(old)))
    )
    return conn.execute(sa.delete(invocations).where(old)).rowcount


# --- logs -------------------------------------------------------------------------------


def append_logs(conn: sa.Connection, lines: list[LogLine]) -> None:
    """Insert lines; a repeated ``(request_id, seq)`` is ignored."""
    # Multi-row INSERTs (SQLAlchemy does not batch an executemany with ON CONFLICT itself),
    # each well under both backends' limit of ~32,000 parameters.
    values = [log_line_values(line) for line in lines]
    insert = insert_ignoring_conflicts(conn, log_lines)
    for start in range(0, len(values), _LOG_ROWS_PER_INSERT):
        conn.execute(insert.values(values[start : start + _LOG_ROWS_PER_INSERT]))


def read_logs(conn: sa.Connection, request_id: str, after_seq: int, limit: int) -> list[LogLine]:
    query = (
        sa.select(log_lines)
        .where(log_lines.c.request_id == request_id, log_lines.c.seq > after_seq)
        .order_by(log_lines.c.seq)
        .limit(limit)
    )
    return [log_line_from_row(row) for row in conn.execute(query)]


# --- cursors ----------------------------------------------------------------------------


def encode_cursor(created_at: float, request_id: str) -> str:
    return base64.urlsafe_b64encode(orjson.dumps([created_at, request_id])).decode()


def decode_cursor(cursor: str) -> tuple[float, str]:
    """Raises ``InvalidParameter`` for anything :func:`encode_cursor` did not make."""
    try:
        created_at, request_id = orjson.loads(base64.urlsafe_b64decode(cursor.encode()))
    except (ValueError, TypeError, binascii.Error, orjson.JSONDecodeError) as exc:
        raise InvalidParameter(
            "bad cursor: pass back the next_cursor of a previous page", field="cursor"
        ) from exc
    if not isinstance(created_at, int | float) or not isinstance(request_id, str):
        raise InvalidParameter(
            "bad cursor: pass back the next_cursor of a previous page", field="cursor"
        )
    return float(created_at), request_id
