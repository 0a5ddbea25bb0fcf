"""Live log latency: a line printed by a running handler → the same line at an SSE client.

An async-run function prints ``time.time()`` every 50 ms (plain ``print``, as a user would)
for ~200 lines; a client follows ``GET …/logs?follow=1`` from the moment the invocation is
accepted and stamps each ``log`` event when it arrives. The delta (receive − print) is the
latency; lines printed before the stream was open (replayed on connect) are left out. The
server's own stamp (``ts``) splits it into print → stored/published and published → client.

Run: ``.venv/bin/python -m bench.log_latency [--lines 200] [--interval-s 0.05]``.
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):  # run as `python bench/log_latency.py`: import `bench` from the root
    sys.path[0] = str(Path(__file__).resolve().parent.parent)

import argparse
import json
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from bench import _common
from bench._report import Check, Report, emit, latency_ms

TICKER_SOURCE = """import time


def main_handler(event, context):
    for _ in range(event["lines"]):
        print(repr(time.time()))
        time.sleep(event["interval_s"])
    return {"lines": event["lines"]}
"""


@dataclass(frozen=True, slots=True)
class ServerSentEvent:
    event: str
    data: str
    received_s: float


def server_sent_events(lines: Iterator[str]) -> Iterator[ServerSentEvent]:
    """The events of a ``text/event-stream`` given line by line (``event:`` and ``data:``
    fields; comments and ``id:``/``retry:`` are skipped), each stamped when its blank line
    arrived (Unix s)."""
    event = "message"
    data: list[str] = []
    for line in lines:
        if not line:
            if data:
                yield ServerSentEvent(event, "\n".join(data), time.time())
            event, data = "message", []
            continue
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "event":
            event = value
        elif name == "data":
            data.append(value)


def follow(
    client: httpx.Client, request_id: str, deadline_s: float
) -> tuple[list[tuple[float, float, float | None]], float, str | None]:
    """Follow the invocation's logs to their ``end`` event. Returns ``(printed, received,
    server ts)`` per log line, when the stream opened (Unix s), and the final status.
    Raises :class:`BenchError` past ``deadline_s`` (Unix s)."""
    lines: list[tuple[float, float, float | None]] = []
    path = f"/v1/namespaces/{_common.NAMESPACE}/invocations/{request_id}/logs"
    headers = {"Accept": "text/event-stream"}
    with client.stream("GET", path, params={"follow": 1}, headers=headers) as response:
        response.raise_for_status()
        opened = time.time()
        for sse in server_sent_events(response.iter_lines()):
            if sse.received_s > deadline_s:
                raise _common.BenchError("the log stream did not end in time")
            if sse.event == "end":
                return lines, opened, json.loads(sse.data).get("status")
            if sse.event != "log":
                continue
            line = json.loads(sse.data)
            try:
                printed = float(line["text"])
            except ValueError:
                continue  # not one of the ticker's lines (a platform line)
            lines.append((printed, sse.received_s, _common.unix_time(line.get("ts"))))
    return lines, opened, None


def run(args: argparse.Namespace) -> Report:
    notes: list[str] = []
    rows: dict[str, dict[str, Any]] = {}
    budget_s = args.lines * args.interval_s + 60
    with (
        _common.work_dir("log-latency") as root,
        _common.cumulo_server(root) as server,
        server.client(timeout_s=budget_s) as client,
    ):
        _common.create_function(client, "ticker", TICKER_SOURCE, async_run=True, timeout_s=budget_s)
        event = {"lines": args.lines, "interval_s": args.interval_s}
        response = client.post(_common.invocations_path("ticker"), json=event)
        if response.status_code != 202:
            raise _common.BenchError(f"invoke: {response.status_code} {response.text}")
        request_id = response.json()["request_id"]
        lines, opened, status = follow(client, request_id, time.time() + budget_s)
    live = [line for line in lines if line[0] >= opened]
    if not live:
        raise _common.BenchError(f"no live line arrived (of {len(lines)}); status {status}")
    row: dict[str, Any] = latency_ms([received - printed for printed, received, _ in live])
    row["lines_received"] = len(lines)
    row["final_status"] = status
    rows["print → SSE client"] = row
    stamped = [(p, r, ts) for p, r, ts in live if ts is not None]
    if stamped:
        rows["print → server ts"] = latency_ms([ts - p for p, _, ts in stamped])
        rows["server ts → SSE client"] = latency_ms([r - ts for _, r, ts in stamped])
    notes.append(
        f"{args.lines} lines every {args.interval_s * 1000:g} ms; "
        f"{len(lines) - len(live)} replayed on connect left out"
    )
    checks = [
        Check("log line → SSE p99", row["p99_ms"], "<=", 100, "ms"),
        Check("lines missing", args.lines - len(lines), "<=", 0),
    ]
    return Report("log_latency", rows, {}, checks, notes)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Live log line → SSE client latency.")
    parser.add_argument("--lines", type=int, default=200)
    parser.add_argument("--interval-s", type=float, default=0.05)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    try:
        report = run(parse_args(argv))
    except (_common.BenchError, httpx.HTTPError) as exc:
        _common.did_not_run("log_latency", exc)
        return 1
    emit(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
