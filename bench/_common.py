"""What every benchmark shares: free ports, child processes, a cumulo server, peer servers.

Every process a benchmark starts runs in its own session (process group) and is stopped with
:func:`stop` in a ``finally``: SIGTERM to the group, then SIGKILL after a grace period, so
nothing outlives the benchmark. Everything listens on and talks to 127.0.0.1 only.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import httpx

if TYPE_CHECKING:
    import redis

REPO_ROOT = Path(__file__).resolve().parent.parent
LOCALHOST = "127.0.0.1"
REDIS_URL = os.environ.get("BENCH_REDIS_URL", f"redis://{LOCALHOST}:6379/0")
NAMESPACE = "default"

#: The uvicorn options cumulo's server uses; every peer server gets the same (one worker).
UVICORN_OPTIONS: tuple[str, ...] = (
    "--loop",
    "uvloop",
    "--http",
    "httptools",
    "--no-access-log",
    "--log-level",
    "warning",
)


class BenchError(RuntimeError):
    """A benchmark could not run (a server did not start, a peer failed, a count is off)."""


def did_not_run(what: str, exc: BaseException) -> str:
    """Print ``exc`` in full on stderr; return a one-line summary for a report's notes (the
    first line of the error and the last line of any log it carries)."""
    print(f"{what} did not run: {exc!r}", file=sys.stderr)
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()] or [repr(exc)]
    summary = lines[0] if len(lines) == 1 else f"{lines[0]} … {lines[-1]}"
    return f"{what} did not run: {type(exc).__name__}: {summary}"


def python() -> str:
    """The interpreter running the benchmark (the project's venv), used for every child."""
    return sys.executable


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOCALHOST, 0))
        port: int = sock.getsockname()[1]
        return port


def ensure_cumulo_importable() -> None:
    """Let this process import ``cumulo`` from the source tree when it is not installed (a
    benchmark that drives a part of cumulo in-process calls this first)."""
    try:
        import cumulo  # noqa: F401
    except ImportError:
        sys.path.insert(0, str(REPO_ROOT / "src"))


def child_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """This process's environment plus ``PYTHONPATH`` = ``src`` and the repository root, so a
    child can import both ``cumulo`` (not yet installed) and ``bench``."""
    env = dict(os.environ)
    paths = [str(REPO_ROOT / "src"), str(REPO_ROOT)]
    if env.get("PYTHONPATH"):
        paths.append(env["PYTHONPATH"])
    env["PYTHONPATH"] = os.pathsep.join(paths)
    env.update(extra or {})
    return env


@dataclass(frozen=True, slots=True)
class Child:
    """A started process and the file its stdout and stderr go to."""

    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def log_tail(self, max_chars: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-max_chars:]
        except OSError:
            return ""


def spawn(
    argv: Sequence[str],
    *,
    log_dir: Path,
    name: str,
    env: Mapping[str, str] | None = None,
    cwd: Path = REPO_ROOT,
) -> Child:
    """Start ``argv`` in a new session (so :func:`stop` can signal its whole group), with
    stdout and stderr appended to ``<log_dir>/<name>.log``."""
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"{name}.log"
    log: IO[bytes] = log_path.open("ab")
    try:
        process = subprocess.Popen(
            list(argv),
            cwd=cwd,
            env=dict(env) if env is not None else child_env(),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    finally:
        log.close()
    return Child(process, log_path)


def _stat_fields(pid: int) -> list[str] | None:
    """Fields 3.. of /proc/<pid>/stat (state, ppid, ...), or None when the process is gone.
    The command name (field 2) may hold spaces and parentheses: split after the last ")"."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def descendants(pid: int) -> list[int]:
    """Every live process below ``pid`` (children, grandchildren, ...), read from /proc."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (fields := _stat_fields(int(entry.name))) is not None:
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    found: list[int] = []
    todo = [pid]
    while todo:
        for child_pid in children.get(todo.pop(), []):
            found.append(child_pid)
            todo.append(child_pid)
    return found


def _start_time(pid: int) -> str | None:
    fields = _stat_fields(pid)
    return fields[19] if fields is not None else None


def stop(child: Child, grace_s: float = 5.0) -> None:
    """SIGTERM to the child's process group, SIGKILL after ``grace_s``; waits for the child,
    then SIGKILLs whatever it forked into other groups and left behind (a server's zygotes and
    instances live in groups of their own). Idempotent; never raises for what is gone."""
    # Remember each pid with its start time, so a reused pid is never signalled.
    below = [(pid, _start_time(pid)) for pid in descendants(child.pid)]
    for sig, wait_s in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 5.0)):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(child.pid, sig)
        try:
            child.process.wait(timeout=wait_s)
        except subprocess.TimeoutExpired:
            continue
        break
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(child.pid, signal.SIGKILL)
    for pid, started in below:
        if started is not None and _start_time(pid) == started:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)


