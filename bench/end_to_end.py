"""End to end: 2,000 no-op async invocations, from the first submit to the last completion.

Two workers' worth of concurrency on each side:

- ``cumulo async``: a normal function with ``max_concurrency`` 2, invoked ``?type=async``;
- ``cumulo async-run``: an async-run function with ``max_concurrency`` 2;
- ``celery``: ``celery worker -c 2 --pool prefork`` on Redis;
- ``rq``: two ``rq worker`` processes (the default forking ``Worker``);
- ``rq-simple``: two ``rq worker -w SimpleWorker`` processes (no fork per job).

cumulo is submitted to over HTTP (16 keep-alive connections, one request in flight each, with
the lean client of ``bench/_http.py``: httpx would measure its own CPU time); its
completion time is the last ``finished_at`` in the store; the peers are submitted to with
their Python clients (no HTTP in front) and each job marks itself done with one Redis
``INCR``, polled every millisecond.
Then single-job round trips (submit, then poll until done, every millisecond) give the p50.

Run: ``.venv/bin/python -m bench.end_to_end [--jobs 2000] [--round-trips 30]``.
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):  # run as `python bench/end_to_end.py`: import `bench` from the root
    sys.path[0] = str(Path(__file__).resolve().parent.parent)

import argparse
import asyncio
import json
import time
from collections.abc import Callable, Sequence
from typing import Any

import httpx
import redis
from rq import Queue

from bench import _common
from bench._http import post_many
from bench._report import Check, Report, emit, latency_ms, ratio
from bench.peer_celery import celery_noop
from bench.peer_rq import rq_noop

EVENT = {"job": "noop"}
NOOP_SOURCE = "def main_handler(event, context):\n    return None\n"
POLL_S = 0.001
SYSTEMS = ("cumulo-async", "cumulo-async-run", "celery", "rq", "rq-simple")


# --- cumulo ---------------------------------------------------------------------------------


def _cumulo_round_trip(client: httpx.Client, path: str, timeout_s: float = 30.0) -> float:
    started = time.perf_counter()
    response = client.post(path, json=EVENT)
    response.raise_for_status()
    location = f"/v1/namespaces/{_common.NAMESPACE}/invocations/{response.json()['request_id']}"
    deadline = started + timeout_s
    while time.perf_counter() < deadline:
        status = client.get(location).json()["status"]
        if status not in ("queued", "running"):
            if status != "succeeded":
                raise _common.BenchError(f"round trip ended {status}")
            return time.perf_counter() - started
        time.sleep(POLL_S)
    raise _common.BenchError(f"round trip not done after {timeout_s} s")


def measure_cumulo(async_run: bool, root: Path, args: argparse.Namespace) -> dict[str, Any]:
    config = {"async_run": async_run, "max_concurrency": 2, "timeout_s": 60, "max_qps": 100_000}
    query = "" if async_run else "?type=async"
    with _common.cumulo_server(root) as server, server.client() as client:
        _common.create_function(client, "noop", NOOP_SOURCE, **config)
        _common.create_function(client, "trip", NOOP_SOURCE, **config)
        path = _common.invocations_path("noop") + query
        trip_path = _common.invocations_path("trip") + query
        for _ in range(3):  # warm: the zygote and two instances exist before the clock starts
            _cumulo_round_trip(client, trip_path)

        headers = {"Content-Type": "application/json", **server.headers}
        body = json.dumps(EVENT).encode()
        first_submit = time.time()
        submit_latencies = asyncio.run(
            post_many(server.url, path, headers, body, args.jobs, in_flight=16)
        )
        submitted = time.time()
        _common.wait_until_none(client, "noop", "queued,running", timeout_s=args.timeout_s)
        records = _common.list_invocations(client, "noop")
        trips = [_cumulo_round_trip(client, trip_path) for _ in range(args.round_trips)]
    succeeded = [r for r in records if r["status"] == "succeeded"]
    finished = [t for r in records if (t := _common.unix_time(r["finished_at"])) is not None]
    elapsed_s = max(finished) - first_submit
    return {
        "completions_per_s": round(len(succeeded) / elapsed_s, 1),
        "elapsed_s": round(elapsed_s, 3),
        "submit_per_s": round(args.jobs / (submitted - first_submit), 1),
        "submit_p50_ms": latency_ms(submit_latencies)["p50_ms"],
        "succeeded": len(succeeded),
        "not_succeeded": len(records) - len(succeeded),
        "round_trip_p50_ms": latency_ms(trips)["p50_ms"],
        "round_trip_p99_ms": latency_ms(trips)["p99_ms"],
    }


# --- peers ----------------------------------------------------------------------------------


def _wait_count(client: redis.Redis, key: str, count: int, timeout_s: float) -> float:
    """Poll ``key`` until it reaches ``count``; returns when (Unix time). Raises
    :class:`BenchError` after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if int(client.get(key) or 0) >= count:
            return time.time()
        time.sleep(POLL_S)
    raise _common.BenchError(f"{key} stayed below {count} for {timeout_s} s")


