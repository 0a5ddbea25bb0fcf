"""Cold start and warm sync overhead.

1. **Cold start**: ``cumulo.runtime.pool.ProcessPool`` used directly. The handler raises at
   entry with ``time.time()`` in its message, so every run fails, its instance is repossessed
   and the next run forks a new one from the (already started) zygote: each sample is
   ``pool.run()`` called → handler entered, cold, and is checked to be one. Beside it, in the
   same run: ``python -c pass`` and ``python -c "import json, asyncio"`` (spawn to exit), what
   a cold start would cost without a zygote.
2. **Warm sync invoke**: sequential ``POST …/invocations?type=sync`` of a no-op over HTTP
   with one httpx client, beside the same client POSTing to a FastAPI endpoint returning a
   constant (served the same way): the difference is cumulo's overhead per sync call.

Run: ``.venv/bin/python -m bench.cold_start [--cold-runs 100] [--warm-requests 500]``.
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):  # run as `python bench/cold_start.py`: import `bench` from the root
    sys.path[0] = str(Path(__file__).resolve().parent.parent)

import argparse
import asyncio
import os
import subprocess
import time
from collections.abc import Callable, Sequence
from typing import Any

import httpx

from bench import _common
from bench._report import Check, Report, emit, latency_ms, ratio

PROBE_SOURCE = """import time


class EnteredAt(Exception):
    pass


def main_handler(event, context):
    raise EnteredAt(repr(time.time()))
"""
NOOP_SOURCE = "def main_handler(event, context):\n    return None\n"
SYSTEMS = ("pool-cold", "python-baselines", "warm-sync")


async def _cold_starts(root: Path, runs: int) -> tuple[list[float], float]:
    """``runs`` cold starts through a real :class:`ProcessPool`; returns the samples (s) and
    the first run's (which also starts the zygote)."""
    _common.ensure_cumulo_importable()
    from cumulo.models import Function, Status
    from cumulo.runtime.base import RunRequest
    from cumulo.runtime.pool import ProcessPool

    code_dir = root / "code"
    code_dir.mkdir(parents=True)
    (code_dir / "index.py").write_text(PROBE_SOURCE)
    function = Function(
        id="bench-cold-start",
        namespace=_common.NAMESPACE,
        name="cold-start",
        handler="index.main_handler",
        code_sha256="0" * 64,
        code_size_bytes=len(PROBE_SOURCE),
        timeout_s=30.0,
        memory_mb=256,
        async_run=False,
        max_qps=1000,
        max_concurrency=None,
        retry_attempts=0,
        max_event_age_s=60.0,
    )
    pool = ProcessPool(work_dir=root / "pool", max_instances=4, instance_idle_s=300.0)

    async def one() -> float:
        request = RunRequest(
            function=function,
            code_dir=code_dir,
            request_id=os.urandom(16).hex(),
            event="{}",
            timeout_s=30.0,
        )
        called = time.time()
        outcome = await pool.run(request, lambda stream, line: None)
        error = outcome.error or {}
        if outcome.status is not Status.FAILED or error.get("type") != "EnteredAt":
            raise _common.BenchError(f"probe run ended {outcome.status}: {error}")
        if not outcome.cold_start:
            raise _common.BenchError("the pool reused an instance: not a cold start")
        return float(error["message"]) - called

    try:
        first = await one()
        return [await one() for _ in range(runs)], first
    finally:
        await pool.close()


def _spawn_times(argv: Sequence[str], runs: int) -> list[float]:
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(argv, check=True, timeout=30, stdin=subprocess.DEVNULL)
        samples.append(time.perf_counter() - started)
    return samples


