"""The one writer of an embedded SQLite store: a thread that commits every pending write at
once (group commit).

SQLite takes one writer at a time, and under the server's load many coroutines write at
once: admission batches, claims, one ``finish`` per ended run, log batches, heartbeats.
Giving each its own transaction means a lock, a BEGIN, a COMMIT and a thread hop apiece;
here a write is handed to one thread instead, which takes *everything* pending, runs it in
one ``BEGIN IMMEDIATE`` transaction and commits once.

A write that fails (a name already taken) is rolled back alone and the others still
commit. Writes rarely fail, so a round first runs them back to back; only when one raises
is that transaction rolled back and the round run again with each write in its own
SAVEPOINT. The savepoints are not free: ``sqlite3`` lets go of the GIL around every
statement, and on a server whose event loop wants the GIL, each time the writer takes it
back can cost more than the statement. A query may therefore run twice (the first run
rolled back): it must touch nothing but the connection it is given.

For the same reason a round of one *self-contained* write (a query that keeps its own
statements atomic: it runs one statement, or calls :func:`begin` before running more) runs
without the round's BEGIN and COMMIT: a lone statement commits by itself (SQLite's
autocommit), one statement instead of three. When the server is busy, rounds of one write
(an admission batch, a claim, a finish) are the common case.

A caller's future is resolved only after the COMMIT of its round: an acknowledged write is
on disk (WAL, ``synchronous=NORMAL``: durable across a crash of the process). If the
transaction itself fails (BEGIN, a savepoint, the COMMIT), nothing of the round was written
and every write of it gets that error.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

import sqlalchemy as sa

from cumulo.errors import StoreUnavailable
from cumulo.store.engine import sqlite_execute

log = logging.getLogger(__name__)

T = TypeVar("T")

_SAVEPOINT = "SAVEPOINT cumulo_write"
_ROLLBACK_TO = "ROLLBACK TO SAVEPOINT cumulo_write"
_RELEASE = "RELEASE SAVEPOINT cumulo_write"


@dataclass(frozen=True, slots=True)
class _Write:
    """One caller's write: the query to run and the future (on the caller's loop) to
    resolve with its result."""

    query: Callable[[sa.Connection], Any]
    future: asyncio.Future[Any]
    loop: asyncio.AbstractEventLoop
    self_contained: bool


@dataclass(frozen=True, slots=True)
class _Outcome:
    write: _Write
    result: Any = None
    error: BaseException | None = None


class SqliteWriter:
    """Runs sync queries as committed writes on one thread, many to a transaction.

    :meth:`write` may be called from any event loop; building one starts no thread (the
    first write does). After :meth:`close`, :meth:`write` raises ``StoreUnavailable``.
    """

    def __init__(self, engine: sa.Engine) -> None:
        self._engine = engine
        # One worker: the writer thread. Everything it runs runs in submission order.
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="cumulo-store-write")
        self._mutex = threading.Lock()
        self._pending: list[_Write] = []
        self._draining = False
        self._closed = False

    async def write(
        self, query: Callable[[sa.Connection], T], *, self_contained: bool = False
    ) -> T:
        """Run ``query`` in the next round and return its result once that round committed.
        ``query`` may run twice, the first run rolled back (see the module's docstring).
        ``self_contained``: ``query`` runs a single statement, or calls :func:`begin` before
        its first statement when it runs more, so that it may run alone outside a
        transaction.

        Raises what ``query`` raised (its savepoint was rolled back; the rest of the round
        committed), the driver's error when the round's transaction failed, or
        ``StoreUnavailable`` when the writer is closed. A caller cancelled before its round
        began is left out of it; one cancelled later may still have been written.
        """
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        with self._mutex:
            if self._closed:
                raise StoreUnavailable("the store is closed")
            self._pending.append(_Write(query, future, loop, self_contained))
            if not self._draining:
                self._draining = True
                self._thread.submit(self._drain)
        return await future

    async def close(self) -> None:
        """Refuse new writes, wait until every pending one is committed, stop the thread.
        Idempotent."""
        with self._mutex:
            if self._closed:
                return
            self._closed = True
        # The writer thread runs its tasks in order, so this returns after the last drain
        # (which runs until nothing is pending, and nothing can be added now).
        await asyncio.get_running_loop().run_in_executor(self._thread, _nothing)
        self._thread.shutdown(wait=False)

    def _drain(self) -> None:
        """On the writer thread: commit rounds until nothing is pending."""
        batch: list[_Write] = []
        try:
            while batch := self._take():
                _settle(self._commit(batch))
        except BaseException:
            # Not a database error (those end a round, not the writer): answer every caller
            # rather than leave them waiting, and take no more writes.
            with self._mutex:
                self._closed = True
                self._draining = False
                batch += self._pending
                self._pending = []
            _settle([_Outcome(w, error=StoreUnavailable("the store writer died")) for w in batch])
            raise

    def _take(self) -> list[_Write]:
        """Everything pending (the next round), or [] after marking the drain over."""
        with self._mutex:
            batch, self._pending = self._pending, []
            if not batch:
                self._draining = False
            return batch

    def _commit(self, batch: list[_Write]) -> list[_Outcome]:
        """Run ``batch`` in one transaction and commit: first back to back, then, if a
        write failed, again with each write in a savepoint. A lone self-contained write
        runs on its own (:meth:`_commit_alone`)."""
        if len(batch) == 1 and batch[0].self_contained:
            return self._commit_alone(batch[0])
        done: list[_Outcome] = []
        try:
            with self._engine.connect() as conn:
                try:
                    with conn.begin():
                        sqlite_execute(conn, "BEGIN IMMEDIATE")
                        done = [_run_bare(conn, w) for w in batch if not w.future.cancelled()]
                except _WriteFailed as failed:
                    log.debug("a store write failed (%s); running its round again", failed)
                    done = []
                    with conn.begin():
                        sqlite_execute(conn, "BEGIN IMMEDIATE")
                        for write in batch:
                            if not write.future.cancelled():
                                done.append(_run_one(conn, write))
        except Exception as exc:
            # Nothing of this round was written. A write that failed on its own keeps its
            # error (it would have failed anyway); every other gets the round's.
            log.warning("store write transaction failed: %s", exc)
            own_errors = {id(o.write): o for o in done if o.error is not None}
            return [own_errors.get(id(write)) or _Outcome(write, error=exc) for write in batch]
        return done

    def _commit_alone(self, write: _Write) -> list[_Outcome]:
        """Run a self-contained write with no BEGIN of the writer's: its one statement
        commits by itself, or the transaction it began with :func:`begin` is committed
        (rolled back if it raised) here."""
        if write.future.cancelled():
            return []
        try:
            # SQLAlchemy's BEGIN is a no-op on these connections (see
            # ``engine.create_sqlite_engine``) and its COMMIT and ROLLBACK do nothing
            # when no transaction was begun.
            with self._engine.connect() as conn, conn.begin():
                result = write.query(conn)
        except Exception as exc:
            return [_Outcome(write, error=exc)]
        return [_Outcome(write, result=result)]


def begin(conn: sa.Connection) -> None:
    """Open the write transaction on ``conn`` unless one is open (the round's): what a
    self-contained query calls before running more than one statement."""
    driver = conn.connection.driver_connection
    if driver is not None and not driver.in_transaction:
        sqlite_execute(conn, "BEGIN IMMEDIATE")


class _WriteFailed(Exception):
    """A write raised in a round run without savepoints: roll it back, run it again."""


def _run_bare(conn: sa.Connection, write: _Write) -> _Outcome:
    """Run one write with no savepoint around it. Raises ``_WriteFailed`` if it raised."""
    try:
        return _Outcome(write, result=write.query(conn))
    except Exception as exc:
        raise _WriteFailed(repr(exc)) from exc


def _run_one(conn: sa.Connection, write: _Write) -> _Outcome:
    """Run one write in its own savepoint. Raises (ending the round) only when the
    transaction itself is broken."""
    # Plain SAVEPOINT statements rather than ``conn.begin_nested()``: the same thing to
    # SQLite at a small part of the cost in Python, which matters at one per write.
    sqlite_execute(conn, _SAVEPOINT)
    try:
        result = write.query(conn)
    except Exception as exc:
        try:
            sqlite_execute(conn, _ROLLBACK_TO)
            sqlite_execute(conn, _RELEASE)
        except Exception:
            # SQLite rolled the whole transaction back on this error (disk full, I/O):
            # it is the round's error now.
            raise exc  # noqa: B904 (the rollback's error stays as its context)
        return _Outcome(write, error=exc)
    sqlite_execute(conn, _RELEASE)
    return _Outcome(write, result=result)


def _settle(outcomes: list[_Outcome]) -> None:
    """Resolve each caller's future on its own loop: one wake-up per loop, not per write."""
    by_loop: dict[asyncio.AbstractEventLoop, list[_Outcome]] = {}
    for outcome in outcomes:
        by_loop.setdefault(outcome.write.loop, []).append(outcome)
    for loop, mine in by_loop.items():
        try:
            loop.call_soon_threadsafe(_resolve, mine)
        except RuntimeError:
            # That loop is closed: nobody is waiting for these answers any more.
            log.debug("dropped %d store write results for a closed event loop", len(mine))


def _resolve(outcomes: list[_Outcome]) -> None:
    for outcome in outcomes:
        future = outcome.write.future
        if future.done():  # cancelled by its caller meanwhile
            continue
        if outcome.error is not None:
            future.set_exception(outcome.error)
        else:
            future.set_result(outcome.result)


def _nothing() -> None:
    return None
