"""The NATS bus: what is live crosses the nodes of a cluster on core NATS subjects.

URL: ``nats://[user:password@]host:port[,host:port...][?prefix=NAME]`` (``tls://`` for TLS).
Every subject is sent as ``<prefix>.<subject>`` (default prefix ``cumulo``), so several
clusters can share one NATS server, each with its own prefix.

Delivery is core NATS: at most once, in order per subject from one publisher. A message
larger than the server's ``max_payload`` (1 MiB by default) is sent in parts that carry
``Cumulo-*`` headers and is put together again by each subscriber. Each subscription keeps
at most :data:`~cumulo.bus.local.MAX_PENDING` messages and :data:`MAX_PENDING_BYTES` bytes
pending; past that its oldest messages are dropped, as on the in-process bus.

nats-py reconnects by itself (forever, once the first connect succeeded) and subscribes
again; a subscription outlives a dropped connection and ends only when it or the bus is
closed. What is published while the connection is down is buffered by nats-py (up to its
2 MiB) and sent on reconnect; what is published to this node meanwhile by others is lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import AsyncIterator
from urllib.parse import parse_qs, urlsplit

import nats.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription as NatsSubscriptionHandle
from nats.nuid import NUID

from cumulo.bus.local import MAX_PENDING
from cumulo.errors import BusUnavailable, InvalidParameter

log = logging.getLogger(__name__)

#: Bytes a slow subscriber may have pending before its oldest messages are dropped.
MAX_PENDING_BYTES = 64 * 1024 * 1024
#: How long the first connect may keep trying (NATS may be starting next to the node).
CONNECT_TIMEOUT_S = 10.0
#: Pause between two attempts to reach the same server.
RECONNECT_WAIT_S = 1
#: A silent connection is taken for dead after this many unanswered pings of this interval.
PING_INTERVAL_S = 10
MAX_OUTSTANDING_PINGS = 3
#: How long ``subscribe`` waits for the server to confirm the subscription.
SUBSCRIBE_CONFIRM_S = 2
#: Room left in a part for its headers.
PART_HEADER_ROOM_BYTES = 512
#: Messages split in parts that a subscriber may be putting together at once.
MAX_PARTIAL_MESSAGES = 16
#: Cumulo-Id: one id per split message; Cumulo-Part: 0-based index; Cumulo-Parts: count.
HEADER_ID, HEADER_PART, HEADER_PARTS = "Cumulo-Id", "Cumulo-Part", "Cumulo-Parts"

_TOKENS = re.compile(r"[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*")
_SCHEMES = ("nats", "tls")


class NatsBus:
    """The bus on a NATS server. Build it with the URL, then ``await connect()`` once before
    anything is published or subscribed; ``close()`` is idempotent."""

    def __init__(self, url: str, *, connect_timeout_s: float = CONNECT_TIMEOUT_S) -> None:
        """Raises ``InvalidParameter`` for a URL that is not a NATS URL (nothing is reached
        yet)."""
        self.servers, self.prefix, self.shown_url = parse_url(url)
        self._connect_timeout_s = connect_timeout_s
        self._nc = Client()
        self._nuid = NUID()
        self._subs: set[NatsSubscription] = set()
        self._connected = False
        self._reconnecting = False
        self._closed = False
        self._last_error: Exception | None = None

    async def connect(self) -> None:
        """Reach the server, trying for up to ``connect_timeout_s`` seconds. Raises
        ``BusUnavailable`` (``InternalError.Bus``) naming the URL if it cannot be reached."""
        try:
            async with asyncio.timeout(self._connect_timeout_s):
                await self._nc.connect(
                    self.servers,
                    name="cumulo",
                    error_cb=self._on_error,
                    disconnected_cb=self._on_disconnected,
                    reconnected_cb=self._on_reconnected,
                    closed_cb=self._on_closed,
                    allow_reconnect=True,
                    max_reconnect_attempts=-1,
                    reconnect_time_wait=RECONNECT_WAIT_S,
                    connect_timeout=max(1, round(self._connect_timeout_s / 2)),
                    ping_interval=PING_INTERVAL_S,
                    max_outstanding_pings=MAX_OUTSTANDING_PINGS,
                )
        except (TimeoutError, OSError, nats.errors.Error) as exc:
            reason = self._last_error or exc
            with contextlib.suppress(Exception):
                await self._nc.close()
            raise BusUnavailable(
                f"cannot reach the NATS bus at {self.shown_url} within "
                f"{self._connect_timeout_s:g} s ({_describe(reason)}); start nats-server there "
                "or give --bus the URL of a reachable one (memory:// for a single node)",
            ) from exc
        self._connected = True
        log.info("bus connected to %s (subjects under %s.)", self.shown_url, self.prefix)

    async def publish(self, subject: str, data: bytes) -> None:
        """Fire and forget: returns once the message is handed to the connection (buffered
        while reconnecting). Raises ``BusUnavailable`` (``InternalError.Bus``) when the bus is
        closed or its outbound buffer is full, ``InvalidParameter`` for a bad subject."""
        full = self._subject(subject)
        self._check_open()
        try:
            limit = self._nc.max_payload - PART_HEADER_ROOM_BYTES
            if len(data) <= limit:
                await self._nc.publish(full, data)
                return
            msg_id = self._nuid.next().decode()
            parts = range(0, len(data), limit)
            for index, start in enumerate(parts):
                headers = {
                    HEADER_ID: msg_id,
                    HEADER_PART: str(index),
                    HEADER_PARTS: str(len(parts)),
                }
                await self._nc.publish(full, data[start : start + limit], headers=headers)
        except nats.errors.Error as exc:
            raise BusUnavailable(
                f"could not publish on the NATS bus at {self.shown_url}: {_describe(exc)}",
            ) from exc

    async def subscribe(self, subject: str) -> NatsSubscription:
        """Messages on exactly this subject from now on: returns once the server confirmed
        the subscription (or after ``SUBSCRIBE_CONFIRM_S`` while reconnecting, in which case
        it takes effect on reconnect). Raises as :meth:`publish`."""
        full = self._subject(subject)
        self._check_open()
        sub = NatsSubscription(self)
        try:
            sub.handle = await self._nc.subscribe(full, cb=sub.on_message)
        except nats.errors.Error as exc:
            raise BusUnavailable(
                f"could not subscribe on the NATS bus at {self.shown_url}: {_describe(exc)}",
            ) from exc
        self._subs.add(sub)
        try:
            # A round trip: what another node publishes from now on reaches this subscription.
            await self._nc.flush(timeout=SUBSCRIBE_CONFIRM_S)
        except (nats.errors.Error, TimeoutError) as exc:
            log.warning("subscription to %s not confirmed yet: %s", full, _describe(exc))
        return sub

    async def close(self) -> None:
        """End every subscription, send what is buffered and disconnect. Idempotent."""
        if self._closed:
            return
        self._closed = True
        for sub in list(self._subs):
            await sub.close()
        if self._connected:
            with contextlib.suppress(Exception):
                await self._nc.close()

    def forget(self, sub: NatsSubscription) -> None:
        self._subs.discard(sub)

    def _subject(self, subject: str) -> str:
        # Tokens only: a wildcard (``*``, ``>``) would subscribe to other invocations.
        if not _TOKENS.fullmatch(subject):
            raise InvalidParameter(
                f"bus subject {subject!r} is invalid: use dot-separated tokens of letters, "
                "digits, '-' and '_'"
            )
        return f"{self.prefix}.{subject}"

    def _check_open(self) -> None:
        if self._closed or not self._connected:
            state = "closed" if self._closed else "not connected (call connect() first)"
            raise BusUnavailable(f"the NATS bus at {self.shown_url} is {state}")

    # -- connection events (nats-py calls these) -------------------------------------------
    async def _on_error(self, exc: Exception) -> None:
        self._last_error = exc
        if not self._connected or self._reconnecting:
            # Once per attempt (every second) until it works: said once, on disconnect.
            log.debug("bus: connecting to %s: %s", self.shown_url, _describe(exc))
        elif isinstance(exc, nats.errors.SlowConsumerError):
            log.warning("bus: NATS dropped a message for a slow subscription: %s", exc.subject)
        else:
            log.warning("bus: %s: %s", self.shown_url, _describe(exc))

    async def _on_disconnected(self) -> None:
        if self._connected and not self._closed:
            self._reconnecting = True
            log.warning(
                "bus: disconnected from %s; reconnecting (live logs and terminate signals "
                "from other nodes are missed meanwhile)",
                self.shown_url,
            )

    async def _on_reconnected(self) -> None:
        self._reconnecting = False
        log.warning("bus: reconnected to %s", self.shown_url)

    async def _on_closed(self) -> None:
        if self._connected and not self._closed:
            log.error(
                "bus: the connection to %s is closed for good (%s); live logs and terminate "
                "signals no longer cross nodes: restart this node",
                self.shown_url,
                _describe(self._last_error),
            )


class NatsSubscription:
    """One subject's messages, as bytes, oldest first. ``close()`` ends the iteration and is
    idempotent; a dropped connection does not end it."""

    def __init__(self, bus: NatsBus) -> None:
        self._bus = bus
        self.handle: NatsSubscriptionHandle | None = None
        self._queue: asyncio.Queue[bytes | None] = asyncio.Queue()
        self._pending_bytes = 0
        #: Messages sent in parts, by id: the parts received so far, in order.
        self._partial: dict[str, list[bytes]] = {}
        self._closed = False

    async def on_message(self, msg: Msg) -> None:
        if self._closed:
            return
        headers = msg.headers
        if not headers or HEADER_ID not in headers:
            self._deliver(msg.data)
            return
        whole = self._assemble(headers, msg.data)
        if whole is not None:
            self._deliver(whole)

    def _assemble(self, headers: dict[str, str], data: bytes) -> bytes | None:
        """The whole message once its last part is in; parts out of turn (one was lost on
        the way) drop the message."""
        msg_id = headers[HEADER_ID]
        try:
            index, count = int(headers[HEADER_PART]), int(headers[HEADER_PARTS])
        except (KeyError, ValueError):
            log.warning("bus: dropped a part with bad headers: %r", headers)
            return None
        parts = self._partial.pop(msg_id, [])
        if index != len(parts):
            return None
        parts.append(data)
        if len(parts) == count:
            return b"".join(parts)
        self._partial[msg_id] = parts
        while len(self._partial) > MAX_PARTIAL_MESSAGES:
            del self._partial[next(iter(self._partial))]
        return None

    def _deliver(self, data: bytes) -> None:
        while self._queue.qsize() >= MAX_PENDING or (
            self._pending_bytes + len(data) > MAX_PENDING_BYTES and not self._queue.empty()
        ):
            self._take(self._queue.get_nowait())
        self._pending_bytes += len(data)
        self._queue.put_nowait(data)

    def _take(self, item: bytes | None) -> None:
        if item is not None:
            self._pending_bytes -= len(item)

    async def __aiter__(self) -> AsyncIterator[bytes]:
        while True:
            item = await self._queue.get()
            if item is None:
                return
            self._take(item)
            yield item

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._bus.forget(self)
        self._partial.clear()
        if self.handle is not None:
            # Already gone if the connection is closed.
            with contextlib.suppress(nats.errors.Error):
                await self.handle.unsubscribe()
        self._queue.put_nowait(None)


def parse_url(url: str) -> tuple[list[str], str, str]:
    """``(server URLs for nats-py, subject prefix, the URL with any password hidden)``.
    Raises ``InvalidParameter`` naming what is wrong."""
    shown = _hide_password(url)
    usage = "use nats://host:port[,host:port...][?prefix=NAME]"
    try:
        parts = urlsplit(url)
    except ValueError as exc:
        raise InvalidParameter(
            f"bus URL {shown!r} is invalid ({exc}); {usage}", field="bus"
        ) from None
    if parts.scheme not in _SCHEMES or not parts.netloc or parts.path not in ("", "/"):
        raise InvalidParameter(f"bus URL {shown!r} is invalid; {usage}", field="bus")
    query = parse_qs(parts.query, keep_blank_values=True)
    unknown = sorted(set(query) - {"prefix"})
    if unknown:
        raise InvalidParameter(
            f"bus URL {shown!r} has unknown option(s) {', '.join(unknown)}; {usage}", field="bus"
        )
    prefix = query.get("prefix", ["cumulo"])[-1]
    if not _TOKENS.fullmatch(prefix):
        raise InvalidParameter(
            f"bus URL {shown!r}: prefix {prefix!r} is invalid; use dot-separated tokens of "
            "letters, digits, '-' and '_' (e.g. cumulo.prod)",
            field="bus",
        )
    hosts = [host for host in parts.netloc.split(",") if host]
    return [f"{parts.scheme}://{host}" for host in hosts], prefix, shown


def _hide_password(url: str) -> str:
    """``user:***@`` for a user and password, ``***@`` for a token."""

    def hide(match: re.Match[str]) -> str:
        user, colon, _ = match[1].partition(":")
        return f"{user}:***@" if colon else "***@"

    return re.sub(r"(?<=[/,])([^/,@]*)@", hide, url)


def _describe(exc: BaseException | None) -> str:
    if exc is None:
        return "no error reported"
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
