"""Store write throughput: rows/s of ``SqlStore.enqueue`` on SQLite and on PostgreSQL.

Scenarios, each on a fresh database (a new SQLite file, a new PostgreSQL schema):

* ``single xN``: one coroutine enqueues batches of N rows (1, 10, 100) back to back: the
  server's admission group commit, which makes one ``enqueue`` call per batch.
* ``32 callers x1``: 32 coroutines, each enqueueing one row at a time in a loop: many
  writers contending for the store at once.
* ``32 callers x1 + dispatch``: the same, while another coroutine claims queued rows (64 at
  a time) and finishes each claimed row with its own ``finish`` call, all at once, as the
  dispatcher does when runs end.
* ``single x20 + dispatch``: the server's own pattern: one admission group commit of ~20
  rows at a time, with the same dispatch traffic.

Each scenario runs ``--warmup-s`` then ``--duration-s``; only calls that end inside the
measured window count. Rows/s is rows committed per second; latency is per ``enqueue`` call.

Run: ``.venv/bin/python -m bench.store_enqueue [--duration-s 3] [--backends sqlite postgres]``.
PostgreSQL is taken from ``CUMULO_BENCH_PG_URL`` (default ``postgresql+asyncpg://postgres@
127.0.0.1:5432/test``); a scratch schema is made and dropped for each scenario.
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):  # run as `python bench/store_enqueue.py`: import `bench` too
    sys.path[0] = str(Path(__file__).resolve().parent.parent)

import argparse
import asyncio
import contextlib
import dataclasses
import os
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Sequence
from dataclasses import dataclass
from typing import Any

from bench import _common
from bench._report import Report, emit, latency_ms

_common.ensure_cumulo_importable()

import sqlalchemy as sa  # noqa: E402
from sqlalchemy.ext.asyncio import create_async_engine  # noqa: E402

from cumulo.models import Invocation, InvocationType, Status  # noqa: E402
from cumulo.store.sql import SqlStore  # noqa: E402

PG_URL = os.environ.get("CUMULO_BENCH_PG_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")
BACKENDS = ("sqlite", "postgres")
SINGLE_BATCHES = (1, 10, 100)
CONCURRENT_CALLERS = 32
CLAIM_LIMIT = 64
#: A typical batch of the server's admission group commit under load.
SERVER_BATCH = 20


@dataclass(frozen=True, slots=True)
class Call:
    """One ``enqueue`` call: when it ended (monotonic s), how long it took (s), its rows."""

    ended_s: float
    took_s: float
    rows: int


@dataclass(frozen=True, slots=True)
class Window:
    """The measured interval, in ``time.monotonic()`` seconds."""

    start_s: float
    end_s: float

    def holds(self, t_s: float) -> bool:
        return self.start_s <= t_s < self.end_s


def _invocation(function_id: str, now: float) -> Invocation:
    return Invocation(
        request_id=str(uuid.uuid4()),
        namespace="default",
        function_name="bench",
        function_id=function_id,
        function_revision=1,
        type=InvocationType.ASYNC,
        async_run=False,
        status=Status.QUEUED,
        event='{"n": 1}',
        created_at=now,
        run_after=now,
        max_attempts=3,
        expires_at=now + 21_600.0,
    )


@contextlib.asynccontextmanager
async def _fresh_store(backend: str) -> AsyncIterator[SqlStore]:
    """An open store on an empty database of ``backend``; closed and removed afterwards."""
    if backend == "sqlite":
        with tempfile.TemporaryDirectory(prefix="cumulo-bench-store-") as tmp:
            store = SqlStore(f"sqlite+aiosqlite:///{tmp}/cumulo.db")
            await store.open()
            try:
                yield store
            finally:
                await store.close()
        return
    schema = f"bench_{uuid.uuid4().hex[:12]}"
    admin = create_async_engine(PG_URL)
    try:
        async with admin.begin() as conn:
            await conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
        store = SqlStore(PG_URL, connect_args={"server_settings": {"search_path": schema}})
        try:
            await store.open()
            yield store
        finally:
            await store.close()
            async with admin.begin() as conn:
                await conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
    finally:
        await admin.dispose()


async def _enqueuer(store: SqlStore, batch: int, stop_s: float, calls: list[Call]) -> None:
    function_id = uuid.uuid4().hex
    while (started := time.monotonic()) < stop_s:
        now = time.time()
        await store.enqueue([_invocation(function_id, now) for _ in range(batch)])
        ended = time.monotonic()
        calls.append(Call(ended, ended - started, batch))


async def _dispatcher(store: SqlStore, stop_s: float, window: Window, done: list[int]) -> None:
    """Claim and finish rows until ``stop_s``; ``done`` gets [claimed, finished] in window."""
    node = "bench-node"

    async def finish(inv: Invocation) -> None:
        ended = dataclasses.replace(
            inv, status=Status.SUCCEEDED, result="null", finished_at=time.time()
        )
        if await store.finish(ended, node) and window.holds(time.monotonic()):
            done[1] += 1

    while time.monotonic() < stop_s:
        claimed = await store.claim(node, CLAIM_LIMIT, 30.0, time.time() + 1.0)
        if window.holds(time.monotonic()):
            done[0] += len(claimed)
        if not claimed:
            await asyncio.sleep(0.002)  # the server's dispatcher waits for a bus wake-up
            continue
        await asyncio.gather(*(finish(inv) for inv in claimed))


async def _scenario(
    backend: str, callers: int, batch: int, dispatch: bool, warmup_s: float, duration_s: float
) -> dict[str, Any]:
    async with _fresh_store(backend) as store:
        t0 = time.monotonic()
        window = Window(t0 + warmup_s, t0 + warmup_s + duration_s)
        calls: list[Call] = []
        done = [0, 0]
        tasks: list[Awaitable[None]] = [
            _enqueuer(store, batch, window.end_s, calls) for _ in range(callers)
        ]
        if dispatch:
            tasks.append(_dispatcher(store, window.end_s, window, done))
        await asyncio.gather(*tasks)
    counted = [c for c in calls if window.holds(c.ended_s)]
    row: dict[str, Any] = {
        "backend": backend,
        "callers": callers,
        "batch": batch,
        "rows_per_s": round(sum(c.rows for c in counted) / duration_s, 1),
        "calls_per_s": round(len(counted) / duration_s, 1),
        **latency_ms([c.took_s for c in counted] or [float("nan")]),
    }
    if dispatch:
        row["claimed_per_s"] = round(done[0] / duration_s, 1)
        row["finished_per_s"] = round(done[1] / duration_s, 1)
    return row


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--backends", nargs="+", choices=BACKENDS, default=list(BACKENDS))
    parser.add_argument("--duration-s", type=float, default=3.0)
    parser.add_argument("--warmup-s", type=float, default=0.5)
    return parser.parse_args(argv)


async def _run(args: argparse.Namespace) -> Report:
    rows: dict[str, dict[str, Any]] = {}
    for backend in args.backends:
        timing = (args.warmup_s, args.duration_s)
        for batch in SINGLE_BATCHES:
            rows[f"{backend} single x{batch}"] = await _scenario(backend, 1, batch, False, *timing)
        n = CONCURRENT_CALLERS
        rows[f"{backend} {n} callers x1"] = await _scenario(backend, n, 1, False, *timing)
        rows[f"{backend} {n} callers x1 + dispatch"] = await _scenario(backend, n, 1, True, *timing)
        g = SERVER_BATCH
        rows[f"{backend} single x{g} + dispatch"] = await _scenario(backend, 1, g, True, *timing)
    return Report(
        bench="store_enqueue",
        rows=rows,
        notes=[
            "rows/s = rows committed per second; latency per enqueue call",
            f"dispatch = one coroutine claiming {CLAIM_LIMIT} rows at a time and finishing "
            "each with its own finish() call, all at once",
        ],
    )


def run(args: argparse.Namespace) -> Report:
    return asyncio.run(_run(args))


def main(argv: Sequence[str] | None = None) -> None:
    emit(run(parse_args(argv)))


if __name__ == "__main__":
    main()
