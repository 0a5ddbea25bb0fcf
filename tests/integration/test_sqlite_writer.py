"""``SqliteWriter``, the single writer of the SQLite store: pending writes share one
transaction, each in its own savepoint, and are acknowledged only once it committed.

Each test parks the writer thread in a first write (a gate) until the writes under test are
all pending, so that they land in one round whatever the timing.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy import event

from cumulo.errors import StoreUnavailable
from cumulo.store import engine as db
from cumulo.store.sqlite_writer import SqliteWriter, begin

pytestmark = pytest.mark.anyio


@dataclass
class Rig:
    writer: SqliteWriter
    engine: sa.Engine
    commits: list[int]
    #: Every SQL statement SQLite ran, on any connection of ``engine``.
    statements: list[str]

    def ids(self) -> list[int]:
        with self.engine.connect() as conn:
            return [row[0] for row in conn.exec_driver_sql("SELECT id FROM item ORDER BY id")]


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    engine = db.create_sqlite_engine(
        db.parse_url(f"sqlite:///{tmp_path / 'w.db'}"), {}, connections=2
    )
    with engine.connect() as conn:  # autocommit: the driver's own transactions are off
        conn.exec_driver_sql("CREATE TABLE parent (id INTEGER PRIMARY KEY)")
        # Checked at COMMIT, so a write can make the whole transaction fail.
        conn.exec_driver_sql(
            "CREATE TABLE item (id INTEGER PRIMARY KEY, parent INTEGER "
            "REFERENCES parent (id) DEFERRABLE INITIALLY DEFERRED)"
        )
    commits: list[int] = []
    event.listen(engine, "commit", lambda _conn: commits.append(1))
    statements: list[str] = []
    engine.pool.dispose()  # connections opened from now on are traced
    event.listen(
        engine, "connect", lambda dbapi, _record: dbapi.set_trace_callback(statements.append)
    )
    writer = SqliteWriter(engine)
    try:
        yield Rig(writer, engine, commits, statements)
    finally:
        await writer.close()
        engine.dispose()


def insert(item_id: int, parent: int | None = None) -> Callable[[sa.Connection], int]:
    def query(conn: sa.Connection) -> int:
        conn.execute(
            sa.text("INSERT INTO item (id, parent) VALUES (:id, :parent)"),
            {"id": item_id, "parent": parent},
        )
        return item_id

    return query


class Gate:
    """A write that holds the writer thread until :meth:`open`."""

    def __init__(self) -> None:
        self._entered = threading.Event()
        self._open = threading.Event()

    def __call__(self, _conn: sa.Connection) -> None:
        self._entered.set()
        self._open.wait(10)

    async def close_on(self, writer: SqliteWriter) -> asyncio.Task[None]:
        task = asyncio.create_task(writer.write(self))
        await asyncio.to_thread(self._entered.wait, 10)
        return task

    def open(self) -> None:
        self._open.set()


async def _one_round(
    rig: Rig, *queries: Callable[[sa.Connection], object], self_contained: bool = False
) -> list[object]:
    """Run ``queries`` as concurrent writes that all wait behind a gate; return each one's
    result or error."""
    gate = Gate()
    gated = await gate.close_on(rig.writer)
    writes = [
        asyncio.create_task(rig.writer.write(q, self_contained=self_contained)) for q in queries
    ]
    await asyncio.sleep(0)  # each write is pending now
    gate.open()
    await gated
    return list(await asyncio.gather(*writes, return_exceptions=True))


async def test_pending_writes_commit_together(rig: Rig) -> None:
    assert await _one_round(rig, *(insert(i) for i in range(50))) == list(range(50))
    assert rig.ids() == list(range(50))
    assert len(rig.commits) == 2, "the gate's round, then one round for all 50 writes"


async def test_a_failing_write_is_rolled_back_alone(rig: Rig) -> None:
    first, duplicate, last = await _one_round(rig, insert(1), insert(1), insert(2))
    assert (first, last) == (1, 2)
    assert isinstance(duplicate, sa.exc.IntegrityError)
    assert rig.ids() == [1, 2]


async def test_a_round_without_failures_takes_no_savepoints(rig: Rig) -> None:
    await _one_round(rig, *(insert(i) for i in range(5)))
    assert rig.ids() == list(range(5))
    assert sum(sql.startswith("INSERT") for sql in rig.statements) == 5
    assert not [sql for sql in rig.statements if "SAVEPOINT" in sql]


async def test_a_failing_write_loses_all_its_statements_and_nothing_else(rig: Rig) -> None:
    def two_inserts(conn: sa.Connection) -> None:
        insert(10)(conn)
        insert(1)(conn)  # taken by the first write: fails after its first insert ran

    first, both, last = await _one_round(rig, insert(1), two_inserts, insert(2))
    assert (first, last) == (1, 2)
    assert isinstance(both, sa.exc.IntegrityError)
    assert rig.ids() == [1, 2]
    assert [sql for sql in rig.statements if sql.startswith("SAVEPOINT")], "second run"


def _written(rig: Rig) -> list[str]:
    """The statements traced, less the reads of :meth:`Rig.ids`."""
    return [sql for sql in rig.statements if not sql.startswith("SELECT")]


async def test_a_lone_self_contained_write_runs_without_a_transaction(rig: Rig) -> None:
    await rig.writer.write(insert(1))  # opens the writer's connection
    rig.statements.clear()
    assert await rig.writer.write(insert(2), self_contained=True) == 2
    assert rig.statements == ["INSERT INTO item (id, parent) VALUES (2, NULL)"]
    assert rig.ids() == [1, 2]  # committed by itself: another connection sees it


async def test_self_contained_writes_beside_others_share_the_round(rig: Rig) -> None:
    await rig.writer.write(insert(0))
    rig.statements.clear()
    assert await _one_round(rig, insert(1), insert(2), self_contained=True) == [1, 2]
    ran = _written(rig)
    # The gate's round (it runs no statement), then one round for both writes.
    assert ran.count("BEGIN IMMEDIATE") == 2
    assert [sql for sql in ran if sql.startswith("INSERT")] == [
        "INSERT INTO item (id, parent) VALUES (1, NULL)",
        "INSERT INTO item (id, parent) VALUES (2, NULL)",
    ]
    assert rig.ids() == [0, 1, 2]


async def test_a_lone_self_contained_write_that_begins_is_atomic(rig: Rig) -> None:
    await rig.writer.write(insert(1))

    def two_inserts(first: int, second: int) -> Callable[[sa.Connection], None]:
        def query(conn: sa.Connection) -> None:
            begin(conn)
            insert(first)(conn)
            insert(second)(conn)

        return query

    with pytest.raises(sa.exc.IntegrityError):
        await rig.writer.write(two_inserts(10, 1), self_contained=True)
    assert rig.ids() == [1], "the first insert was rolled back with the second"
    await rig.writer.write(two_inserts(10, 11), self_contained=True)
    assert rig.ids() == [1, 10, 11]


async def test_a_failed_commit_fails_every_write_of_its_round(rig: Rig) -> None:
    results = await _one_round(rig, insert(1), insert(2, parent=404), insert(3))
    assert all(isinstance(r, sa.exc.IntegrityError) for r in results), results
    assert rig.ids() == []
    assert await rig.writer.write(insert(4)) == 4  # the next round is unharmed
    assert rig.ids() == [4]


async def test_a_write_that_breaks_the_transaction_fails_its_round(rig: Rig) -> None:
    def breaks(conn: sa.Connection) -> None:
        # As SQLite does by itself on some errors (disk full, I/O): the transaction is gone.
        db.sqlite_execute(conn, "ROLLBACK")
        raise RuntimeError("disk on fire")

    results = await _one_round(rig, insert(1), breaks, insert(2))
    assert [str(r) for r in results] == ["disk on fire"] * 3
    assert rig.ids() == []
    assert await rig.writer.write(insert(3)) == 3
    assert rig.ids() == [3]


async def test_a_write_cancelled_before_its_round_is_not_run(rig: Rig) -> None:
    gate = Gate()
    gated = await gate.close_on(rig.writer)
    cancelled = asyncio.create_task(rig.writer.write(insert(1)))
    kept = asyncio.create_task(rig.writer.write(insert(2)))
    await asyncio.sleep(0)
    cancelled.cancel()
    gate.open()
    await gated
    assert await kept == 2
    with pytest.raises(asyncio.CancelledError):
        await cancelled
    assert rig.ids() == [2]


async def test_close_commits_pending_writes_then_refuses(rig: Rig) -> None:
    gate = Gate()
    gated = await gate.close_on(rig.writer)
    writes = [asyncio.create_task(rig.writer.write(insert(i))) for i in range(10)]
    await asyncio.sleep(0)
    closing = asyncio.create_task(rig.writer.close())
    await asyncio.sleep(0.05)
    assert not closing.done(), "close must wait for the pending writes"
    gate.open()
    await closing
    await gated
    assert [w.result() for w in writes] == list(range(10))
    assert rig.ids() == list(range(10))
    with pytest.raises(StoreUnavailable):
        await rig.writer.write(insert(11))
