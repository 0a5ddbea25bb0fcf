"""The headline: async-run functions over the real server and client."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest
from cumulo_server import ServerProcess

from cumulo.client import Client

pytestmark = pytest.mark.anyio

TICKER = """
import time

def main_handler(event, context):
    for i in range(event.get("lines", 25)):
        print(f"tick {i}", flush=True)
        time.sleep(event.get("every_s", 0.2))
    return {"ticks": event.get("lines", 25), "request_id": context.request_id}
"""


async def test_live_logs_while_running_then_succeeded(client: Client) -> None:
    await client.create_function("ticker", files={"index.py": TICKER}, async_run=True)
    started = time.monotonic()
    answer = await client.invoke("ticker", {"lines": 25, "every_s": 0.2}, type="async")
    assert time.monotonic() - started < 1.0
    assert answer["status"] == "queued"
    rid = answer["request_id"]

    first_line_status = None
    seen: list[str] = []
    end: dict[str, object] = {}
    async for kind, data in client.follow_logs(rid):
        if kind == "log":
            if first_line_status is None:
                first_line_status = (await client.get_invocation(rid))["status"]
            seen.append(str(data["text"]))
        else:
            end = data
    assert first_line_status == "running"
    assert end["status"] == "succeeded"
    assert seen == [f"tick {i}" for i in range(25)]

    inv = await client.get_invocation(rid)
    assert inv["status"] == "succeeded"
    assert inv["scf_status"] == "FINISHED"
    assert inv["result"] == {"ticks": 25, "request_id": rid}
    assert inv["duration_ms"] >= 4500
    assert inv["billed_duration_ms"] >= inv["duration_ms"]
    assert inv["peak_memory_mb"] > 0
    persisted = await client.logs(rid)
    assert [line["text"] for line in persisted] == [f"tick {i}" for i in range(25)]
    assert [line["seq"] for line in persisted] == list(range(1, 26))
    assert all(line["stream"] == "stdout" for line in persisted)


async def test_async_run_answers_202_even_when_sync_is_asked(server: ServerProcess) -> None:
    async with server.client() as c:
        await c.create_function("slow", files={"index.py": TICKER}, async_run=True)
    started = time.monotonic()
    r = httpx.post(
        f"{server.url}/v1/namespaces/default/functions/slow/invocations?type=sync",
        json={"lines": 20, "every_s": 0.25},
        headers={"Authorization": f"Bearer {server.token}"},
    )
    assert time.monotonic() - started < 1.0
    assert r.status_code == 202
    assert r.json()["status"] == "queued"
    assert r.headers["location"].endswith(r.json()["request_id"])


async def test_follow_resumes_with_last_event_id_and_replays_finished(client: Client) -> None:
    await client.create_function("short", files={"index.py": TICKER}, async_run=True)
    rid = (await client.invoke("short", {"lines": 6, "every_s": 0.05}))["request_id"]
    await client.wait(rid, 30)
    events = [e async for e in client.follow_logs(rid, last_event_id=3)]
    assert [d["text"] for k, d in events if k == "log"] == ["tick 3", "tick 4", "tick 5"]
    assert events[-1] == (
        "end",
        {"request_id": rid, "status": "succeeded", "scf_status": "FINISHED"},
    )


async def test_idempotency_key_returns_first_request_and_runs_once(client: Client) -> None:
    await client.create_function("once", files={"index.py": TICKER}, async_run=True)
    first = await client.invoke("once", {"lines": 1, "every_s": 0}, idempotency_key="job-42")
    again = await client.invoke("once", {"lines": 1, "every_s": 0}, idempotency_key="job-42")
    other = await client.invoke("once", {"lines": 1, "every_s": 0}, idempotency_key="job-43")
    assert first["request_id"] == again["request_id"] != other["request_id"]
    await client.wait(first["request_id"], 30)
    await client.wait(other["request_id"], 30)
    listed = await client.list_invocations(function="once")
    assert len(listed["items"]) == 2


async def test_two_hundred_concurrent_runs_none_lost(client: Client) -> None:
    sleeper = "import time\ndef main_handler(event, context):\n    time.sleep(2)\n    return 1\n"
    await client.create_function("many", files={"index.py": sleeper}, async_run=True)
    ids = await asyncio.gather(*(client.invoke("many") for _ in range(200)))
    done = await asyncio.gather(*(client.wait(i["request_id"], 90) for i in ids))
    assert {d["status"] for d in done} == {"succeeded"}
    assert len({d["request_id"] for d in done}) == 200


async def test_long_logs_are_replayed_whole(client: Client) -> None:
    chatty = "def main_handler(event, context):\n    for i in range(12000):\n        print(i)\n"
    await client.create_function("chatty", files={"index.py": chatty}, async_run=True)
    rid = (await client.invoke("chatty"))["request_id"]
    await client.wait(rid, 60)
    lines = await client.logs(rid)
    assert [line["text"] for line in lines] == [str(i) for i in range(12000)]
    followed = [d["seq"] async for k, d in client.follow_logs(rid, last_event_id=100) if k == "log"]
    assert followed == list(range(101, 12001))