def _measure_peer(
    submit: Callable[[str], None], client: redis.Redis, tag: str, args: argparse.Namespace
) -> dict[str, Any]:
    """Warm the workers, time ``args.jobs`` submissions to their completion, then time
    single round trips. ``submit(counter_key)`` enqueues one no-op job."""
    for _ in range(4):
        submit(f"{tag}:warm")
    _wait_count(client, f"{tag}:warm", 4, timeout_s=60.0)
    done_key = f"{tag}:done"
    first_submit = time.time()
    for _ in range(args.jobs):
        submit(done_key)
    submitted = time.time()
    finished = _wait_count(client, done_key, args.jobs, timeout_s=args.timeout_s)
    trips: list[float] = []
    for n in range(1, args.round_trips + 1):
        started = time.perf_counter()
        submit(f"{tag}:trip")
        _wait_count(client, f"{tag}:trip", n, timeout_s=30.0)
        trips.append(time.perf_counter() - started)
    elapsed_s = finished - first_submit
    return {
        "completions_per_s": round(args.jobs / elapsed_s, 1),
        "elapsed_s": round(elapsed_s, 3),
        "submit_per_s": round(args.jobs / (submitted - first_submit), 1),
        "succeeded": int(client.get(done_key) or 0),
        "round_trip_p50_ms": latency_ms(trips)["p50_ms"],
        "round_trip_p99_ms": latency_ms(trips)["p99_ms"],
    }


def measure_celery(root: Path, args: argparse.Namespace) -> dict[str, Any]:
    tag = _common.run_id()
    argv = [_common.python(), "-m", "celery", "-A", "bench.peer_celery:celery_app", "worker"]
    argv += ["-c", "2", "--pool", "prefork", "-Q", tag, "-n", f"{tag}@localhost"]
    argv += ["--without-gossip", "--without-mingle", "--without-heartbeat", "-l", "WARNING"]
    with _common.redis_scope(tag) as client:
        worker = _common.spawn(argv, log_dir=root, name="celery-worker")
        try:

            def submit(counter_key: str) -> None:
                celery_noop.apply_async((EVENT, counter_key), queue=tag)

            return _measure_peer(submit, client, tag, args)
        finally:
            _common.stop(worker)


def measure_rq(worker_class: str, root: Path, args: argparse.Namespace) -> dict[str, Any]:
    tag = _common.run_id()
    workers: list[_common.Child] = []
    with _common.redis_scope(tag) as client:
        try:
            for n in range(2):
                argv = [_common.python(), "-m", "rq.cli", "worker", "-w", worker_class]
                argv += ["--url", _common.REDIS_URL, "-n", f"{tag}-{n}", "-q", tag]
                workers.append(_common.spawn(argv, log_dir=root, name=f"rq-worker-{n}"))
            queue = Queue(tag, connection=client)

            def submit(counter_key: str) -> None:
                queue.enqueue(rq_noop, EVENT, counter_key, result_ttl=0)

            return _measure_peer(submit, client, tag, args)
        finally:
            for worker in workers:
                _common.stop(worker)


def run(args: argparse.Namespace) -> Report:
    rows: dict[str, dict[str, Any]] = {}
    notes: list[str] = []
    measures: dict[str, Callable[[Path], dict[str, Any]]] = {
        "cumulo-async": lambda root: measure_cumulo(False, root, args),
        "cumulo-async-run": lambda root: measure_cumulo(True, root, args),
        "celery": lambda root: measure_celery(root, args),
        "rq": lambda root: measure_rq("rq.worker.Worker", root, args),
        "rq-simple": lambda root: measure_rq("rq.worker.SimpleWorker", root, args),
    }
    with _common.work_dir("end-to-end") as root:
        for system in args.systems:
            try:
                rows[system] = measures[system](root / system)
            except (_common.BenchError, httpx.HTTPError) as exc:
                notes.append(_common.did_not_run(system, exc))

    def rate(system: str) -> float | None:
        return rows[system]["completions_per_s"] if system in rows else None

    best_cumulo = max(
        (r for s in ("cumulo-async", "cumulo-async-run") if (r := rate(s))), default=None
    )
    ratios = {
        "cumulo-async/celery": ratio(rate("cumulo-async"), rate("celery")),
        "cumulo-async-run/celery": ratio(rate("cumulo-async-run"), rate("celery")),
        "cumulo-async/rq": ratio(rate("cumulo-async"), rate("rq")),
        "cumulo-async/rq-simple": ratio(rate("cumulo-async"), rate("rq-simple")),
    }
    checks = [
        Check("x Celery (best cumulo mode)", ratio(best_cumulo, rate("celery")), ">=", 1.5),
        *(
            Check(f"{s} not succeeded", rows[s]["not_succeeded"], "<=", 0)
            for s in ("cumulo-async", "cumulo-async-run")
            if s in rows
        ),
    ]
    notes.append(f"{args.jobs} jobs, {args.round_trips} round trips; 2 workers / max_concurrency 2")
    return Report("end_to_end", rows, ratios, checks, notes)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="End to end: no-op async jobs to completion.")
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--round-trips", type=int, default=30)
    parser.add_argument("--timeout-s", type=float, default=180.0, help="bound on one drain")
    parser.add_argument("--systems", nargs="+", choices=SYSTEMS, default=list(SYSTEMS))
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    report = run(parse_args(argv))
    emit(report)
    return 0 if report.rows else 1


if __name__ == "__main__":
    sys.exit(main())
