"""Function dependencies: building a numpy + pandas environment, reusing it, starting on it.

1. **Cold build** of ``numpy`` + ``pandas``: cumulo's installer path
   (:class:`cumulo.deps.installer.UvInstaller`: ``uv pip compile``, then ``uv pip install
   --target … --compile-bytecode`` for the clean interpreter, with the host's pip index
   settings from :func:`cumulo.deps.indexes.from_pip`) into a fresh target with a fresh,
   empty uv cache; then once more into another fresh target with that cache warm. Beside it:
   ``pip install numpy pandas`` into a fresh ``python -m venv`` (pip reads the host's index
   settings by itself), with ``--no-cache-dir``, then with a pip cache made warm by an untimed
   install first. pip gets the uv resolution as a constraints file (``-c``) and its installed
   versions are checked to be the same. Venv creation is reported, not counted.
2. **Reuse through a real server**: ``cumulo server`` as a subprocess on a temp data dir; a
   function with ``numpy`` + ``pandas`` requirements is created and waited for (``active``),
   then a second one with the same requirements: create → ``active`` is timed, its build
   must say ``reused: true``, and one sync invoke of it must succeed.
3. **Cold start on the environment**: a real :class:`cumulo.runtime.pool.ProcessPool` whose
   zygote preloads a handler module importing numpy and pandas (``site_dirs`` = the
   environment of step 1); each sample is fork → handler entry on a new instance, as in
   ``bench.cold_start``. Beside it: the same handler importing them at entry, so the zygote
   preloads nothing of them (fork → imports → entry), and ``python -c "import numpy,
   pandas"`` on the clean interpreter with the environment on ``PYTHONPATH`` (spawn to exit).

Run: ``.venv/bin/python -m bench.deps [--cold-runs 100] [--spawn-runs 10]
[--systems build server-reuse cold-start]``.
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):  # run as `python bench/deps.py`: import `bench` from the root
    sys.path[0] = str(Path(__file__).resolve().parent.parent)

import argparse
import asyncio
import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx

from bench import _common
from bench._report import Check, Report, emit, latency_ms, ratio

REQUIREMENTS = "numpy\npandas\n"
PRELOADED_SOURCE = """import time

import numpy
import pandas


class EnteredAt(Exception):
    pass


def main_handler(event, context):
    raise EnteredAt(repr(time.time()))
"""
LAZY_SOURCE = """import time


class EnteredAt(Exception):
    pass


def main_handler(event, context):
    import numpy
    import pandas

    raise EnteredAt(repr(time.time()))
"""
SERVER_SOURCE = """import numpy
import pandas


def main_handler(event, context):
    return {"numpy": numpy.__version__, "pandas": pandas.__version__,
            "sum": int(pandas.Series(numpy.arange(10)).sum())}
