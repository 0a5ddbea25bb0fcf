"""Normal async retries with backoff then dead-letter; async-run never retried."""

from __future__ import annotations

from datetime import datetime

import pytest

from cumulo.client import Client

pytestmark = pytest.mark.anyio

FLAKY = """
def main_handler(event, context):
    print("attempt for", context.request_id, flush=True)
    raise RuntimeError("always fails")
"""


async def test_normal_async_retries_then_dead_letters(client: Client) -> None:
    await client.create_function("flaky", files={"index.py": FLAKY}, retry_attempts=2)
    rid = (await client.invoke("flaky", {}, type="async"))["request_id"]
    inv = await client.wait(rid, 30)
    assert inv["status"] == "failed"
    assert inv["dead_lettered"] is True
    assert inv["attempt"] == 3 and inv["max_attempts"] == 3
    assert inv["error"]["type"] == "RuntimeError"
    texts = [line["text"] for line in await client.logs(rid)]
    assert texts.count(f"attempt for {rid}") == 3
    retry_lines = [t for t in texts if "retrying in" in t]
    assert len(retry_lines) == 2
    delays = [float(t.split("retrying in ")[1].split()[0]) for t in retry_lines]
    assert delays[1] > delays[0]  # exponential backoff
    dead = await client.list_invocations(function="flaky", dead_lettered=True)
    assert [i["request_id"] for i in dead["items"]] == [rid]
    created = datetime.fromisoformat(inv["created_at"].replace("Z", "+00:00"))
    finished = datetime.fromisoformat(inv["finished_at"].replace("Z", "+00:00"))
    assert (finished - created).total_seconds() >= 2.5  # 1 s + 2 s of backoff


async def test_async_run_is_never_retried(client: Client) -> None:
    await client.create_function("flaky", files={"index.py": FLAKY}, async_run=True,
                                 retry_attempts=2)  # fmt: skip
    rid = (await client.invoke("flaky"))["request_id"]
    inv = await client.wait(rid, 20)
    assert inv["status"] == "failed"
    assert inv["attempt"] == 1 and inv["max_attempts"] == 1
    assert not inv["dead_lettered"]
    texts = [line["text"] for line in await client.logs(rid)]
    assert texts.count(f"attempt for {rid}") == 1
