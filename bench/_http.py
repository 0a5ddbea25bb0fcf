"""A minimal HTTP/1.1 keep-alive client for submitting many small POSTs.

The peers are fed by their own Python clients (a Redis ``LPUSH`` each); cumulo's client is
HTTP. httpx spends about a millisecond of client CPU per request, which on a 2-core machine
would measure the client rather than the server, so submissions go through this: one request
in flight per connection, the status line and headers parsed, nothing else.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from urllib.parse import urlsplit

from bench._common import BenchError


async def post_many(
    url: str,
    path: str,
    headers: Mapping[str, str],
    body: bytes,
    jobs: int,
    in_flight: int,
    expect: int = 202,
) -> list[float]:
    """POST ``body`` to ``path`` ``jobs`` times over ``in_flight`` connections; return each
    request's latency in seconds. Raises :class:`BenchError` on any other status."""
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    head = f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Length: {len(body)}\r\n"
    head += "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    request = head.encode() + b"\r\n" + body
    latencies: list[float] = []
    todo = iter(range(jobs))

    async def connection() -> None:
        reader, writer = await asyncio.open_connection(host, port)
        try:
            for _ in todo:
                started = time.perf_counter()
                writer.write(request)
                status_line = await reader.readline()
                status = int(status_line.split()[1])
                length = 0
                while (line := await reader.readline()) not in (b"\r\n", b""):
                    if line[:15].lower() == b"content-length:":
                        length = int(line[15:])
                answer = await reader.readexactly(length)
                if status != expect:
                    raise BenchError(f"POST {path}: {status} {answer[:200]!r}")
                latencies.append(time.perf_counter() - started)
        finally:
            writer.close()

    async with asyncio.TaskGroup() as group:
        for _ in range(in_flight):
            group.create_task(connection())
    return latencies
