"""The process pool with real zygotes and instances (and the code cache on a real disk)."""

from __future__ import annotations

import asyncio
import io
import json
import os
import signal
import statistics
import textwrap
import time
import uuid
import zipfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from cumulo.errors import InvalidParameter
from cumulo.models import Function, LogStream, Status, TerminateMode
from cumulo.runtime.base import RunOutcome, RunRequest
from cumulo.runtime.codecache import CodeCache
from cumulo.runtime.pool import ProcessPool

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def pool(tmp_path: Path) -> AsyncIterator[ProcessPool]:
    pool = ProcessPool(work_dir=tmp_path / "work", max_instances=8, instance_idle_s=60)
    yield pool
    await pool.close()


class Logs:
    """A log sink that remembers every line, with when it came."""

    def __init__(self) -> None:
        self.lines: list[tuple[LogStream, str]] = []
        self.arrived_at: list[float] = []

    def __call__(self, stream: LogStream, text: str) -> None:
        self.lines.append((stream, text))
        self.arrived_at.append(time.monotonic())

    def of(self, stream: LogStream) -> list[str]:
        return [text for s, text in self.lines if s is stream]


def deploy(tmp_path: Path, source: str, *, revision: int = 1, **config: Any) -> Function:
    """Write ``source`` as ``index.py`` of a code dir; the function that runs it."""
    code_dir = tmp_path / f"code-{config.get('id', 'f1')}-{revision}"
    code_dir.mkdir()
    (code_dir / "index.py").write_text(textwrap.dedent(source))
    fields: dict[str, Any] = {
        "id": "f1",
        "namespace": "default",
        "name": "fn",
        "handler": "index.main_handler",
        "code_sha256": "0" * 64,
        "code_size_bytes": 1,
        "timeout_s": 10.0,
        "memory_mb": 256,
        "async_run": False,
        "max_qps": 1000,
        "max_concurrency": None,
        "retry_attempts": 0,
        "max_event_age_s": 60.0,
        "revision": revision,
        **config,
    }
    return Function(**fields)


def code_dir_of(tmp_path: Path, function: Function) -> Path:
    return tmp_path / f"code-{function.id}-{function.revision}"


async def invoke(
    pool: ProcessPool,
    tmp_path: Path,
    function: Function,
    event: Any = None,
    *,
    logs: Logs | None = None,
    timeout_s: float | None = None,
    request_id: str | None = None,
) -> RunOutcome:
    request = RunRequest(
        function=function,
        code_dir=code_dir_of(tmp_path, function),
        request_id=request_id or str(uuid.uuid4()),
        event=json.dumps(event),
        timeout_s=timeout_s if timeout_s is not None else function.timeout_s,
    )
    return await pool.run(request, logs if logs is not None else Logs())


