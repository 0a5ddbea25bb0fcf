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
* ``32 callers x1 + per-function dispatch, 20k queued``: the 32 callers again, after the
  queue has grown to 20,000 rows of their functions, while another coroutine goes round
  the functions claiming 2 rows of one function at a time (``only_function_ids=[id]``, as
  the dispatcher does) and finishes what it claimed.

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
#: Rows queued before the measured window of the backlog scenario, and its claim size.
BACKLOG_ROWS = 20_000
PER_FUNCTION_CLAIM = 2


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


async def _enqueuer(
    store: SqlStore, function_id: str, batch: int, stop_s: float, calls: list[Call]
) -> None:
    while (started := time.monotonic()) < stop_s:
        now = time.time()
        await store.enqueue([_invocation(function_id, now) for _ in range(batch)])
        ended = time.monotonic()
        calls.append(Call(ended, ended - started, batch))


async def _finish(store: SqlStore, node: str, inv: Invocation, window: Window) -> int:
    """Finish ``inv`` as succeeded; 1 if that was written inside the window, else 0."""
    ended = dataclasses.replace(
        inv, status=Status.SUCCEEDED, result="null", finished_at=time.time()
    )
    return int(await store.finish(ended, node) and window.holds(time.monotonic()))


async def _dispatcher(store: SqlStore, stop_s: float, window: Window, done: list[int]) -> None:
    """Claim and finish rows until ``stop_s``; ``done`` gets [claimed, finished] in window."""
    node = "bench-node"
    while time.monotonic() < stop_s:
        claimed = await store.claim(node, CLAIM_LIMIT, 30.0, time.time() + 1.0)
        if window.holds(time.monotonic()):
            done[0] += len(claimed)
        if not claimed:
            await asyncio.sleep(0.002)  # the server's dispatcher waits for a bus wake-up
            continue
        done[1] += sum(await asyncio.gather(*(_finish(store, node, i, window) for i in claimed)))


async def _per_function_dispatcher(
    store: SqlStore, function_ids: Sequence[str], stop_s: float, window: Window, done: list[int]
) -> None:
    """Go round ``function_ids`` claiming :data:`PER_FUNCTION_CLAIM` rows of one function at
    a time and finishing them, until ``stop_s``; ``done`` as for :func:`_dispatcher`."""
    node = "bench-node"
    while time.monotonic() < stop_s:
        for function_id in function_ids:
            claimed = await store.claim(
                node, PER_FUNCTION_CLAIM, 30.0, time.time() + 1.0, only_function_ids=[function_id]
            )
            if window.holds(time.monotonic()):
                done[0] += len(claimed)
            finished = asyncio.gather(*(_finish(store, node, i, window) for i in claimed))
            done[1] += sum(await finished)


async def _prefill(store: SqlStore, function_ids: Sequence[str], rows: int) -> None:
    """Queue ``rows`` rows spread over ``function_ids``, in batches of 1,000."""
    now = time.time()
    backlog = [_invocation(function_ids[i % len(function_ids)], now) for i in range(rows)]
    for start in range(0, rows, 1_000):
        await store.enqueue(backlog[start : start + 1_000])


async def _scenario(
    backend: str,
    callers: int,
    batch: int,
    dispatch: str | None,
    warmup_s: float,
    duration_s: float,
    backlog: int = 0,
) -> dict[str, Any]:
    """``dispatch``: None, ``"all"`` (:func:`_dispatcher`) or ``"per-function"``
    (:func:`_per_function_dispatcher`); ``backlog`` rows are queued first."""
    async with _fresh_store(backend) as store:
        function_ids = [uuid.uuid4().hex for _ in range(callers)]
        await _prefill(store, function_ids, backlog)
        t0 = time.monotonic()
        window = Window(t0 + warmup_s, t0 + warmup_s + duration_s)
        calls: list[Call] = []
        done = [0, 0]
        tasks: list[Awaitable[None]] = [
            _enqueuer(store, function_id, batch, window.end_s, calls)
            for function_id in function_ids
        ]
        if dispatch == "all":
            tasks.append(_dispatcher(store, window.end_s, window, done))
        elif dispatch == "per-function":
            tasks.append(_per_function_dispatcher(store, function_ids, window.end_s, window, done))
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
    if dispatch is not None:
        row["claimed_per_s"] = round(done[0] / duration_s, 1)
        row["finished_per_s"] = round(done[1] / duration_s, 1)
    return row


def _scenarios() -> dict[str, dict[str, Any]]:
    """Each scenario's name (without the backend) and its :func:`_scenario` arguments."""
    n, g, k = CONCURRENT_CALLERS, SERVER_BATCH, BACKLOG_ROWS // 1000
    scenarios: dict[str, dict[str, Any]] = {
        f"single x{b}": {"callers": 1, "batch": b, "dispatch": None} for b in SINGLE_BATCHES
    }
    scenarios[f"{n} callers x1"] = {"callers": n, "batch": 1, "dispatch": None}
    scenarios[f"{n} callers x1 + dispatch"] = {"callers": n, "batch": 1, "dispatch": "all"}
    scenarios[f"single x{g} + dispatch"] = {"callers": 1, "batch": g, "dispatch": "all"}
    scenarios[f"{n} callers x1 + per-function dispatch, {k}k queued"] = {
        "callers": n,
        "batch": 1,
        "dispatch": "per-function",
        "backlog": BACKLOG_ROWS,
    }
    return scenarios


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--backends", nargs="+", choices=BACKENDS, default=list(BACKENDS))
    parser.add_argument("--duration-s", type=float, default=3.0)
    parser.add_argument("--warmup-s", type=float, default=0.5)
    parser.add_argument(
        "--only",
        metavar="TEXT",
        help="run only the scenarios whose name contains TEXT (e.g. 'per-function')",
    )
    return parser.parse_args(argv)


async def _run(args: argparse.Namespace) -> Report:
    rows: dict[str, dict[str, Any]] = {}
    for backend in args.backends:
        for name, kw in _scenarios().items():
            if args.only is None or args.only in name:
                rows[f"{backend} {name}"] = await _scenario(
                    backend, warmup_s=args.warmup_s, duration_s=args.duration_s, **kw
                )
    return Report(
        bench="store_enqueue",
        rows=rows,
        notes=[
            "rows/s = rows committed per second; latency per enqueue call",
            f"dispatch = one coroutine claiming {CLAIM_LIMIT} rows at a time and finishing "
            "each with its own finish() call, all at once",
            f"per-function dispatch = one coroutine going round the callers' functions, "
            f"claiming {PER_FUNCTION_CLAIM} rows of one function at a time, then finishing "
            "them; the queue holds "
            f"{BACKLOG_ROWS:,} rows of those functions when the run starts",
        ],
    )


def run(args: argparse.Namespace) -> Report:
    return asyncio.run(_run(args))


def main(argv: Sequence[str] | None = None) -> None:
    emit(run(parse_args(argv)))


if __name__ == "__main__":
    main()
