"""Terminate: queued, running (force) and running (graceful)."""

from __future__ import annotations

import asyncio

import pytest

from cumulo.client import Client

pytestmark = pytest.mark.anyio

JOB = """
import os, signal, sys, time

def main_handler(event, context):
    if event.get("graceful"):
        def on_term(signum, frame):
            print("got SIGTERM, saving checkpoint", flush=True)
            sys.exit(0)
        signal.signal(signal.SIGTERM, on_term)
    print("started", context.request_id, flush=True)
    time.sleep(event.get("seconds", 60))
    return "done"
"""


async def _running(client: Client, rid: str) -> None:
    for _ in range(200):
        if await client.logs(rid):
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the job never started")


async def test_queued_is_terminated_without_running(client: Client) -> None:
    await client.create_function("job", files={"index.py": JOB}, async_run=True, max_concurrency=1)
    busy = (await client.invoke("job", {"seconds": 30}))["request_id"]
    waiting = (await client.invoke("job", {"seconds": 1}))["request_id"]
    await _running(client, busy)
    assert (await client.get_invocation(waiting))["status"] == "queued"

    answer = await client.terminate(waiting)
    assert answer["status"] == "terminated"
    again = await client.terminate(waiting)  # idempotent
    assert again["status"] == "terminated"
    await client.terminate(busy)
    await client.wait(busy, 10)
    await asyncio.sleep(0.5)
    inv = await client.get_invocation(waiting)
    assert inv["status"] == "terminated"
    assert inv["scf_status"] == "ABORTED"
    assert inv["started_at"] is None
    texts = [line["text"] for line in await client.logs(waiting)]
    assert not any(t.startswith("started") for t in texts)


async def test_running_force(client: Client) -> None:
    await client.create_function("job", files={"index.py": JOB}, async_run=True)
    rid = (await client.invoke("job", {"seconds": 60}))["request_id"]
    await _running(client, rid)
    await client.terminate(rid, grace=False)
    inv = await client.wait(rid, 5)
    assert inv["status"] == "terminated"
    texts = [line["text"] for line in await client.logs(rid)]
    assert any("[PLATFORM]" in t and "SIGKILL" in t for t in texts)


async def test_running_graceful_runs_the_sigterm_handler(client: Client) -> None:
    await client.create_function("job", files={"index.py": JOB}, async_run=True)
    rid = (await client.invoke("job", {"seconds": 60, "graceful": True}))["request_id"]
    await _running(client, rid)
    await client.terminate(rid, grace=True)
    inv = await client.wait(rid, 15)
    assert inv["status"] == "terminated"
    texts = [line["text"] for line in await client.logs(rid)]
    assert any("[PLATFORM]" in t and "SIGTERM" in t for t in texts)
    assert "got SIGTERM, saving checkpoint" in texts
    # Terminating a finished invocation changes nothing.
    assert (await client.terminate(rid))["status"] == "terminated"
