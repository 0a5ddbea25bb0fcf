"""The database connection behind ``SqlStore``: engine setup per backend, migrations, and the
translation of driver errors into ``cumulo.errors``.

Two kinds of URL are understood: a SQLite file (``sqlite:///path``; ``sqlite+aiosqlite://``
and ``sqlite+pysqlite://`` mean the same) and a PostgreSQL server
(``postgresql+asyncpg://...``, or ``postgresql://`` for short). SQLite is driven through the
standard library's ``sqlite3`` on a sync engine (the store runs it on threads of its own);
PostgreSQL through asyncpg on an asyncio engine.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from sqlalchemy import event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from cumulo.errors import Conflict, CumuloError, InvalidParameter, StoreUnavailable

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).parent / "migrations"

#: How long a SQLite connection waits for another process's write lock, in milliseconds.
SQLITE_BUSY_TIMEOUT_MS = 10_000

#: Page cache of each SQLite connection, in MiB (SQLite's default is 2). The writer's
#: inserts land all over the request_id index; with the default cache it re-read pages
#: from the OS at every round once the table held a few tens of thousands of rows.
SQLITE_CACHE_MIB = 32

#: Key of the PostgreSQL advisory lock that keeps two nodes from migrating at once.
_MIGRATION_LOCK_KEY = 0x63756D756C6F  # "cumulo"

#: The driver each backend runs on, and the other driver names its URL may carry.
_DRIVERS = {"sqlite": "pysqlite", "postgresql": "asyncpg"}
_ALIASES = {"sqlite": ("aiosqlite",), "postgresql": ()}


def parse_url(url: str) -> sa.URL:
    """Parse and normalise a store URL (to ``sqlite+pysqlite`` or ``postgresql+asyncpg``).
    Raises ``InvalidParameter`` for anything but a file SQLite database or a PostgreSQL
    server."""
    try:
        parsed = sa.make_url(url)
    except sa.exc.ArgumentError as exc:
        raise InvalidParameter(f"bad store URL {url!r}: {exc}", field="store_url") from exc
    backend = parsed.get_backend_name()
    driver = _DRIVERS.get(backend)
    if driver is None:
        raise InvalidParameter(
            f"unsupported store {backend!r}: use sqlite:///path or "
            "postgresql+asyncpg://user@host/db",
            field="store_url",
        )
    accepted = {backend, f"{backend}+{driver}"} | {f"{backend}+{a}" for a in _ALIASES[backend]}
    if parsed.drivername not in accepted:
        raise InvalidParameter(
            f"the {backend} store needs the {driver} driver, not {parsed.drivername!r}",
            field="store_url",
        )
    if backend == "sqlite" and parsed.database in (None, "", ":memory:"):
        # An in-memory database lives in one connection; the store needs several (reads run
        # beside the writer), so it needs a file.
        raise InvalidParameter(
            "the SQLite store needs a file: sqlite:///path/to/cumulo.db", field="store_url"
        )
    return parsed.set(drivername=f"{backend}+{driver}")


def create_postgres_engine(url: sa.URL, connect_args: Mapping[str, Any]) -> AsyncEngine:
    """An asyncio engine for a PostgreSQL URL from :func:`parse_url`. Connects lazily."""
    return create_async_engine(url, connect_args=dict(connect_args), pool_size=10, max_overflow=10)


def create_sqlite_engine(
    url: sa.URL, connect_args: Mapping[str, Any], *, connections: int
) -> sa.Engine:
    """A sync engine for a SQLite URL from :func:`parse_url`, pooling at most
    ``connections`` connections. Connects lazily.

    Every connection gets WAL, the store's pragmas and a larger page cache
    (:data:`SQLITE_CACHE_MIB`), and the sqlite3 module's own transaction handling is
    switched off: it would open a deferred transaction before the first write, and a
    deferred transaction that later wants to write can fail with "database is locked"
    without waiting. The store's code opens its transactions itself
    (:func:`sqlite_execute`): ``BEGIN IMMEDIATE`` for writes (takes the write lock up front,
    waiting up to the busy timeout), a plain ``BEGIN`` for reads (a snapshot that never
    blocks under WAL). SQLAlchemy's own BEGIN is then a no-op, and its COMMIT and ROLLBACK
    end those transactions; savepoints work as SQLite documents them.
    """
    # A connection is used by one thread at a time but not always the same one (the reader
    # threads share a pool; close() disposes from another thread): sqlite3 must not tie it
    # to the thread that opened it.
    engine = sa.create_engine(
        url,
        connect_args={"check_same_thread": False, **connect_args},
        poolclass=sa.QueuePool,
        pool_size=connections,
        max_overflow=0,
    )

    # An executemany INSERT becomes one multi-row INSERT (per page of rows) instead of a
    # statement per row. sqlite3 lets go of the GIL around every statement step, and taking
    # it back from a busy event loop thread can cost the writer far more than the step.
    engine.dialect.use_insertmanyvalues_wo_returning = True

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA cache_size={-SQLITE_CACHE_MIB * 1024}")  # negative: KiB
        cursor.close()

    return engine


def sqlite_execute(conn: sa.Connection, statement: str) -> None:
    """Run a parameterless statement (BEGIN, SAVEPOINT, RELEASE...) straight on the sqlite3
    connection under ``conn``: a few microseconds instead of SQLAlchemy's tens, which counts
    at several per write. Driver errors come out wrapped as SQLAlchemy's are."""
    driver = conn.connection.driver_connection
    if driver is None:  # only a closed or invalidated connection has none
        raise sa.exc.ResourceClosedError("the SQLite connection is closed")
    try:
        driver.execute(statement)
    except sqlite3.Error as exc:
        raise sa.exc.DBAPIError.instance(statement, None, exc, sqlite3.Error) from exc


