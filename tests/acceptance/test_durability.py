"""kill -9 of the server with queued and running invocations, then a restart."""

from __future__ import annotations

import asyncio

import pytest
from cumulo_server import ServerProcess

pytestmark = pytest.mark.anyio

JOB = """
import os, time

def main_handler(event, context):
    print("run", context.request_id, os.getpid(), flush=True)
    time.sleep(event.get("seconds", 1))
    return {"slept": event.get("seconds", 1)}
"""


def _alive(pid: int) -> bool:
    """Running (a zombie left for an init that does not reap is dead)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


async def test_kill9_then_restart_every_request_reaches_its_promised_end(
    server: ServerProcess,
) -> None:
    async with server.client() as c:
        await c.create_function("longrun", files={"index.py": JOB}, async_run=True,
                                max_concurrency=2)  # fmt: skip
        await c.create_function("normal", files={"index.py": JOB}, max_concurrency=1,
                                retry_attempts=2, timeout_s=30)  # fmt: skip
        running_run = [(await c.invoke("longrun", {"seconds": 60}))["request_id"] for _ in range(2)]
        queued_run = [(await c.invoke("longrun", {"seconds": 0.2}))["request_id"] for _ in range(3)]
        running_normal = (await c.invoke("normal", {"seconds": 3}, type="async"))["request_id"]
        queued_normal = [
            (await c.invoke("normal", {"seconds": 0.2}, type="async"))["request_id"]
            for _ in range(2)
        ]
        pids = []
        for rid in [*running_run, running_normal]:
            for _ in range(200):
                lines = await c.logs(rid)
                if lines:
                    pids.append(int(lines[0]["text"].split()[2]))
                    break
                await asyncio.sleep(0.05)
            else:
                raise AssertionError(f"{rid} never started")
        for rid in queued_run + queued_normal:
            assert (await c.get_invocation(rid))["status"] == "queued"

    server.kill9()
    await asyncio.sleep(0.5)
    assert not [pid for pid in pids if _alive(pid)]  # instances die with their server

    server.start()
    async with server.client() as c:
        for rid in running_run:
            inv = await c.wait(rid, 20)
            assert inv["status"] == "failed"
            assert inv["error"]["type"] == "InstanceLost"
            assert inv["attempt"] == 1
        for rid in queued_run:
            inv = await c.wait(rid, 30)
            assert inv["status"] == "succeeded", inv
            runs = [line for line in await c.logs(rid) if line["text"].startswith("run ")]
            assert len(runs) == 1  # never run twice
        # A normal async invocation with attempts left is retried.
        inv = await c.wait(running_normal, 60)
        assert inv["status"] == "succeeded"
        assert inv["attempt"] == 2
        for rid in queued_normal:
            inv = await c.wait(rid, 60)
            assert inv["status"] == "succeeded"
        listed = await c.list_invocations(limit=100)
        assert {i["status"] for i in listed["items"]} <= {"succeeded", "failed", "timed_out"}
