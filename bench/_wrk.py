"""Run ``wrk`` against one URL with a POST body and headers, and read its numbers back.

The Lua script counts responses per HTTP status in every wrk thread and prints one JSON line
when the run is done (requests, duration, latency percentiles, socket errors, statuses), so
nothing is scraped from wrk's human-readable report. ``--latency`` is passed as well, and the
human report is kept in :attr:`WrkResult.text` for the record.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench._common import BenchError

_MARKER = "WRK_JSON "

_SCRIPT = """
wrk.method = "POST"
wrk.body = %(body)s
%(headers)s

local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  statuses = {}
end

function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end

function done(summary, latency, requests)
  local merged = {}
  for _, thread in ipairs(threads) do
    for status, count in pairs(thread:get("statuses")) do
      merged[status] = (merged[status] or 0) + count
    end
  end
  local parts = {}
  for status, count in pairs(merged) do
    table.insert(parts, string.format('"%%d": %%d', status, count))
  end
  local e = summary.errors
  io.write(string.format(
    '%(marker)s{"requests": %%d, "duration_us": %%d, "bytes": %%d, ' ..
    '"p50_us": %%d, "p90_us": %%d, "p99_us": %%d, "max_us": %%d, "mean_us": %%f, ' ..
    '"errors": {"connect": %%d, "read": %%d, "write": %%d, "status": %%d, "timeout": %%d}, ' ..
    '"statuses": {%%s}}\\n',
    summary.requests, summary.duration, summary.bytes,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
    latency.mean, e.connect, e.read, e.write, e.status, e.timeout, table.concat(parts, ", ")))
end
"""


def _lua_string(text: str) -> str:
    # JSON string escapes are valid Lua string escapes for the ASCII text used here.
    if not text.isascii():
        raise ValueError("wrk bodies and headers must be ASCII")
    return json.dumps(text)


@dataclass(frozen=True, slots=True)
class WrkResult:
    """One wrk run. Latencies are in milliseconds; ``statuses`` maps HTTP status → count."""

    requests: int
    duration_s: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    mean_ms: float
    statuses: Mapping[int, int]
    socket_errors: Mapping[str, int]
    text: str

    @property
    def requests_per_s(self) -> float:
        return self.requests / self.duration_s if self.duration_s else 0.0

    @property
    def ok_2xx(self) -> int:
        return sum(n for status, n in self.statuses.items() if 200 <= status < 300)

    @property
    def non_2xx(self) -> int:
        return sum(n for status, n in self.statuses.items() if not 200 <= status < 300)

    def summary(self) -> dict[str, Any]:
        """The numbers a report shows, JSON-ready."""
        return {
            "requests_per_s": round(self.requests_per_s, 1),
            "p50_ms": round(self.p50_ms, 2),
            "p99_ms": round(self.p99_ms, 2),
            "max_ms": round(self.max_ms, 2),
            "requests": self.requests,
            "ok_2xx": self.ok_2xx,
            "non_2xx": self.non_2xx,
            "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
            "socket_errors": sum(self.socket_errors.values()),
        }


def parse(output: str) -> WrkResult:
    """Read the JSON line the script's ``done`` printed. Raises :class:`BenchError` when
    there is none (wrk failed before the end of the run)."""
    for line in output.splitlines():
        if line.startswith(_MARKER):
            data = json.loads(line[len(_MARKER) :])
            break
    else:
        raise BenchError(f"wrk printed no result:\n{output[-2000:]}")
    return WrkResult(
        requests=int(data["requests"]),
        duration_s=data["duration_us"] / 1e6,
        p50_ms=data["p50_us"] / 1e3,
        p90_ms=data["p90_us"] / 1e3,
        p99_ms=data["p99_us"] / 1e3,
        max_ms=data["max_us"] / 1e3,
        mean_ms=data["mean_us"] / 1e3,
        statuses={int(k): int(v) for k, v in data["statuses"].items()},
        socket_errors={k: int(v) for k, v in data["errors"].items() if k != "status"},
        text="\n".join(line for line in output.splitlines() if not line.startswith(_MARKER)),
    )


def run(
    url: str,
    *,
    body: str,
    headers: Mapping[str, str],
    connections: int = 32,
    duration_s: int = 10,
    threads: int = 2,
) -> WrkResult:
    """``wrk -t<threads> -c<connections> -d<duration_s>s --latency`` POSTing ``body`` with
    ``headers`` to ``url``. Raises :class:`BenchError` when wrk is missing (run
    ``bench/setup.sh``) or fails."""
    wrk = shutil.which("wrk")
    if wrk is None:
        raise BenchError("wrk is not installed: run `bash bench/setup.sh`")
    header_lines = "\n".join(
        f"wrk.headers[{_lua_string(k)}] = {_lua_string(v)}" for k, v in headers.items()
    )
    script = _SCRIPT % {"body": _lua_string(body), "headers": header_lines, "marker": _MARKER}
    with tempfile.TemporaryDirectory(prefix="cumulo-wrk-") as tmp:
        script_path = Path(tmp) / "post.lua"
        script_path.write_text(script)
        argv = [wrk, f"-t{threads}", f"-c{connections}", f"-d{duration_s}s", "--latency"]
        argv += ["--timeout", "5s", "-s", str(script_path), url]
        done = subprocess.run(
            argv, capture_output=True, text=True, timeout=duration_s + 30, check=False
        )
    if done.returncode != 0:
        raise BenchError(f"wrk failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    return parse(done.stdout)