"""
SYSTEMS = ("build", "server-reuse", "cold-start")
IMPORT_CODE = "import numpy, pandas"

UV_COLD = "uv cold (empty cache)"
UV_WARM = "uv warm (cache)"
PIP_COLD = "pip cold (--no-cache-dir)"
PIP_WARM = "pip warm (cache)"
SERVER_FIRST = "server: 1st function"
SERVER_SECOND = "server: 2nd, same set"
FORK_PRELOADED = "fork → handler (preloaded)"
FORK_LAZY = "fork → handler (imports at entry)"
PY_IMPORT = "python -c 'import numpy, pandas'"


@dataclass
class _Shared:
    """What the steps share: the clean interpreter, the lock, a uv cache and an installed
    environment (made by the build step, or by the cold-start step when it runs alone)."""

    root: Path
    interpreter: Any = None
    lock: str | None = None
    uv_cache: Path | None = None
    env_dir: Path | None = None
    notes: list[str] = field(default_factory=list)

    def clean(self) -> Any:
        if self.interpreter is None:
            _common.ensure_cumulo_importable()
            from cumulo.runtime import interpreter as clean

            self.interpreter = clean.locate(self.root / "interpreter")
            clean.ensure(self.interpreter)
        return self.interpreter

    def installer(self, cache_dir: Path) -> Any:
        from cumulo.deps.indexes import from_pip
        from cumulo.deps.installer import UvInstaller, find_uv

        indexes = from_pip()
        return UvInstaller(uv=find_uv(), python=self.clean().python, indexes=indexes,
                           cache_dir=cache_dir, timeout_s=900.0)  # fmt: skip


def _pins(lock: str) -> dict[str, str]:
    from cumulo.deps.installer import pinned_packages

    return {_normalize(name): version for name, version in pinned_packages(lock)}


def _normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


# --- 1. cold and warm builds ------------------------------------------------------------


async def _uv_build(shared: _Shared, cache_dir: Path, target: Path) -> dict[str, Any]:
    """Resolve and install the set with cumulo's installer; timings in seconds."""
    installer = shared.installer(cache_dir)
    package = shared.root / "package"
    package.mkdir(exist_ok=True)
    (package / "requirements.txt").write_text(REQUIREMENTS)
    lines: list[str] = []
    started = time.perf_counter()
    lock = await installer.resolve(package / "requirements.txt", cwd=package, on_line=lines.append)
    resolved = time.perf_counter()
    installed = await installer.install(lock, target, cwd=package, on_line=lines.append)
    done = time.perf_counter()
    if shared.lock is not None and lock != shared.lock:
        raise _common.BenchError(f"uv resolved differently the second time:\n{lock}")
    shared.lock = lock
    return {
        "resolve_s": round(resolved - started, 3),
        "install_s": round(done - resolved, 3),
        "total_s": round(done - started, 3),
        "packages": len(installed.packages),
        "installed_mb": round(installed.size_bytes / 1e6, 1),
    }


def _run_logged(argv: Sequence[str], log: Path, env: Mapping[str, str], timeout_s: float) -> None:
    with log.open("ab") as out:
        done = subprocess.run(list(argv), stdin=subprocess.DEVNULL, stdout=out,
                              stderr=subprocess.STDOUT, env=dict(env), timeout=timeout_s,
                              check=False)  # fmt: skip
    if done.returncode != 0:
        tail = log.read_text(errors="replace")[-3000:]
        raise _common.BenchError(f"{argv[0]} … exited {done.returncode}:\n{tail}")


def _pip_build(
    shared: _Shared, venv_dir: Path, cache: Path | None, timeout_s: float
) -> dict[str, Any]:
    """``python -m venv`` (timed apart), then ``pip install numpy pandas -c <uv lock>``;
    checks that pip installed the versions uv resolved."""
    assert shared.lock is not None
    log = shared.root / "pip.log"
    lock_file = shared.root / "uv-lock.txt"
    lock_file.write_text(shared.lock)
    requirements = shared.root / "requirements.txt"
    requirements.write_text(REQUIREMENTS)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    started = time.perf_counter()
    _run_logged([_common.python(), "-m", "venv", str(venv_dir)], log, env, timeout_s)
    made = time.perf_counter()
    argv = [str(venv_dir / "bin" / "python"), "-m", "pip", "install", "-r", str(requirements),
            "-c", str(lock_file)]  # fmt: skip
    if cache is None:
        argv.append("--no-cache-dir")
    else:
        env["PIP_CACHE_DIR"] = str(cache)
    _run_logged(argv, log, env, timeout_s)
    done = time.perf_counter()
    listing = subprocess.run(
        [str(venv_dir / "bin" / "python"), "-c",
         "import importlib.metadata as m, json; "
         "print(json.dumps({d.metadata['Name']: d.version for d in m.distributions()}))"],
        capture_output=True, text=True, check=True, timeout=60, env=env,
    )  # fmt: skip
    got = {_normalize(k): v for k, v in json.loads(listing.stdout).items()}
    wanted = _pins(shared.lock)
    wrong = {name: (version, got.get(name)) for name, version in wanted.items()
             if got.get(name) != version}  # fmt: skip
    if wrong:
        raise _common.BenchError(f"pip installed other versions than uv resolved: {wrong}")
    return {"venv_s (not counted)": round(made - started, 3), "total_s": round(done - made, 3),
            "packages": len(wanted)}  # fmt: skip


