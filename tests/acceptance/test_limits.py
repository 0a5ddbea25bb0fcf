"""max_qps (429 and no record), payload limits, concurrency queueing."""

from __future__ import annotations

import asyncio
import time

import pytest
from cumulo_server import ServerProcess

from cumulo.client import Client

pytestmark = pytest.mark.anyio

NOOP = "def main_handler(event, context):\n    return None\n"


async def _burst(port: int, path: str, token: str, total: int, conns: int) -> list[int]:
    """Send ``total`` POSTs over ``conns`` keep-alive connections, pipelined, all written at
    once; return the status codes."""
    body = b"{}"
    request = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    per_conn = [total // conns + (1 if i < total % conns else 0) for i in range(conns)]

    async def one(count: int) -> list[int]:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(request * count)
        await writer.drain()
        codes = []
        for _ in range(count):
            status_line = await reader.readline()
            codes.append(int(status_line.split()[1]))
            length = 0
            while (line := await reader.readline()) not in (b"\r\n", b""):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            await reader.readexactly(length)
        writer.close()
        return codes

    results = await asyncio.gather(*(one(n) for n in per_conn))
    return [code for codes in results for code in codes]


async def test_max_qps_refuses_the_excess_and_records_nothing(server: ServerProcess) -> None:
    async with server.client() as c:
        await c.create_function("qq", files={"index.py": NOOP}, async_run=True, max_qps=1000)
        path = "/v1/namespaces/default/functions/qq/invocations"
        started = time.monotonic()
        codes = await _burst(server.port, path, server.token, 1500, 50)
        elapsed = time.monotonic() - started
        accepted = codes.count(202)
        assert codes.count(202) + codes.count(429) == 1500
        assert codes.count(429) > 0, (accepted, elapsed)
        # At most max_qps in any one-second window.
        assert accepted <= 1000 * (1 + int(elapsed))
        records = []
        cursor = None
        while True:
            page = await c.list_invocations(function="qq", limit=1000, cursor=cursor)
            records.extend(page["items"])
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert len(records) == accepted


async def test_429_carries_retry_after(server: ServerProcess) -> None:
    import httpx

    async with server.client() as c:
        await c.create_function("q1", files={"index.py": NOOP}, async_run=True, max_qps=1)
    headers = {"Authorization": f"Bearer {server.token}"}
    url = f"{server.url}/v1/namespaces/default/functions/q1/invocations"
    assert httpx.post(url, json={}, headers=headers).status_code == 202
    r = httpx.post(url, json={}, headers=headers)
    assert r.status_code == 429
    assert r.json()["error"]["code"] == "RequestLimitExceeded"
    assert int(r.headers["retry-after"]) >= 1


async def test_payload_limits(server: ServerProcess) -> None:
    import httpx

    async with server.client() as c:
        await c.create_function("pp", files={"index.py": NOOP})
        await c.create_function("pa", files={"index.py": NOOP}, async_run=True)
    headers = {"Authorization": f"Bearer {server.token}", "Content-Type": "application/json"}
    base = f"{server.url}/v1/namespaces/default/functions"
    big_async = b'"' + b"x" * (128 * 1024) + b'"'
    r = httpx.post(f"{base}/pa/invocations", content=big_async, headers=headers)
    assert r.status_code == 413
    assert r.json()["error"]["code"] == "InvalidParameterValue.PayloadTooLarge"
    r = httpx.post(f"{base}/pp/invocations?type=async", content=big_async, headers=headers)
    assert r.status_code == 413
    r = httpx.post(f"{base}/pp/invocations?type=sync", content=big_async, headers=headers)
    assert r.status_code == 200
    big_sync = b'"' + b"x" * (6 * 1024 * 1024) + b'"'
    r = httpx.post(f"{base}/pp/invocations?type=sync", content=big_sync, headers=headers)
    assert r.status_code == 413


async def test_concurrency_limit_keeps_the_rest_queued(client: Client) -> None:
    code = "import time\ndef main_handler(e, c):\n    time.sleep(1)\n    return 1\n"
    await client.create_function("c2", files={"index.py": code}, async_run=True, max_concurrency=2)
    ids = [(await client.invoke("c2"))["request_id"] for _ in range(5)]
    await asyncio.sleep(0.6)
    statuses = [(await client.get_invocation(i))["status"] for i in ids]
    assert statuses.count("running") == 2
    assert statuses.count("queued") == 3
    done = [await client.wait(i, 30) for i in ids]
    assert {d["status"] for d in done} == {"succeeded"}
