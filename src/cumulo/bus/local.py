"""The in-process bus: the default on one node, and the stub for tests."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import AsyncIterator

#: Messages a slow subscriber may have pending before the oldest is dropped.
MAX_PENDING = 10_000


class LocalSubscription:
    def __init__(self, bus: LocalBus, subject: str) -> None:
        self._bus = bus
        self._subject = subject
        self._queue: asyncio.Queue[bytes | None] = asyncio.Queue(MAX_PENDING)
        self._closed = False

    def deliver(self, data: bytes) -> None:
        if self._queue.full():
            self._queue.get_nowait()
        self._queue.put_nowait(data)

    async def __aiter__(self) -> AsyncIterator[bytes]:
        while True:
            item = await self._queue.get()
            if item is None:
                return
            yield item

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._bus.unsubscribe(self._subject, self)
        if self._queue.full():
            self._queue.get_nowait()
        self._queue.put_nowait(None)


class LocalBus:
    def __init__(self) -> None:
        self._subscribers: defaultdict[str, set[LocalSubscription]] = defaultdict(set)

    async def publish(self, subject: str, data: bytes) -> None:
        for sub in tuple(self._subscribers.get(subject, ())):
            sub.deliver(data)

    async def subscribe(self, subject: str) -> LocalSubscription:
        sub = LocalSubscription(self, subject)
        self._subscribers[subject].add(sub)
        return sub

    def unsubscribe(self, subject: str, sub: LocalSubscription) -> None:
        subs = self._subscribers.get(subject)
        if subs is not None:
            subs.discard(sub)
            if not subs:
                del self._subscribers[subject]

    async def close(self) -> None:
        for subs in list(self._subscribers.values()):
            for sub in list(subs):
                await sub.close()