def measure_builds(shared: _Shared, args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    rows: dict[str, dict[str, Any]] = {}
    root = shared.root / "builds"
    root.mkdir()
    cache = root / "uv-cache"
    cache.mkdir()
    rows[UV_COLD] = asyncio.run(_uv_build(shared, cache, root / "uv-cold"))
    shared.uv_cache, shared.env_dir = cache, root / "uv-cold"
    rows[UV_WARM] = asyncio.run(_uv_build(shared, cache, root / "uv-warm"))
    shutil.rmtree(root / "uv-warm", ignore_errors=True)
    pins = " ".join(f"{n}=={v}" for n, v in _pins(shared.lock or "").items())
    shared.notes.append(f"resolved set (uv; pip constrained to it and checked): {pins}")
    from cumulo.deps.indexes import from_pip

    shared.notes.append(f"indexes (host's pip settings, both sides): {from_pip().describe()}")
    rows[PIP_COLD] = _pip_build(shared, root / "pip-cold", None, args.build_timeout_s)
    shutil.rmtree(root / "pip-cold", ignore_errors=True)
    pip_cache = root / "pip-cache"
    _pip_build(shared, root / "pip-prime", pip_cache, args.build_timeout_s)  # fills the cache
    shutil.rmtree(root / "pip-prime", ignore_errors=True)
    rows[PIP_WARM] = _pip_build(shared, root / "pip-warm", pip_cache, args.build_timeout_s)
    shutil.rmtree(root / "pip-warm", ignore_errors=True)
    return rows


# --- 2. a second function with the same set, through a real server ------------------------


async def _until_active(client: Any, name: str, timeout_s: float, poll_s: float) -> dict[str, Any]:
    """Poll ``name`` every ``poll_s`` until it is not ``pending`` (``Client.wait_built`` polls
    every 0.2 s, too coarse to time a sub-second build)."""
    deadline = time.monotonic() + timeout_s
    while True:
        function: dict[str, Any] = await client.get_function(name)
        if function.get("state") != "pending":
            if function.get("state") != "active":
                raise _common.BenchError(f"{name} ended {function.get('state')}: "
                                         f"{function.get('state_reason')}")  # fmt: skip
            return function
        if time.monotonic() >= deadline:
            raise _common.BenchError(f"{name} still pending after {timeout_s} s")
        await asyncio.sleep(poll_s)


async def _create_timed(client: Any, name: str, timeout_s: float) -> tuple[float, dict[str, Any]]:
    files = {"index.py": SERVER_SOURCE, "requirements.txt": REQUIREMENTS}
    started = time.perf_counter()
    await client.create_function(name, files=files, timeout_s=60)
    await _until_active(client, name, timeout_s, poll_s=0.01)
    elapsed = time.perf_counter() - started
    build: dict[str, Any] = await client.get_build(name)
    return elapsed, build


def measure_server(shared: _Shared, args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    _common.ensure_cumulo_importable()
    from cumulo.client import Client

    root = shared.root / "server"
    root.mkdir()
    # The uv cache of step 1 when it ran (the first build is then a warm one), else its own.
    cache = shared.uv_cache or root / "uv-cache"
    extra = ["--deps-cache-dir", str(cache)]

    async def drive(url: str, token: str) -> dict[str, dict[str, Any]]:
        async with Client(url, token, timeout_s=60.0) as client:
            first_s, first = await _create_timed(client, "deps-first", args.build_timeout_s)
            second_s, second = await _create_timed(client, "deps-second", 60.0)
            answer = await client.invoke("deps-second", {})
            if answer.get("status") != "succeeded":
                raise _common.BenchError(f"invoking deps-second: {answer}")
        if first.get("reused"):
            shared.notes.append("server: the 1st function's build was reused (unexpected)")
        if first.get("environment_id") != second.get("environment_id"):
            raise _common.BenchError("the two functions got different environments")

        def row(total_s: float, build: dict[str, Any]) -> dict[str, Any]:
            return {"total_s": round(total_s, 3), "build_ms": build.get("duration_ms"),
                    "reused": bool(build.get("reused"))}  # fmt: skip

        return {SERVER_FIRST: row(first_s, first), SERVER_SECOND: row(second_s, second)}

    with _common.cumulo_server(root, extra_args=extra) as server:
        return asyncio.run(drive(server.url, server.token))


# --- 3. cold start on the environment -----------------------------------------------------


async def _ensure_env(shared: _Shared) -> Path:
    """The environment of step 1, or one installed here (with a cache of its own)."""
    if shared.env_dir is None:
        cache = shared.root / "uv-cache-cold-start"
        target = shared.root / "env"
        await _uv_build(shared, cache, target)
        shared.env_dir = target
    return shared.env_dir


async def _cold_starts(
    shared: _Shared, source: str, label: str, runs: int
) -> tuple[list[float], float]:
    """``runs`` cold starts through a real :class:`ProcessPool` of a handler whose code is
    ``source`` with the environment on its path; the samples (s) and the first run's (which
    also starts the zygote)."""
    from cumulo.models import Function, Status
    from cumulo.runtime.base import RunRequest
    from cumulo.runtime.pool import ProcessPool

    env_dir = await _ensure_env(shared)
    root = shared.root / f"pool-{label}"
    code_dir = root / "code"
    code_dir.mkdir(parents=True)
    (code_dir / "index.py").write_text(source)
    function = Function(
        id=f"bench-deps-{label}",
        namespace=_common.NAMESPACE,
        name=f"deps-{label}",
        handler="index.main_handler",
        code_sha256="0" * 64,
        code_size_bytes=len(source),
        timeout_s=60.0,
        memory_mb=1024,
        async_run=False,
        max_qps=1000,
        max_concurrency=None,
        retry_attempts=0,
        max_event_age_s=60.0,
    )
    pool = ProcessPool(work_dir=root / "instances", max_instances=4, instance_idle_s=300.0,
                       interpreter=shared.clean())  # fmt: skip

    async def one() -> float:
        request = RunRequest(function=function, code_dir=code_dir,
                             request_id=os.urandom(16).hex(), event="{}", timeout_s=60.0,
                             site_dirs=(env_dir,))  # fmt: skip
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


def measure_cold_starts(shared: _Shared, args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    rows: dict[str, dict[str, Any]] = {}
    for label, source, row in (
        ("preloaded", PRELOADED_SOURCE, FORK_PRELOADED),
        ("lazy", LAZY_SOURCE, FORK_LAZY),
    ):
        runs = args.cold_runs if label == "preloaded" else args.lazy_runs
        samples, first_s = asyncio.run(_cold_starts(shared, source, label, runs))
        rows[row] = latency_ms(samples)
        shared.notes.append(f"{row}: first run, zygote start included: {first_s * 1000:.1f} ms")
    assert shared.env_dir is not None
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": str(shared.env_dir)}
    python = str(shared.clean().python)
    samples = []
    for _ in range(args.spawn_runs):
        started = time.perf_counter()
        subprocess.run([python, "-c", IMPORT_CODE], check=True, timeout=60,
                       stdin=subprocess.DEVNULL, env=env)  # fmt: skip
        samples.append(time.perf_counter() - started)
    rows[PY_IMPORT] = latency_ms(samples)
    return rows


# --- the report ---------------------------------------------------------------------------


def run(args: argparse.Namespace) -> Report:
    _common.ensure_cumulo_importable()
    from cumulo.client import ApiError
    from cumulo.deps.installer import InstallError

    rows: dict[str, dict[str, Any]] = {}
    notes: list[str] = []
    with _common.work_dir("deps") as root:
        shared = _Shared(root=root, notes=notes)
        steps: dict[str, Callable[[_Shared, argparse.Namespace], dict[str, dict[str, Any]]]] = {
            "build": measure_builds,
            "server-reuse": measure_server,
            "cold-start": measure_cold_starts,
        }
        for system in args.systems:
            try:
                rows.update(steps[system](shared, args))
            except (_common.BenchError, httpx.HTTPError, ImportError, OSError, ApiError,
                    InstallError, subprocess.SubprocessError, TimeoutError) as exc:  # fmt: skip
                notes.append(_common.did_not_run(system, exc))

    def p(row: str, key: str) -> Any:
        return rows[row].get(key) if row in rows else None

    reused = p(SERVER_SECOND, "reused")
    ratios = {
        "uv cold/pip cold (build s)": ratio(p(UV_COLD, "total_s"), p(PIP_COLD, "total_s")),
        "uv warm/pip warm (build s)": ratio(p(UV_WARM, "total_s"), p(PIP_WARM, "total_s")),
        "server 2nd/1st function (create → active)": ratio(
            p(SERVER_SECOND, "total_s"), p(SERVER_FIRST, "total_s")
        ),
        "fork preloaded/python -c import (p50)": ratio(
            p(FORK_PRELOADED, "p50_ms"), p(PY_IMPORT, "p50_ms")
        ),
        "fork preloaded/imports at entry (p50)": ratio(
            p(FORK_PRELOADED, "p50_ms"), p(FORK_LAZY, "p50_ms")
        ),
    }
    checks = [
        Check("2nd function, same set: create → active", p(SERVER_SECOND, "total_s"), "<=", 1, "s"),
        Check("2nd function's build reused", None if reused is None else float(reused), ">=", 1),
        Check("numpy+pandas cold start median", p(FORK_PRELOADED, "p50_ms"), "<=", 15, "ms"),
    ]
    if p(UV_COLD, "total_s") and p(PIP_COLD, "total_s"):
        speedup = p(PIP_COLD, "total_s") / p(UV_COLD, "total_s")
        notes.append(f"cold build: cumulo's installer is {speedup:.1f}x faster than pip")
    return Report("deps", rows, ratios, checks, notes)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="numpy + pandas: cold/warm build vs pip, reuse, cold start."
    )
    parser.add_argument("--cold-runs", type=int, default=100,
                        help="cold starts of the preloaded handler")  # fmt: skip
    parser.add_argument("--lazy-runs", type=int, default=20,
                        help="cold starts of the handler importing at entry")  # fmt: skip
    parser.add_argument("--spawn-runs", type=int, default=10,
                        help="runs of python -c 'import numpy, pandas'")  # fmt: skip
    parser.add_argument("--build-timeout-s", type=float, default=900.0)
    parser.add_argument("--systems", nargs="+", choices=SYSTEMS, default=list(SYSTEMS))
    parser.add_argument(
        "--results-dir",
        type=Path,
        default=_common.REPO_ROOT / "bench" / "results",
        help="where a standalone run writes its JSON (run_all writes its own)",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    report = run(args)
    emit(report)
    # Like run_all's file (same shape), since a full run of this one alone takes minutes.
    args.results_dir.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = args.results_dir / f"{stamp}-deps.json"
    body = {"quick": False, "reports": [report.as_dict()], "failures": {}}
    path.write_text(json.dumps(body, indent=2, sort_keys=True, default=str))
    print(f"results written to {path}")
    return 0 if report.rows else 1


if __name__ == "__main__":
    sys.exit(main())