def wait_ready(url: str, child: Child, timeout_s: float = 30.0) -> None:
    """Poll ``url`` until it answers 2xx. Raises :class:`BenchError` (with the child's log)
    when the child exits first or ``timeout_s`` passes."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if child.process.poll() is not None:
            raise BenchError(
                f"{child.log_path.stem} exited with {child.process.returncode} before "
                f"{url} answered:\n{child.log_tail()}"
            )
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=1.0).is_success:
                return
        time.sleep(0.05)
    raise BenchError(f"{url} did not answer within {timeout_s} s:\n{child.log_tail()}")


@contextlib.contextmanager
def work_dir(prefix: str) -> Iterator[Path]:
    """A temporary directory for data and logs, removed afterwards (set ``BENCH_KEEP=1`` to
    keep it, and its path is printed)."""
    path = Path(tempfile.mkdtemp(prefix=f"cumulo-bench-{prefix}-"))
    try:
        yield path
    finally:
        if os.environ.get("BENCH_KEEP"):
            print(f"kept {path}", file=sys.stderr)
        else:
            subprocess.run(["rm", "-rf", str(path)], check=False)


# --- cumulo ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CumuloServer:
    """A running ``cumulo server`` subprocess and how to reach it."""

    url: str
    token: str
    data_dir: Path
    child: Child

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def client(self, timeout_s: float = 30.0) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers=self.headers, timeout=timeout_s)

    def async_client(self, timeout_s: float = 30.0, max_connections: int = 64) -> httpx.AsyncClient:
        limits = httpx.Limits(max_connections=max_connections)
        return httpx.AsyncClient(
            base_url=self.url, headers=self.headers, timeout=timeout_s, limits=limits
        )


@contextlib.contextmanager
def cumulo_server(
    root: Path, *, extra_args: Sequence[str] = (), env: Mapping[str, str] | None = None
) -> Iterator[CumuloServer]:
    """Start ``python -m cumulo server`` on a free port with its data under ``root/data``;
    yield once ``/healthz`` answers; stop its process group afterwards.

    Raises :class:`BenchError` when it does not come up within 60 s (the log is in the error).
    """
    data_dir = root / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    argv = [python(), "-m", "cumulo", "server", "--data-dir", str(data_dir)]
    argv += ["--host", LOCALHOST, "--port", str(port)]
    # Like the peers (uvicorn --log-level warning): no per-request log lines.
    argv += (
        [*extra_args] if "--log-level" in extra_args else ["--log-level", "warning", *extra_args]
    )
    child = spawn(argv, log_dir=root, name="cumulo-server", env=child_env(env))
    try:
        url = f"http://{LOCALHOST}:{port}"
        wait_ready(f"{url}/healthz", child, timeout_s=60.0)
        token_path = data_dir / "admin.token"
        token = token_path.read_text().strip()
        yield CumuloServer(url=url, token=token, data_dir=data_dir, child=child)
    finally:
        stop(child, grace_s=10.0)


def create_function(client: httpx.Client, name: str, source: str, **config: Any) -> dict[str, Any]:
    """Deploy ``source`` as ``index.py`` with handler ``index.main_handler`` and the given
    config fields (``async_run``, ``max_qps``, ...). Raises :class:`BenchError` on refusal."""
    body = {"name": name, "handler": "index.main_handler", "code": {"files": {"index.py": source}}}
    body.update(config)
    response = client.post(f"/v1/namespaces/{NAMESPACE}/functions", json=body)
    if response.status_code != 201:
        raise BenchError(f"creating {name}: {response.status_code} {response.text}")
    result: dict[str, Any] = response.json()
    return result


def invocations_path(function: str) -> str:
    return f"/v1/namespaces/{NAMESPACE}/functions/{function}/invocations"


def list_invocations(
    client: httpx.Client, function: str, status: str | None = None
) -> list[dict[str, Any]]:
    """Every invocation of ``function`` (optionally with one of the comma-separated
    ``status`` values), following ``next_cursor`` 1,000 at a time."""
    items: list[dict[str, Any]] = []
    params: dict[str, str | int] = {"function": function, "limit": 1000}
    if status:
        params["status"] = status
    while True:
        response = client.get(f"/v1/namespaces/{NAMESPACE}/invocations", params=params)
        if response.status_code != 200:
            raise BenchError(f"listing invocations: {response.status_code} {response.text}")
        page = response.json()
        items.extend(page["items"])
        if not page.get("next_cursor"):
            return items
        params["cursor"] = page["next_cursor"]


def wait_until_none(
    client: httpx.Client, function: str, status: str, timeout_s: float, poll_s: float = 0.1
) -> None:
    """Wait until no invocation of ``function`` has one of ``status``. Raises
    :class:`BenchError` after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    params: dict[str, str | int] = {"function": function, "status": status, "limit": 1}
    while time.monotonic() < deadline:
        response = client.get(f"/v1/namespaces/{NAMESPACE}/invocations", params=params)
        response.raise_for_status()
        if not response.json()["items"]:
            return
        time.sleep(poll_s)
    raise BenchError(f"invocations of {function} still {status} after {timeout_s} s")


