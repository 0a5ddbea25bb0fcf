"""How ``SqlStore`` runs its sync named queries on each database.

A query is a sync function of a ``sqlalchemy.Connection`` (see ``store.queries`` and
``store.queue``). A backend runs it as a committed write or as a read and hands back its
result or its error as raised (driver errors are translated by ``SqlStore``).

* PostgreSQL: the asyncio engine (asyncpg); each write is its own transaction
  (``engine.begin()``) and the query runs through ``run_sync``, so concurrent writers use
  concurrent connections and the server orders them.
* SQLite: a sync engine (the standard ``sqlite3``). Writes go to the single writer thread
  (``store.sqlite_writer``), which commits everything pending in one transaction; reads
  run on a small thread pool of their own, each on its own connection (a WAL snapshot,
  never blocked by the writer).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol, TypeVar

import sqlalchemy as sa

from cumulo.errors import StoreUnavailable
from cumulo.store import engine as db
from cumulo.store.sqlite_writer import SqliteWriter

T = TypeVar("T")

#: Threads (and so connections) serving SQLite reads beside the writer.
SQLITE_READ_THREADS = 2


class Backend(Protocol):
    async def write(
        self, query: Callable[[sa.Connection], T], *, self_contained: bool = False
    ) -> T:
        """Run ``query`` in a write transaction; return its result once committed. Raises
        what it raised (nothing of it is then written), or ``StoreUnavailable`` when
        closed. ``query`` may run more than once, every run but the last rolled back, so
        it must touch nothing but its connection. ``self_contained``: see
        ``SqliteWriter.write`` (a hint; PostgreSQL runs every write in its own
        transaction anyway)."""
        ...

    async def read(self, query: Callable[[sa.Connection], T]) -> T:
        """Run ``query`` on a connection that is never committed. Raises what it raised, or
        ``StoreUnavailable`` when closed."""
        ...

    async def close(self) -> None:
        """Finish (commit) the writes already asked for, then release every connection.
        Idempotent; later calls to :meth:`write` and :meth:`read` raise
        ``StoreUnavailable``."""
        ...


def make_backend(url: sa.URL, connect_args: Mapping[str, Any]) -> Backend:
    """The backend for a URL from ``engine.parse_url``. Does no I/O."""
    if url.get_backend_name() == "sqlite":
        return SqliteBackend(url, connect_args)
    return PostgresBackend(url, connect_args)


class SqliteBackend:
    """Writes through one :class:`SqliteWriter`, reads on :data:`SQLITE_READ_THREADS`
    threads."""

    def __init__(self, url: sa.URL, connect_args: Mapping[str, Any]) -> None:
        # The writer keeps one connection of its own: SQLite drops a connection's page
        # cache when another connection wrote since its last transaction, so a writer that
        # took turns with the readers' connections would re-read its pages every round.
        self._write_engine = db.create_sqlite_engine(url, connect_args, connections=1)
        self._engine = db.create_sqlite_engine(url, connect_args, connections=SQLITE_READ_THREADS)
        self._writer = SqliteWriter(self._write_engine)
        self._readers = ThreadPoolExecutor(
            max_workers=SQLITE_READ_THREADS, thread_name_prefix="cumulo-store-read"
        )
        self._closed = False

    async def write(
        self, query: Callable[[sa.Connection], T], *, self_contained: bool = False
    ) -> T:
        return await self._writer.write(query, self_contained=self_contained)

    async def read(self, query: Callable[[sa.Connection], T]) -> T:
        if self._closed:
            raise StoreUnavailable("the store is closed")
        return await asyncio.get_running_loop().run_in_executor(self._readers, self._read, query)

    def _read(self, query: Callable[[sa.Connection], T]) -> T:
        with self._engine.connect() as conn:
            # One snapshot for the whole query; ended (rolled back) as the connection goes
            # back to the pool.
            db.sqlite_execute(conn, "BEGIN")
            return query(conn)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        await self._writer.close()
        # Reads already started finish on their connections, which the disposed pool then
        # closes as they come back. Closing the last connection checkpoints the WAL: I/O,
        # so not on the event loop.
        self._readers.shutdown(wait=False)
        await asyncio.to_thread(self._engine.dispose)
        await asyncio.to_thread(self._write_engine.dispose)


class PostgresBackend:
    """Each write its own transaction on the asyncio engine's pool."""

    def __init__(self, url: sa.URL, connect_args: Mapping[str, Any]) -> None:
        self._engine = db.create_postgres_engine(url, connect_args)
        self._closed = False
        self._busy = 0
        self._idle = asyncio.Event()
        self._idle.set()

    async def write(
        self, query: Callable[[sa.Connection], T], *, self_contained: bool = False
    ) -> T:
        self._enter()
        try:
            async with self._engine.begin() as conn:
                return await conn.run_sync(query)
        finally:
            self._leave()

    async def read(self, query: Callable[[sa.Connection], T]) -> T:
        self._enter()
        try:
            async with self._engine.connect() as conn:
                return await conn.run_sync(query)
        finally:
            self._leave()

    def _enter(self) -> None:
        if self._closed:
            raise StoreUnavailable("the store is closed")
        self._busy += 1
        self._idle.clear()

    def _leave(self) -> None:
        self._busy -= 1
        if self._busy == 0:
            self._idle.set()

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        await self._idle.wait()
        await self._engine.dispose()
