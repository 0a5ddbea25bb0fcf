"""Concurrency: 200 async-run invocations running at once on one node, none lost.

An async-run function whose handler sleeps 20 s (``max_concurrency`` unset, ``max_qps`` above
the burst) is invoked 200 times at once on a server with enough instance slots (the default
``max_instances`` of 256). Reported: the time from the first submit until all 200 are
``running`` (seen by polling, and from the records' ``started_at``), the memory of each
instance while its handler sleeps (PSS, RSS and USS from ``/proc/<pid>/smaps_rollup``; the
instances are the zygote's children), and that all 200 ended ``succeeded``.

Run: ``.venv/bin/python -m bench.concurrent [--invocations 200] [--sleep-s 20]``.
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):  # run as `python bench/concurrent.py`: import `bench` from the root
    sys.path[0] = str(Path(__file__).resolve().parent.parent)

import argparse
import asyncio
import statistics
import time
from collections.abc import Sequence
from typing import Any

import httpx

from bench import _common
from bench._report import Check, Report, emit

SLEEPER_SOURCE = """import time


def main_handler(event, context):
    entered = time.time()
    time.sleep(event["sleep_s"])
    return {"entered": entered}
"""
ZYGOTE_MARKER = "cumulo_runtime.zygote"


def memory_kb(pid: int) -> dict[str, int] | None:
    """``Pss``, ``Rss`` and ``Uss`` (Private_Clean + Private_Dirty) of ``pid`` in kB, or None
    when it is gone."""
    try:
        text = Path(f"/proc/{pid}/smaps_rollup").read_text()
    except OSError:
        return None
    fields: dict[str, int] = {}
    for line in text.splitlines()[1:]:
        name, _, rest = line.partition(":")
        if rest.strip().endswith("kB"):
            fields[name.strip()] = int(rest.split()[0])
    return {
        "pss": fields.get("Pss", 0),
        "rss": fields.get("Rss", 0),
        "uss": fields.get("Private_Clean", 0) + fields.get("Private_Dirty", 0),
    }


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def _parent(pid: int) -> int | None:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return None


def instances(server_pid: int) -> tuple[list[int], list[int]]:
    """The server's zygotes and their children, the instances (which, being forks, carry the
    zygote's command line too)."""
    below = set(_common.descendants(server_pid))
    marked = {pid for pid in below if ZYGOTE_MARKER in _cmdline(pid)}
    zygotes = [pid for pid in marked if _parent(pid) not in marked]
    return zygotes, [pid for pid in marked if _parent(pid) in zygotes]


def instance_memory(server_pid: int) -> dict[str, Any]:
    """Memory of the server, its zygotes and their instances, in MB."""
    zygotes, live = instances(server_pid)
    samples = [m for pid in live if (m := memory_kb(pid)) is not None]
    zygote_samples = [m for pid in zygotes if (m := memory_kb(pid)) is not None]
    server = memory_kb(server_pid) or {"pss": 0, "rss": 0, "uss": 0}
    result: dict[str, Any] = {"instances_measured": len(samples), "zygotes": len(zygotes)}
    if samples:
        for kind in ("pss", "rss", "uss"):
            mean_kb = statistics.fmean(m[kind] for m in samples)
            result[f"instance_{kind}_mb"] = round(mean_kb / 1024, 2)
        result["instances_pss_total_mb"] = round(sum(m["pss"] for m in samples) / 1024, 1)
    if zygote_samples:
        mean_kb = statistics.fmean(m["rss"] for m in zygote_samples)
        result["zygote_rss_mb"] = round(mean_kb / 1024, 2)
    result["server_rss_mb"] = round(server["rss"] / 1024, 1)
    return result


async def _submit(server: _common.CumuloServer, count: int, sleep_s: float) -> list[str]:
    """Invoke the sleeper ``count`` times, all at once; returns the request ids. Raises
    :class:`BenchError` on any answer but 202."""
    async with server.async_client(max_connections=count) as client:
        path = _common.invocations_path("sleeper")
        responses = await asyncio.gather(
            *(client.post(path, json={"sleep_s": sleep_s}) for _ in range(count))
        )
    refused = [r for r in responses if r.status_code != 202]
    if refused:
        raise _common.BenchError(
            f"{len(refused)} invocations refused, e.g. {refused[0].status_code} {refused[0].text}"
        )
    return [r.json()["request_id"] for r in responses]


def _wait_all_live(server_pid: int, count: int, timeout_s: float) -> tuple[float | None, int]:
    """Poll /proc until ``count`` instances are live at once. Returns when that happened (Unix
    s; None if it did not within ``timeout_s``) and the most seen at once."""
    deadline = time.monotonic() + timeout_s
    most = 0
    while time.monotonic() < deadline:
        live = len(instances(server_pid)[1])
        most = max(most, live)
        if live >= count:
            return time.time(), most
        time.sleep(0.1)
    return None, most


def run(args: argparse.Namespace) -> Report:
    rows: dict[str, dict[str, Any]] = {}
    notes: list[str] = []
    with (
        _common.work_dir("concurrent") as root,
        _common.cumulo_server(root) as server,
        server.client(timeout_s=60.0) as client,
    ):
        _common.create_function(
            client,
            "sleeper",
            SLEEPER_SOURCE,
            async_run=True,
            timeout_s=args.sleep_s + 120,
            max_qps=100_000,
        )
        first_submit = time.time()
        request_ids = asyncio.run(_submit(server, args.invocations, args.sleep_s))
        accepted_s = time.time() - first_submit
        # Bounded so that the first handlers are still asleep when memory is read.
        all_live, most_live = _wait_all_live(
            server.child.pid, args.invocations, timeout_s=max(1.0, args.sleep_s - 3.0)
        )
        memory = instance_memory(server.child.pid)
        _common.wait_until_none(
            client, "sleeper", "queued,running", timeout_s=args.sleep_s + 120, poll_s=0.5
        )
        records = _common.list_invocations(client, "sleeper")
    statuses: dict[str, int] = {}
    for record in records:
        statuses[record["status"]] = statuses.get(record["status"], 0) + 1
    # The API gives the handler's JSON value as it is: here {"entered": <Unix s>}.
    entered = [r["result"]["entered"] for r in records if r["result"]]
    ours = {r["request_id"] for r in records} & set(request_ids)
    rows["cumulo"] = {
        "invocations": args.invocations,
        "accepted_s": round(accepted_s, 3),
        "all_live_s": round(all_live - first_submit, 3) if all_live else None,
        "most_live_at_once": most_live,
        "last_handler_entered_s": round(max(entered) - first_submit, 3) if entered else None,
        **memory,
        "succeeded": statuses.get("succeeded", 0),
        "statuses": statuses,
    }
    lost = args.invocations - len(ours)
    checks = [
        Check("not succeeded", args.invocations - statuses.get("succeeded", 0), "<=", 0),
        Check("lost (accepted, no record)", lost, "<=", 0),
        Check("instances live at once", most_live, ">=", args.invocations),
    ]
    notes.append(
        f"handlers sleep {args.sleep_s:g} s; memory read once all instances were live; "
        "PSS shares pages with the zygote fairly, USS is what each instance alone holds"
    )
    return Report("concurrent", rows, {}, checks, notes)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="200 concurrent async-run invocations.")
    parser.add_argument("--invocations", type=int, default=200)
    parser.add_argument("--sleep-s", type=float, default=20.0)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    try:
        report = run(parse_args(argv))
    except (_common.BenchError, httpx.HTTPError) as exc:
        _common.did_not_run("concurrent", exc)
        return 1
    emit(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