def group_exists(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


async def wait_for_line(logs: Logs, text: str, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not any(text in line for _, line in logs.lines):
        if time.monotonic() > deadline:
            raise AssertionError(f"{text!r} never reached the logs: {logs.lines}")
        await asyncio.sleep(0.01)


PID_HANDLER = """
    import os
    def main_handler(event, context):
        print("got", event)
        return {"pid": os.getpid(), "ppid": os.getppid(), "event": event}
"""


async def test_success_returns_result_and_reuses_the_instance(
    pool: ProcessPool, tmp_path: Path
) -> None:
    function = deploy(tmp_path, PID_HANDLER)
    logs = Logs()
    first = await invoke(pool, tmp_path, function, {"n": 1}, logs=logs)
    second = await invoke(pool, tmp_path, function, {"n": 2})

    assert first.status is Status.SUCCEEDED, first.error
    assert first.result is not None and json.loads(first.result)["event"] == {"n": 1}
    assert first.cold_start and not second.cold_start
    assert json.loads(first.result)["pid"] == first.instance_pid == second.instance_pid
    assert first.duration_ms > 0 and first.peak_memory_mb > 1
    assert logs.lines == [(LogStream.STDOUT, "got {'n': 1}")]
    stats = pool.stats()
    assert (stats.instances_live, stats.instances_idle, stats.zygotes) == (1, 1, 1)
    assert stats.cold_starts_total == 1


async def test_async_handler(pool: ProcessPool, tmp_path: Path) -> None:
    function = deploy(
        tmp_path,
        """
        import asyncio
        async def main_handler(event, context):
            await asyncio.sleep(0.01)
            return {"async": True, "x": event["x"]}
        """,
    )
    outcome = await invoke(pool, tmp_path, function, {"x": 5})
    assert outcome.status is Status.SUCCEEDED, outcome.error
    assert json.loads(outcome.result or "") == {"async": True, "x": 5}


async def test_context_has_attributes_and_mapping_access(pool: ProcessPool, tmp_path: Path) -> None:
    function = deploy(
        tmp_path,
        """
        import json
        def main_handler(event, context):
            names = ["request_id", "function_name", "namespace", "function_version",
                     "memory_limit_in_mb", "time_limit_in_ms"]
            assert all(getattr(context, n) == context[n] for n in names)
            return {
                **{n: context[n] for n in names},
                "remaining": context.get_remaining_time_in_millis(),
                "env_name": context.environment["SCF_FUNCTIONNAME"],
                "serializable": bool(json.dumps(context)),
            }
        """,
        name="ctx",
        memory_mb=200,
    )
    outcome = await invoke(pool, tmp_path, function, timeout_s=7, request_id="req-1")
    assert outcome.status is Status.SUCCEEDED, outcome.error
    result = json.loads(outcome.result or "")
    assert result["request_id"] == "req-1"
    assert result["function_name"] == "ctx" == result["env_name"]
    assert result["namespace"] == "default"
    assert result["function_version"] == "$LATEST"
    assert result["memory_limit_in_mb"] == 200
    assert result["time_limit_in_ms"] == 7000
    assert 6000 < result["remaining"] <= 7000
    assert result["serializable"]


async def test_exception_fails_with_traceback_and_repossesses(
    pool: ProcessPool, tmp_path: Path
) -> None:
    function = deploy(
        tmp_path,
        """
        import os
        def main_handler(event, context):
            if event == "boom":
                raise ValueError("bad value")
            return os.getpid()
        """,
    )
    healthy = await invoke(pool, tmp_path, function, "ok")
    failed = await invoke(pool, tmp_path, function, "boom")
    after = await invoke(pool, tmp_path, function, "ok")

    assert failed.status is Status.FAILED
    assert failed.error is not None
    assert failed.error["type"] == "ValueError"
    assert failed.error["message"] == "bad value"
    assert 'index.py", line 5, in main_handler' in failed.error["traceback"]
    assert "bootstrap" not in failed.error["traceback"]
    assert failed.instance_pid == healthy.instance_pid
    assert not group_exists(failed.instance_pid)
    assert after.cold_start and after.instance_pid != failed.instance_pid


async def test_result_that_is_not_json(pool: ProcessPool, tmp_path: Path) -> None:
    function = deploy(tmp_path, "def main_handler(event, context):\n    return object()\n")
    outcome = await invoke(pool, tmp_path, function)
    assert outcome.status is Status.FAILED
    assert outcome.error is not None and outcome.error["type"] == "ResultNotSerializable"


async def test_exit_is_reported_as_a_crash_with_its_code(pool: ProcessPool, tmp_path: Path) -> None:
    function = deploy(tmp_path, "import os\ndef main_handler(e, c):\n    os._exit(3)\n")
    logs = Logs()
    outcome = await invoke(pool, tmp_path, function, logs=logs)
    assert outcome.status is Status.FAILED
    assert outcome.error is not None
    assert outcome.error["type"] == "InstanceCrashed"
    assert outcome.error["message"] == "instance exited with code 3"
    assert (LogStream.PLATFORM, "instance exited with code 3") in logs.lines


async def test_segfault_is_reported_with_the_signal(pool: ProcessPool, tmp_path: Path) -> None:
    function = deploy(
        tmp_path,
        """
        import ctypes
        def main_handler(event, context):
            print("about to crash")
            ctypes.string_at(0)
        """,
    )
    logs = Logs()
    outcome = await invoke(pool, tmp_path, function, logs=logs)
    assert outcome.error is not None
    assert outcome.error["type"] == "InstanceCrashed"
    assert "SIGSEGV" in outcome.error["message"]
    assert logs.of(LogStream.STDOUT) == ["about to crash"]
    follow_up = await invoke(pool, tmp_path, function)
    assert follow_up.cold_start and follow_up.instance_pid != outcome.instance_pid


SLEEPER = """
    import subprocess, sys, time
    def main_handler(event, context):
        if event.get("child"):
            child = subprocess.Popen(["sleep", "100"])
            print("child", child.pid, flush=True)
        print("sleeping", flush=True)
        time.sleep(event.get("sleep_s", 100))
        return "woke"
"""


async def test_timeout_kills_the_whole_group_on_time(pool: ProcessPool, tmp_path: Path) -> None:
    function = deploy(tmp_path, SLEEPER, timeout_s=1.0)
    logs = Logs()
    started = time.monotonic()
    outcome = await invoke(pool, tmp_path, function, {"child": True}, logs=logs)
    elapsed_s = time.monotonic() - started
    print(f"\ntimeout of 1 s ended the run after {elapsed_s:.3f} s (incl. cold start)")

    assert outcome.status is Status.TIMED_OUT
    assert outcome.error is not None and outcome.error["type"] == "TimeoutError"
    assert "1 s" in outcome.error["message"]
    assert 1.0 <= outcome.duration_ms / 1000 < 1.3
    assert elapsed_s < 2.0
    child_pid = int(logs.of(LogStream.STDOUT)[0].split()[1])
    assert not group_exists(outcome.instance_pid)
    with pytest.raises(ProcessLookupError):
        os.kill(child_pid, 0)
    assert logs.lines[-1] == (LogStream.PLATFORM, "timed out after 1 s: SIGKILL sent")


async def test_timeout_of_a_warm_instance(pool: ProcessPool, tmp_path: Path) -> None:
    function = deploy(tmp_path, SLEEPER)
    await invoke(pool, tmp_path, function, {"sleep_s": 0})
    outcome = await invoke(pool, tmp_path, function, {"sleep_s": 100}, timeout_s=0.5)
    assert outcome.status is Status.TIMED_OUT and not outcome.cold_start
    assert 500 <= outcome.duration_ms < 800
    assert not group_exists(outcome.instance_pid)


async def test_memory_limit(pool: ProcessPool, tmp_path: Path) -> None:
    function = deploy(
        tmp_path,
        """
        import time
        def main_handler(event, context):
            blob = b"x" * (event * 1024 * 1024)
            time.sleep(0.5)
            return len(blob)
        """,
        memory_mb=128,
    )
    within = await invoke(pool, tmp_path, function, 60)
    small = await invoke(pool, tmp_path, function, 1)
    over = await invoke(pool, tmp_path, function, 200)

    assert within.status is Status.SUCCEEDED, within.error
    assert 60 <= within.peak_memory_mb < 128
    assert small.instance_pid == within.instance_pid
    assert small.peak_memory_mb < 50  # each run's own peak, not the instance's lifetime one
    assert over.status is Status.FAILED
    assert over.error is not None and over.error["type"] == "MemoryLimitExceeded"
    assert "128 MB" in over.error["message"]
    assert not group_exists(over.instance_pid)


TERMINABLE = """
    import signal, sys, time
    def main_handler(event, context):
        if event == "polite":
            def on_term(signum, frame):
                print("got SIGTERM, cleaning up")
                sys.exit(0)
            signal.signal(signal.SIGTERM, on_term)
        elif event == "stubborn":
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
        print("started", flush=True)
        time.sleep(100)
"""


async def _start_and_terminate(
    pool: ProcessPool, tmp_path: Path, event: str, mode: TerminateMode, grace_s: float
) -> tuple[RunOutcome, Logs, float]:
    function = deploy(tmp_path, TERMINABLE)
    logs = Logs()
    run = asyncio.create_task(invoke(pool, tmp_path, function, event, logs=logs, request_id="t1"))
    await wait_for_line(logs, "started")
    # The line reaches us while the handler is still inside print(): a SIGTERM handler
    # that prints at that moment meets the stream's lock ("reentrant call"), which is
    # Python's doing, not the platform's. Let the handler reach its sleep first.
    await asyncio.sleep(0.2)
    asked = time.monotonic()
    assert await pool.terminate("t1", mode, grace_s)
    assert await pool.terminate("t1", mode, grace_s)  # idempotent
    outcome = await run
    return outcome, logs, time.monotonic() - asked


async def test_terminate_force(pool: ProcessPool, tmp_path: Path) -> None:
    outcome, logs, took_s = await _start_and_terminate(
        pool, tmp_path, "polite", TerminateMode.FORCE, 10
    )
    assert outcome.status is Status.TERMINATED
    assert outcome.error is not None and outcome.error["type"] == "Terminated"
    assert took_s < 1.0
    platform = logs.of(LogStream.PLATFORM)
    assert platform == ["terminated by request (force): SIGKILL sent"]
    assert "got SIGTERM, cleaning up" not in logs.of(LogStream.STDOUT)
    assert not group_exists(outcome.instance_pid)
    assert not await pool.terminate("t1", TerminateMode.FORCE, 0)


async def test_terminate_graceful_lets_the_handler_clean_up(
    pool: ProcessPool, tmp_path: Path
) -> None:
    outcome, logs, took_s = await _start_and_terminate(
        pool, tmp_path, "polite", TerminateMode.GRACEFUL, 10
    )
    assert outcome.status is Status.TERMINATED
    assert took_s < 2.0  # the handler exited itself, long before the grace ran out
    assert logs.of(LogStream.STDOUT) == ["started", "got SIGTERM, cleaning up"]
    assert logs.of(LogStream.PLATFORM) == [
        "terminated by request (graceful): SIGTERM sent, SIGKILL in 10 s"
    ]
    assert not group_exists(outcome.instance_pid)


async def test_terminate_graceful_kills_after_the_grace(pool: ProcessPool, tmp_path: Path) -> None:
    outcome, _, took_s = await _start_and_terminate(
        pool, tmp_path, "stubborn", TerminateMode.GRACEFUL, 0.5
    )
    assert outcome.status is Status.TERMINATED
    assert 0.5 <= took_s < 1.5
    assert not group_exists(outcome.instance_pid)


async def test_environment_is_isolated(
    pool: ProcessPool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CUMULO_TEST_SERVER_SECRET", "hunter2")
    function = deploy(
        tmp_path,
        """
        import os, tempfile
        def main_handler(event, context):
            with tempfile.NamedTemporaryFile(delete=False) as f:
                tmp_file = f.name
            return {"env": dict(os.environ), "cwd": os.getcwd(), "tmp_file": tmp_file}
        """,
        environment={"GREETING": "hello", "PATH": "/opt/tools/bin:/usr/bin:/bin"},
    )
    outcome = await invoke(pool, tmp_path, function)
    assert outcome.status is Status.SUCCEEDED, outcome.error
    result = json.loads(outcome.result or "")
    env = result["env"]
    assert "CUMULO_TEST_SERVER_SECRET" not in env
    assert not any("hunter2" in value for value in env.values())
    assert env["GREETING"] == "hello"
    # The clean interpreter's bin folder comes first, so `python3` is the clean one.
    first, _, rest = env["PATH"].partition(":")
    assert first.endswith("/.interpreter/bin")
    assert rest == "/opt/tools/bin:/usr/bin:/bin"
    assert env["SCF_FUNCTIONNAME"] == env["CUMULO_FUNCTION_NAME"] == "fn"
    assert env["TENCENTCLOUD_RUNENV"] == "SCF"
    assert env["USER_CODE_ROOT"] == str(code_dir_of(tmp_path, function))
    home = Path(env["HOME"])
    assert home == Path(result["cwd"])
    assert home.parent == tmp_path / "work"
    assert env["TMPDIR"] == str(home / "tmp")
    assert Path(result["tmp_file"]).parent == home / "tmp"


async def test_logs_arrive_while_the_handler_runs(pool: ProcessPool, tmp_path: Path) -> None:
    function = deploy(
        tmp_path,
        """
        import time
        def main_handler(event, context):
            print("first")
            time.sleep(1.0)
            print("second")
        """,
    )
    logs = Logs()
    run = asyncio.create_task(invoke(pool, tmp_path, function, logs=logs))
    await wait_for_line(logs, "first")
    assert not run.done()
    outcome = await run
    assert outcome.status is Status.SUCCEEDED
    assert logs.of(LogStream.STDOUT) == ["first", "second"]
    assert logs.arrived_at[1] - logs.arrived_at[0] > 0.8


async def test_logs_are_complete_and_in_order(pool: ProcessPool, tmp_path: Path) -> None:
    function = deploy(
        tmp_path,
        """
        import sys
        def main_handler(event, context):
            for i in range(200):
                print(f"out {i}")
                print(f"err {i}", file=sys.stderr)
            sys.stdout.write("tail without newline")
        """,
    )
    for _ in range(2):  # a warm instance must not mix runs up either
        logs = Logs()
        outcome = await invoke(pool, tmp_path, function, logs=logs)
        assert outcome.status is Status.SUCCEEDED
        expected = [f"out {i}" for i in range(200)] + ["tail without newline"]
        assert logs.of(LogStream.STDOUT) == expected
        assert logs.of(LogStream.STDERR) == [f"err {i}" for i in range(200)]


async def test_a_lot_of_output_without_newlines(pool: ProcessPool, tmp_path: Path) -> None:
    function = deploy(
        tmp_path,
        """
        import sys
        def main_handler(event, context):
            sys.stdout.write("é" * 300_000)
            return "done"
        """,
    )
    logs = Logs()
    outcome = await invoke(pool, tmp_path, function, logs=logs)
    assert outcome.status is Status.SUCCEEDED
    pieces = logs.of(LogStream.STDOUT)
    assert len(pieces) > 1
    assert all(len(piece.encode()) <= 64 * 1024 for piece in pieces)
    assert "".join(pieces) == "é" * 300_000


@pytest.mark.parametrize(
    ("source", "error_type"),
    [("def main_handler(event, context)\n", "SyntaxError"),
     ("import no_such_module_here\n", "ModuleNotFoundError"),
     ("x = 1\n", "AttributeError")],
)  # fmt: skip
async def test_broken_code_fails_and_a_fixed_revision_works(
    pool: ProcessPool, tmp_path: Path, source: str, error_type: str
) -> None:
    broken = deploy(tmp_path, source, revision=1)
    outcome = await invoke(pool, tmp_path, broken)
    assert outcome.status is Status.FAILED
    assert outcome.error is not None
    assert outcome.error["type"] == error_type
    assert outcome.error["traceback"]
    again = await invoke(pool, tmp_path, broken)
    assert again.error is not None and again.error["type"] == error_type

    fixed = deploy(tmp_path, PID_HANDLER, revision=2)
    assert (await invoke(pool, tmp_path, fixed, 1)).status is Status.SUCCEEDED


async def test_a_dead_zygote_is_replaced(pool: ProcessPool, tmp_path: Path) -> None:
    function = deploy(
        tmp_path,
        """
        import os
        def main_handler(event, context):
            if event == "fail":
                raise RuntimeError("so the next run needs a new instance")
            return os.getppid()
        """,
    )
    first = await invoke(pool, tmp_path, function)
    zygote_pid = json.loads(first.result or "")
    os.kill(zygote_pid, 9)
    await invoke(pool, tmp_path, function, "fail")
    fresh = await invoke(pool, tmp_path, function)
    assert fresh.status is Status.SUCCEEDED and fresh.cold_start
    assert json.loads(fresh.result or "") != zygote_pid


async def test_without_a_zygote_instances_are_spawned_directly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ProcessPool, "zygote_module", "cumulo.runtime.no_such_zygote")
    pool = ProcessPool(work_dir=tmp_path / "work", max_instances=2, instance_idle_s=60)
    try:
        function = deploy(tmp_path, PID_HANDLER)
        logs = Logs()
        first = await invoke(pool, tmp_path, function, 1, logs=logs)
        second = await invoke(pool, tmp_path, function, 2)
        exits = deploy(
            tmp_path, "import os\ndef main_handler(e, c):\n    os._exit(4)\n", revision=2
        )
        crashed = await invoke(pool, tmp_path, exits)
    finally:
        await pool.close()
    assert first.status is Status.SUCCEEDED, first.error
    assert json.loads(first.result or "")["ppid"] == os.getpid()
    assert second.instance_pid == first.instance_pid
    assert logs.of(LogStream.STDOUT) == ["got 1"]
    assert crashed.error is not None
    assert crashed.error["message"] == "instance exited with code 4"


async def test_a_burst_of_cold_starts_all_fork_from_one_zygote(tmp_path: Path) -> None:
    pool = ProcessPool(work_dir=tmp_path / "work", max_instances=40, instance_idle_s=60)
    try:
        function = deploy(tmp_path, PID_HANDLER)
        outcomes = await asyncio.gather(*(invoke(pool, tmp_path, function, i) for i in range(30)))
    finally:
        await pool.close()
    assert all(o.status is Status.SUCCEEDED and o.cold_start for o in outcomes)
    results = [json.loads(o.result or "") for o in outcomes]
    assert [r["event"] for r in results] == list(range(30))
    assert len({r["pid"] for r in results}) == 30
    assert len({r["ppid"] for r in results}) == 1  # no fallback, no second zygote


async def test_fork_requests_wait_for_a_busy_zygote(tmp_path: Path) -> None:
    """More fork requests than the zygote's socket buffer holds, while it is stopped: they
    wait, none fails, nothing falls back to a fresh interpreter."""
    pool = ProcessPool(work_dir=tmp_path / "work", max_instances=70, instance_idle_s=60)
    try:
        function = deploy(tmp_path, PID_HANDLER, environment={"BIG": "x" * 4000})
        zygote_pid = json.loads((await invoke(pool, tmp_path, function)).result or "")["ppid"]
        os.kill(zygote_pid, signal.SIGSTOP)
        try:
            burst = [asyncio.create_task(invoke(pool, tmp_path, function, i)) for i in range(60)]
            await asyncio.sleep(0.3)
        finally:
            os.kill(zygote_pid, signal.SIGCONT)
        outcomes = await asyncio.gather(*burst)
    finally:
        await pool.close()
    assert all(o.status is Status.SUCCEEDED for o in outcomes)
    assert {json.loads(o.result or "")["ppid"] for o in outcomes} == {zygote_pid}


async def test_max_instances_reclaims_idle_then_waits(tmp_path: Path) -> None:
    pool = ProcessPool(work_dir=tmp_path / "work", max_instances=1, instance_idle_s=60)
    try:
        a = deploy(tmp_path, SLEEPER, id="a")
        b = deploy(tmp_path, SLEEPER, id="b")
        first_a = await invoke(pool, tmp_path, a, {"sleep_s": 0})
        first_b = await invoke(pool, tmp_path, b, {"sleep_s": 0})
        assert pool.stats().instances_live == 1
        assert not group_exists(first_a.instance_pid)

        started = time.monotonic()
        both = await asyncio.gather(
            invoke(pool, tmp_path, b, {"sleep_s": 0.3}),
            invoke(pool, tmp_path, b, {"sleep_s": 0.3}),
        )
        assert time.monotonic() - started >= 0.6
        assert [o.instance_pid for o in both] == [first_b.instance_pid] * 2
    finally:
        await pool.close()


async def test_terminate_a_run_still_waiting_for_an_instance(tmp_path: Path) -> None:
    pool = ProcessPool(work_dir=tmp_path / "work", max_instances=1, instance_idle_s=60)
    try:
        function = deploy(tmp_path, SLEEPER)
        busy = asyncio.create_task(invoke(pool, tmp_path, function, {"sleep_s": 0.5}))
        await asyncio.sleep(0.05)
        waiting = asyncio.create_task(
            invoke(pool, tmp_path, function, {"sleep_s": 0}, request_id="w")
        )
        await asyncio.sleep(0.05)
        assert await pool.terminate("w", TerminateMode.FORCE, 0)
        outcome = await waiting
        assert outcome.status is Status.TERMINATED and not busy.done()
        assert (await busy).status is Status.SUCCEEDED
    finally:
        await pool.close()


async def test_idle_instances_and_zygotes_are_reclaimed(tmp_path: Path) -> None:
    pool = ProcessPool(work_dir=tmp_path / "work", max_instances=2, instance_idle_s=0.3)
    try:
        outcome = await invoke(pool, tmp_path, deploy(tmp_path, PID_HANDLER))
        assert pool.stats().instances_idle == 1
        await asyncio.sleep(1.2)
        stats = pool.stats()
        assert (stats.instances_live, stats.zygotes) == (0, 0)
        assert not group_exists(outcome.instance_pid)
        left = [p for p in (tmp_path / "work").iterdir() if p.name != ".interpreter"]
        assert left == []
    finally:
        await pool.close()


async def test_forget_kills_idle_instances_and_zygotes(pool: ProcessPool, tmp_path: Path) -> None:
    function = deploy(tmp_path, PID_HANDLER)
    first = await invoke(pool, tmp_path, function)
    await pool.forget(function.id)
    assert (pool.stats().instances_live, pool.stats().zygotes) == (0, 0)
    again = await invoke(pool, tmp_path, function)
    assert again.cold_start and again.instance_pid != first.instance_pid


async def test_close_kills_everything(tmp_path: Path) -> None:
    pool = ProcessPool(work_dir=tmp_path / "work", max_instances=4, instance_idle_s=60)
    function = deploy(tmp_path, SLEEPER)
    logs = Logs()
    idle = await invoke(pool, tmp_path, deploy(tmp_path, PID_HANDLER, id="other"))
    busy = asyncio.create_task(invoke(pool, tmp_path, function, {"sleep_s": 100}, logs=logs))
    try:
        await wait_for_line(logs, "sleeping")
    finally:
        await pool.close()
    outcome = await busy
    assert outcome.status is Status.FAILED
    assert not group_exists(idle.instance_pid)
    assert not group_exists(outcome.instance_pid)
    assert pool.stats().instances_live == 0


async def test_cold_start_time(pool: ProcessPool, tmp_path: Path) -> None:
    function = deploy(
        tmp_path,
        """
        import time
        def main_handler(event, context):
            raise RuntimeError(repr(time.time()))  # a failed instance is not reused
        """,
    )
    await invoke(pool, tmp_path, function)  # the zygote starts here
    samples_ms = []
    for _ in range(50):
        called = time.time()
        outcome = await invoke(pool, tmp_path, function)
        assert outcome.cold_start and outcome.error is not None
        samples_ms.append((float(outcome.error["message"]) - called) * 1000)
    median_ms = statistics.median(samples_ms)
    print(f"\ncold start (run() called → handler entered): median {median_ms:.1f} ms, "
          f"p90 {sorted(samples_ms)[44]:.1f} ms over 50 forks")  # fmt: skip
    assert median_ms < 250


# -- code cache ----------------------------------------------------------------------------


def _zip(entries: dict[str, bytes], modes: dict[str, int] | None = None) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in entries.items():
            info = zipfile.ZipInfo(name)
            info.external_attr = ((modes or {}).get(name, 0o100644)) << 16
            archive.writestr(info, data)
    return buffer.getvalue()


async def test_code_cache_unpacks_once(tmp_path: Path) -> None:
    package = _zip(
        {"index.py": b"x = 1\n", "lib/util.py": b"", "bin/tool": b"#!/bin/sh\n"},
        {"bin/tool": 0o100755},
    )
    loads: list[str] = []

    async def load(sha256: str) -> bytes:
        loads.append(sha256)
        await asyncio.sleep(0.05)
        return package

    cache = CodeCache(tmp_path / "code", load)
    sha = "a" * 64
    paths = await asyncio.gather(*(cache.path(sha) for _ in range(5)))
    assert loads == [sha]
    assert set(paths) == {tmp_path / "code" / sha}
    assert (paths[0] / "index.py").read_text() == "x = 1\n"
    assert (paths[0] / "lib" / "util.py").exists()
    assert os.access(paths[0] / "bin" / "tool", os.X_OK)
    assert sorted(p.name for p in (tmp_path / "code").iterdir()) == [sha]  # no staging left
    assert await CodeCache(tmp_path / "code", load).path(sha) == paths[0]
    assert len(loads) == 1


@pytest.mark.parametrize("name", ["../escape.py", "/etc/evil.py", "a/../../b.py", "C:/x.py"])
async def test_code_cache_rejects_unsafe_paths(tmp_path: Path, name: str) -> None:
    async def load(sha256: str) -> bytes:
        return _zip({"index.py": b"", name: b"bad"})

    cache = CodeCache(tmp_path / "code", load)
    with pytest.raises(InvalidParameter, match="unsafe path"):
        await cache.path("b" * 64)
    assert list((tmp_path / "code").iterdir()) == []


async def test_code_cache_rejects_bad_input(tmp_path: Path) -> None:
    async def load(sha256: str) -> bytes:
        return b"not a zip"

    cache = CodeCache(tmp_path / "code", load)
    with pytest.raises(InvalidParameter, match="not a zip"):
        await cache.path("c" * 64)
    with pytest.raises(InvalidParameter, match="SHA-256"):
        await cache.path("../../etc")