def unix_time(value: str | float | None) -> float | None:
    """An API time (ISO 8601 text, or Unix seconds) as Unix seconds."""
    if value is None:
        return None
    if isinstance(value, int | float):
        return float(value)
    return datetime.fromisoformat(value).timestamp()


# --- peers ----------------------------------------------------------------------------------


@contextlib.contextmanager
def uvicorn_server(
    factory: str, root: Path, *, env: Mapping[str, str] | None = None, probe_path: str = "/"
) -> Iterator[str]:
    """Serve the app built by ``factory`` (``module:function``) with one uvicorn worker and
    the same options as cumulo; yield its base URL; stop it afterwards."""
    port = free_port()
    argv = [python(), "-m", "uvicorn", "--factory", factory, "--host", LOCALHOST]
    argv += ["--port", str(port), "--workers", "1", *UVICORN_OPTIONS]
    name = factory.rsplit(":", 1)[-1]
    child = spawn(argv, log_dir=root, name=name, env=child_env(env))
    try:
        url = f"http://{LOCALHOST}:{port}"
        wait_ready(f"{url}{probe_path}", child)
        yield url
    finally:
        stop(child)


@contextlib.contextmanager
def redis_scope(tag: str) -> Iterator[redis.Redis]:
    """A client of the benchmark's Redis; on exit every key of the run ``tag`` is deleted:
    the RQ queue ``tag`` with its jobs, and every key whose name holds ``tag``. (Imported
    here: the benchmarks without Redis peers run without the ``bench`` extra.)"""
    import redis
    from rq import Queue

    client = redis.Redis.from_url(REDIS_URL)
    try:
        yield client
    finally:
        Queue(tag, connection=client).delete(delete_jobs=True)
        keys = list(client.scan_iter(match=f"*{tag}*", count=1000))
        if keys:
            client.delete(*keys)
        client.close()


def run_id() -> str:
    """A short unique tag for the Redis keys and queue names of one benchmark run, so runs
    (and anything else using the same Redis) never see each other's data."""
    return f"cumulo-bench-{os.getpid()}-{os.urandom(3).hex()}"
