"""The log collector on a real SQLite store and the in-process bus."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from cumulo.bus.local import LocalBus
from cumulo.engine.logs import LogCollector, subject
from cumulo.models import LogStream
from cumulo.store.sql import SqlStore

pytestmark = pytest.mark.anyio


async def test_lines_are_persisted_then_published_and_capped(tmp_path: Path) -> None:
    store = SqlStore(f"sqlite:///{tmp_path / 'c.db'}")
    await store.open()
    bus = LocalBus()
    collector = LogCollector(store, bus, flush_interval_s=0.005, cap_bytes=100)
    collector.start()
    sub = await bus.subscribe(subject("r1"))
    try:
        writer = collector.open("r1")
        for i in range(20):
            writer(LogStream.STDOUT, f"line {i:02d}")  # 7 bytes + newline each: 12 fit in 100
        writer(LogStream.PLATFORM, "terminated by request (force): SIGKILL sent")
        await writer.flushed()
        stored = await store.read_logs("r1")
        texts = [line.text for line in stored]
        assert texts[:12] == [f"line {i:02d}" for i in range(12)]
        assert texts[12].startswith("[PLATFORM] log truncated")
        # Platform lines still get through after the cap, marked as such.
        assert texts[13] == "[PLATFORM] terminated by request (force): SIGKILL sent"
        assert len(texts) == 14
        assert [line.seq for line in stored] == list(range(1, 15))
        published = []
        async for raw in sub:
            message = orjson.loads(raw)
            published.extend(message["lines"])
            if published[-1]["seq"] == 14:
                break
        assert [item["text"] for item in published] == texts
    finally:
        await sub.close()
        await collector.close()
        await store.close()


async def test_a_retry_continues_the_sequence(tmp_path: Path) -> None:
    store = SqlStore(f"sqlite:///{tmp_path / 'c.db'}")
    await store.open()
    collector = LogCollector(store, LocalBus(), flush_interval_s=0.005, cap_bytes=10_000)
    collector.start()
    try:
        first = collector.open("r2")
        first(LogStream.STDOUT, "attempt 1")
        await first.flushed()
        second = collector.open("r2", start_seq=first.seq)
        second(LogStream.STDERR, "attempt 2")
        await second.flushed()
        lines = await store.read_logs("r2")
        assert [(line.seq, line.stream, line.text) for line in lines] == [
            (1, LogStream.STDOUT, "attempt 1"),
            (2, LogStream.STDERR, "attempt 2"),
        ]
    finally:
        await collector.close()
        await store.close()
