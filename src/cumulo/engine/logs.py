"""The log collector: numbers each line an instance writes, persists lines in batches, and
publishes them live once they are persisted.

Persist-then-publish is what makes ``logs?follow=1`` gap-free: a follower subscribes first,
then reads the store; a line is either already in the store or will arrive on the bus (seen
twice at worst, and de-duplicated by ``seq``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Sequence

import orjson

from cumulo.bus.base import Bus
from cumulo.models import LogLine, LogStream
from cumulo.store.base import LogStore

log = logging.getLogger(__name__)

TRUNCATION_TEXT = "[PLATFORM] log truncated: this invocation wrote more than {cap} bytes"
#: A batch the store refused this many times in a row is dropped (and said so in the server
#: log) rather than holding every invocation's outcome back behind it.
MAX_FLUSH_FAILURES = 5


def subject(request_id: str) -> str:
    return f"invocation.{request_id}"


#: Lines read from the store per query when replaying a log.
READ_PAGE = 5_000


async def stored_lines(
    store: LogStore, request_id: str, after_seq: int = 0
) -> AsyncIterator[list[LogLine]]:
    """Every stored line after ``after_seq``, page by page (a 24 h job may have millions)."""
    while True:
        page = await store.read_logs(request_id, after_seq, READ_PAGE)
        if page:
            yield page
            after_seq = page[-1].seq
        if len(page) < READ_PAGE:
            return


async def last_seq(store: LogStore, request_id: str) -> int:
    """The sequence number of the invocation's last stored line (0 when none)."""
    last = 0
    async for page in stored_lines(store, request_id):
        last = page[-1].seq
    return last


def line_json(line: LogLine) -> dict[str, object]:
    return {"seq": line.seq, "ts": line.ts, "stream": line.stream.value, "text": line.text}


class LogWriter:
    """The sink for one invocation's lines (``runtime.base.LogSink``)."""

    def __init__(self, collector: LogCollector, request_id: str, start_seq: int, cap: int) -> None:
        self._collector = collector
        self.request_id = request_id
        self.seq = start_seq
        self.bytes_written = 0
        self._cap = cap
        self._truncated = False

    def __call__(self, stream: LogStream, text: str) -> None:
        if stream is LogStream.PLATFORM:
            self.platform(text)
            return
        if self._truncated:
            return
        if "\x00" in text:  # no database takes NUL in text; show it as the replacement char
            text = text.replace("\x00", "\ufffd")
        size = len(text) + 1
        if self.bytes_written + size > self._cap:
            self._truncated = True
            self.platform(TRUNCATION_TEXT.format(cap=self._cap))
            return
        self.bytes_written += size
        self.seq += 1
        self._collector.add(LogLine(self.request_id, self.seq, time.time(), stream, text))

    def platform(self, text: str) -> None:
        """A line the platform writes about this invocation (not counted against the cap)."""
        if not text.startswith("[PLATFORM]"):
            text = f"[PLATFORM] {text}"
        self.seq += 1
        self._collector.add(
            LogLine(self.request_id, self.seq, time.time(), LogStream.PLATFORM, text)
        )

    async def flushed(self) -> None:
        """Return once every line written so far is persisted and published."""
        await self._collector.wait_flushed(self.request_id, self.seq)


class LogCollector:
    def __init__(self, store: LogStore, bus: Bus, *, flush_interval_s: float, cap_bytes: int):
        self._store = store
        self._bus = bus
        self._interval_s = flush_interval_s
        self._cap = cap_bytes
        self._pending: list[LogLine] = []
        self._flushed_seq: dict[str, int] = {}
        self._waiters: defaultdict[str, list[tuple[int, asyncio.Future[None]]]] = defaultdict(list)
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._failures = 0

    def open(self, request_id: str, start_seq: int = 0) -> LogWriter:
        return LogWriter(self, request_id, start_seq, self._cap)

    def add(self, line: LogLine) -> None:
        self._pending.append(line)
        self._wake.set()

    async def wait_flushed(self, request_id: str, seq: int) -> None:
        if self._flushed_seq.get(request_id, 0) >= seq:
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters[request_id].append((seq, fut))
        self._wake.set()
        await fut

    def forget(self, request_id: str) -> None:
        """The invocation ended and its lines are flushed: drop its bookkeeping."""
        self._flushed_seq.pop(request_id, None)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="log-collector")

    async def close(self) -> None:
        self._closing = True
        self._wake.set()
        if self._task is not None:
            await self._task

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            if self._pending:
                # Let a burst of lines gather into one transaction.
                await asyncio.sleep(self._interval_s)
                await self._flush()
            if self._closing and not self._pending:
                return

    async def _flush(self) -> None:
        batch, self._pending = self._pending, []
        try:
            await self._store.append_logs(batch)
            self._failures = 0
        except Exception:
            self._failures += 1
            if self._failures < MAX_FLUSH_FAILURES:
                log.exception("could not persist %d log lines; will retry", len(batch))
                self._pending[:0] = batch
                await asyncio.sleep(0.2 * 2**self._failures)
                self._wake.set()
                return
            log.exception("dropping %d log lines the store keeps refusing", len(batch))
            self._failures = 0
        by_request: defaultdict[str, list[LogLine]] = defaultdict(list)
        for line in batch:
            by_request[line.request_id].append(line)
        for request_id, lines in by_request.items():
            await self._publish(request_id, lines)
            top = lines[-1].seq
            if top > self._flushed_seq.get(request_id, 0):
                self._flushed_seq[request_id] = top
            self._release(request_id)

    async def _publish(self, request_id: str, lines: Sequence[LogLine]) -> None:
        payload = {"kind": "logs", "lines": [line_json(line) for line in lines]}
        try:
            await self._bus.publish(subject(request_id), orjson.dumps(payload))
        except Exception:
            log.exception("could not publish log lines", extra={"request_id": request_id})

    def _release(self, request_id: str) -> None:
        waiters = self._waiters.get(request_id)
        if not waiters:
            return
        done = self._flushed_seq.get(request_id, 0)
        keep = []
        for seq, fut in waiters:
            if seq <= done:
                if not fut.done():
                    fut.set_result(None)
            else:
                keep.append((seq, fut))
        if keep:
            self._waiters[request_id] = keep
        else:
            del self._waiters[request_id]
