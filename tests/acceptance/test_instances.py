"""Instance life: reuse after success, repossession after any failure, limits."""

from __future__ import annotations

import os
import time

import pytest

from cumulo.client import Client

pytestmark = pytest.mark.anyio

PROBE = """
import ctypes, os, subprocess, time

def main_handler(event, context):
    action = event.get("action")
    if action == "raise":
        raise ValueError("bad input: " + str(event.get("why")))
    if action == "exit":
        os._exit(3)
    if action == "segfault":
        ctypes.string_at(0)
    if action == "hang":
        print("pgid", os.getpgid(0), flush=True)
        subprocess.Popen(["sleep", "100"])
        time.sleep(100)
    if action == "eat":
        hog = bytearray(event["mb"] * 1024 * 1024)
        for i in range(0, len(hog), 4096):
            hog[i] = 1
        time.sleep(1)
    return {
        "pid": os.getpid(),
        "pgid": os.getpgid(0),
        "env": {k: v for k, v in os.environ.items()},
        "cwd": os.getcwd(),
    }
"""


async def _sync(client: Client, event: dict[str, object]) -> dict[str, object]:
    return await client.invoke("probe", event, type="sync")


async def test_success_keeps_the_instance_failures_replace_it(client: Client) -> None:
    await client.create_function("probe", files={"index.py": PROBE}, timeout_s=30)
    first = await _sync(client, {})
    second = await _sync(client, {})
    assert first["status"] == second["status"] == "succeeded"
    pid = first["result"]["pid"]  # type: ignore[index]
    assert second["result"]["pid"] == pid  # type: ignore[index]

    failed = await _sync(client, {"action": "raise", "why": "nope"})
    assert failed["status"] == "failed"
    error = failed["error"]
    assert error["type"] == "ValueError"  # type: ignore[index]
    assert error["message"] == "bad input: nope"  # type: ignore[index]
    assert "Traceback" in error["traceback"] and "raise ValueError" in error["traceback"]  # type: ignore[index]
    after_raise = await _sync(client, {})
    assert after_raise["result"]["pid"] != pid  # type: ignore[index]

    exited = await _sync(client, {"action": "exit"})
    assert exited["status"] == "failed"
    assert exited["error"]["type"] == "InstanceCrashed"  # type: ignore[index]
    assert "3" in exited["error"]["message"]  # type: ignore[index]
    after_exit = await _sync(client, {})
    assert after_exit["result"]["pid"] != after_raise["result"]["pid"]  # type: ignore[index]

    crashed = await _sync(client, {"action": "segfault"})
    assert crashed["status"] == "failed"
    assert crashed["error"]["type"] == "InstanceCrashed"  # type: ignore[index]
    assert "SIGSEGV" in crashed["error"]["message"]  # type: ignore[index]
    after_crash = await _sync(client, {})
    assert after_crash["status"] == "succeeded"
    assert after_crash["result"]["pid"] != after_exit["result"]["pid"]  # type: ignore[index]


async def test_environment_is_the_functions_own(client: Client) -> None:
    await client.create_function(
        "probe", files={"index.py": PROBE}, environment={"GREETING": "hi"}, memory_mb=256
    )
    result = (await _sync(client, {}))["result"]
    env = result["env"]  # type: ignore[index]
    assert env["GREETING"] == "hi"
    assert "SERVER_ONLY_SECRET" not in env
    assert env["SCF_FUNCTIONNAME"] == "probe"
    assert env["TENCENTCLOUD_RUNENV"] == "SCF"
    assert env["TMPDIR"].startswith(result["cwd"])  # type: ignore[index]
    assert result["pgid"] == result["pid"]  # type: ignore[index]


async def test_timeout_kills_the_whole_group_within_a_second(client: Client) -> None:
    await client.create_function("probe", files={"index.py": PROBE}, timeout_s=2)
    started = time.monotonic()
    inv = await _sync(client, {"action": "hang"})
    elapsed = time.monotonic() - started
    assert inv["status"] == "timed_out"
    assert inv["error"]["type"] == "TimeoutError"  # type: ignore[index]
    assert 2.0 <= elapsed <= 3.0
    assert 2000 <= inv["duration_ms"] <= 3000  # type: ignore[operator]
    lines = await client.logs(str(inv["request_id"]))
    pgid = int(next(line["text"] for line in lines if line["text"].startswith("pgid")).split()[1])
    with pytest.raises(ProcessLookupError):
        os.killpg(pgid, 0)


async def test_memory_limit_exceeded(client: Client) -> None:
    await client.create_function("probe", files={"index.py": PROBE}, memory_mb=128)
    inv = await _sync(client, {"action": "eat", "mb": 300})
    assert inv["status"] == "failed"
    assert inv["error"]["type"] == "MemoryLimitExceeded"  # type: ignore[index]
    ok = await _sync(client, {"action": "eat", "mb": 20})
    assert ok["status"] == "succeeded"
    assert 20 <= ok["peak_memory_mb"] <= 128  # type: ignore[operator]