def upgrade_to_head(connection: sa.Connection) -> None:
    """Run the Alembic migrations up to head on an open connection, inside its transaction.
    Running it again on an up-to-date database changes nothing."""
    if connection.dialect.name == "postgresql":
        # Nodes of a cluster may start together; the second waits and then finds head.
        connection.execute(sa.select(sa.func.pg_advisory_xact_lock(_MIGRATION_LOCK_KEY)))
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["connection"] = connection
    command.upgrade(config, "head")


def insert_ignoring_conflicts(
    conn: sa.Connection,
    table: sa.Table,
    index_elements: Sequence[sa.Column[Any]] | None = None,
    index_where: sa.ColumnElement[bool] | None = None,
) -> sa.Insert:
    """``INSERT ... ON CONFLICT [(index_elements) WHERE index_where] DO NOTHING`` in the
    dialect of ``conn``. Without a target, any unique violation is ignored."""
    insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    return insert(table).on_conflict_do_nothing(
        index_elements=index_elements, index_where=index_where
    )


# --- driver errors ----------------------------------------------------------------------

_UNIQUE_SQLITE = frozenset({"SQLITE_CONSTRAINT_UNIQUE", "SQLITE_CONSTRAINT_PRIMARYKEY"})
_FOREIGN_KEY_SQLITE = frozenset({"SQLITE_CONSTRAINT_FOREIGNKEY"})
_UNIQUE_PG = "23505"
_FOREIGN_KEY_PG = "23503"


#: SQLSTATE classes that mean "cannot use the server now", not "bad statement": connection
#: exception, authorization, unknown database, too many connections, shutting down.
_UNAVAILABLE_PG = ("08", "28", "3D", "53", "57P")


def _sqlstate(exc: sa.exc.DBAPIError) -> str:
    code = getattr(exc.orig, "pgcode", None) or getattr(exc.orig, "sqlstate", None)
    return code if isinstance(code, str) else ""


def _violation(exc: sa.exc.IntegrityError) -> str | None:
    orig = exc.orig
    sqlite_name = getattr(orig, "sqlite_errorname", None)
    if sqlite_name is not None:
        if sqlite_name in _UNIQUE_SQLITE:
            return "unique"
        if sqlite_name in _FOREIGN_KEY_SQLITE:
            return "foreign_key"
        return None
    code = _sqlstate(exc)
    if code == _UNIQUE_PG:
        return "unique"
    if code == _FOREIGN_KEY_PG:
        return "foreign_key"
    return None


def is_unique_violation(exc: sa.exc.IntegrityError) -> bool:
    return _violation(exc) == "unique"


def is_foreign_key_violation(exc: sa.exc.IntegrityError) -> bool:
    return _violation(exc) == "foreign_key"


def translate(exc: BaseException) -> CumuloError:
    """The ``cumulo.errors`` value for a driver or SQLAlchemy error (raise it ``from exc``).

    Connection trouble of any kind becomes ``StoreUnavailable`` (the API answers 503 and
    callers may retry); an unexpected constraint violation becomes ``Conflict``; anything
    else is a plain ``CumuloError`` (a bug, 500).
    """
    if isinstance(exc, sa.exc.IntegrityError):
        return Conflict(f"the store refused a conflicting write: {exc.orig}")
    if isinstance(exc, sa.exc.DBAPIError) and exc.connection_invalidated:
        return StoreUnavailable(f"lost the connection to the store: {exc.orig}")
    if isinstance(exc, sa.exc.DBAPIError) and _sqlstate(exc).startswith(_UNAVAILABLE_PG):
        return StoreUnavailable(f"the store is unavailable: {exc.orig}")
    if isinstance(
        exc,
        sa.exc.OperationalError
        | sa.exc.InterfaceError
        | sa.exc.DisconnectionError
        | sa.exc.TimeoutError
        | OSError
        | TimeoutError,
    ):
        detail = exc.orig if isinstance(exc, sa.exc.DBAPIError) else exc
        return StoreUnavailable(f"the store is unavailable: {detail}")
    if isinstance(exc, sa.exc.DataError):
        log.info("the store refused a value: %s", exc)
        return InvalidParameter("a value was refused by the store (bad characters or size)")
    # The statement and its parameters go to the server log, never into an API answer.
    log.error("store error: %s", exc)
    return CumuloError("store error; see the server log")


#: What :func:`translate` takes; anything else (a cumulo error, a cancellation) passes.
DRIVER_ERRORS: tuple[type[BaseException], ...] = (sa.exc.SQLAlchemyError, OSError, TimeoutError)