def _sequential(client: httpx.Client, url: str, requests: int, warmup: int) -> list[float]:
    """POST ``{}`` to ``url`` ``warmup + requests`` times, one at a time; returns the last
    ``requests`` latencies (s). Raises :class:`BenchError` on a non-2xx answer or a run that
    did not succeed."""
    samples = []
    for n in range(warmup + requests):
        started = time.perf_counter()
        response = client.post(url, json={})
        elapsed = time.perf_counter() - started
        if not response.is_success:
            raise _common.BenchError(f"{url}: {response.status_code} {response.text}")
        body = response.json()
        if body.get("status") not in ("succeeded", "queued"):
            raise _common.BenchError(f"{url}: run ended {body.get('status')}: {body}")
        if n >= warmup:
            samples.append(elapsed)
    return samples


def measure_warm_sync(root: Path, args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    rows: dict[str, dict[str, Any]] = {}
    with _common.cumulo_server(root / "cumulo") as server, server.client() as client:
        _common.create_function(client, "noop", NOOP_SOURCE, timeout_s=30)
        path = _common.invocations_path("noop") + "?type=sync"
        samples = _sequential(client, path, args.warm_requests, warmup=50)
        rows["cumulo sync invoke"] = latency_ms(samples)
    peer_root = root / "fastapi"
    peer_root.mkdir()
    with (
        _common.uvicorn_server("bench.peer_apps:fastapi_constant", peer_root) as url,
        httpx.Client(headers={"Authorization": "Bearer peer-token"}) as client,
    ):
        samples = _sequential(client, f"{url}/invoke", args.warm_requests, warmup=50)
        rows["fastapi constant"] = latency_ms(samples)
    return rows


def run(args: argparse.Namespace) -> Report:
    rows: dict[str, dict[str, Any]] = {}
    notes: list[str] = []
    with _common.work_dir("cold-start") as root:

        def cold() -> None:
            samples, first_s = asyncio.run(_cold_starts(root / "pool", args.cold_runs))
            rows["cumulo cold start (fork → handler)"] = latency_ms(samples)
            notes.append(f"first run, zygote start included: {first_s * 1000:.1f} ms")

        def baselines() -> None:
            for label, code in (
                ("python -c pass", "pass"),
                ("python -c 'import json, asyncio'", "import json, asyncio"),
            ):
                samples = _spawn_times([_common.python(), "-c", code], args.spawn_runs)
                rows[label] = latency_ms(samples)

        def warm() -> None:
            rows.update(measure_warm_sync(root / "warm", args))

        steps: dict[str, Callable[[], None]] = {
            "pool-cold": cold,
            "python-baselines": baselines,
            "warm-sync": warm,
        }
        for system in args.systems:
            try:
                steps[system]()
            except (_common.BenchError, httpx.HTTPError, ImportError, OSError) as exc:
                notes.append(_common.did_not_run(system, exc))

    def p(row: str, key: str) -> float | None:
        return rows[row][key] if row in rows else None

    cold_row = "cumulo cold start (fork → handler)"
    sync_p50, constant_p50 = p("cumulo sync invoke", "p50_ms"), p("fastapi constant", "p50_ms")
    ratios = {
        "cold/python -c pass (p50)": ratio(p(cold_row, "p50_ms"), p("python -c pass", "p50_ms")),
        "sync/fastapi constant (p50)": ratio(sync_p50, constant_p50),
    }
    overhead = None
    if sync_p50 is not None and constant_p50 is not None:
        overhead = round(sync_p50 - constant_p50, 3)
    checks = [
        Check("cold start median", p(cold_row, "p50_ms"), "<=", 10, "ms"),
        Check("warm sync p50", sync_p50, "<=", 3, "ms"),
    ]
    if overhead is not None:
        notes.append(f"warm sync overhead over FastAPI constant (p50): {overhead} ms")
    return Report("cold_start", rows, ratios, checks, notes)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Cold start and warm sync invoke latency.")
    parser.add_argument("--cold-runs", type=int, default=100)
    parser.add_argument("--spawn-runs", type=int, default=30)
    parser.add_argument("--warm-requests", type=int, default=500)
    parser.add_argument("--systems", nargs="+", choices=SYSTEMS, default=list(SYSTEMS))
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    report = run(parse_args(argv))
    emit(report)
    return 0 if report.rows else 1


if __name__ == "__main__":
    sys.exit(main())
