"""Run every benchmark, one after the other, and print one summary of ratios and targets.

Each benchmark prints its own report as it finishes; the summary table at the end holds every
ratio and every target with its verdict, and the whole run is written as JSON to
``bench/results/<UTC time>.json``. ``--quick`` shortens every workload (for a smoke run; its
numbers are not the reference ones).

Run: ``.venv/bin/python -m bench.run_all [--quick] [--only accept cold_start deps ...]``.
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):  # run as `python bench/run_all.py`: import `bench` from the root
    sys.path[0] = str(Path(__file__).resolve().parent.parent)

import argparse
import json
import time
import traceback
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Protocol

from rich.console import Console

from bench import _common, accept, cold_start, concurrent, deps, end_to_end, log_latency
from bench._report import Report, checks_table, emit


class Bench(Protocol):
    """What every benchmark module offers."""

    def parse_args(self, argv: Sequence[str] | None = None) -> argparse.Namespace: ...

    def run(self, args: argparse.Namespace) -> Report: ...


BENCHES: dict[str, Bench] = {
    "accept": accept,
    "end_to_end": end_to_end,
    "cold_start": cold_start,
    "log_latency": log_latency,
    "concurrent": concurrent,
    "deps": deps,
}
#: Each benchmark's arguments for ``--quick``: shorter, for a smoke run.
QUICK_ARGS: dict[str, list[str]] = {
    "accept": ["--duration-s", "5"],
    # The forking RQ worker is left out: at ~20-90 jobs/s it alone would take most of it.
    "end_to_end": [
        "--jobs",
        "500",
        "--round-trips",
        "10",
        "--systems",
        "cumulo-async",
        "cumulo-async-run",
        "celery",
        "rq-simple",
    ],
    "cold_start": ["--cold-runs", "30", "--spawn-runs", "10", "--warm-requests", "200"],
    "log_latency": ["--lines", "60"],
    "concurrent": ["--invocations", "50", "--sleep-s", "8"],
    # The builds cannot be shortened (one of each); only the cold-start samples are fewer.
    "deps": ["--cold-runs", "30", "--lazy-runs", "5", "--spawn-runs", "5"],
}


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Run every cumulo benchmark.")
    parser.add_argument("--quick", action="store_true", help="shorter workloads (smoke run)")
    parser.add_argument("--only", nargs="+", choices=list(BENCHES), default=list(BENCHES))
    parser.add_argument("--results-dir", type=Path, default=_common.REPO_ROOT / "bench" / "results")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    console = Console(file=sys.stdout, width=160)
    reports: list[Report] = []
    failures: dict[str, str] = {}
    started = time.monotonic()
    for name in args.only:
        bench = BENCHES[name]
        console.rule(name)
        try:
            report = bench.run(bench.parse_args(QUICK_ARGS[name] if args.quick else []))
        except Exception as exc:
            # One benchmark that cannot run (or breaks on an API that changed) must not hide
            # the others' results; its traceback is printed and the run exits non-zero.
            traceback.print_exc()
            failures[name] = _common.did_not_run(name, exc)
            continue
        emit(report, console)
        reports.append(report)
    console.rule("summary")
    console.print(checks_table("cumulo benchmarks: ratios and targets", reports))
    for error in failures.values():
        console.print(error, style="red", markup=False)
    console.print(f"total {time.monotonic() - started:.0f} s")
    args.results_dir.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = args.results_dir / f"{stamp}.json"
    path.write_text(
        json.dumps(
            {"quick": args.quick, "reports": [r.as_dict() for r in reports], "failures": failures},
            indent=2,
            sort_keys=True,
            default=str,
        )
    )
    console.print(f"results written to {path}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
