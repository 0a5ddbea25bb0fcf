"""The bus seam. Subjects used by cumulo:

- ``invocation.<request_id>``: JSON ``{"kind": "logs", "lines": [...]}`` once those lines are
  persisted, and ``{"kind": "status", "status": "..."}`` once a status change is committed;
- ``terminate.<node_id>``: ``{"request_id", "mode"}`` for the node that owns the instance.

Delivery is at most once and in order per subject; a subscriber sees only what was
published after ``subscribe`` returned. Whatever must not be lost goes to the store first.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol


class Subscription(Protocol):
    def __aiter__(self) -> AsyncIterator[bytes]: ...

    async def close(self) -> None:
        """Stop delivery; the iterator then ends. Idempotent."""


class Bus(Protocol):
    async def publish(self, subject: str, data: bytes) -> None:
        """Fire and forget; never blocks on slow subscribers (they drop, oldest first)."""

    async def subscribe(self, subject: str) -> Subscription:
        """Messages on exactly this subject from now on."""

    async def close(self) -> None: ...
