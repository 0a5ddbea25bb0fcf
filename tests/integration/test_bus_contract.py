"""The bus contract (``cumulo.bus.base``), run on the in-process bus and on NATS.

Each test gets two buses, ``a`` and ``b``: the same in-process bus twice, or two NATS
connections (two nodes) under a subject prefix of the test's own. NATS is expected at
``CUMULO_TEST_NATS_URL`` (default ``nats://127.0.0.1:4222``); when it cannot be reached the
nats cases fail if ``CI`` is set and are skipped otherwise.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import shutil
import socket
import subprocess
import time
import uuid
import warnings
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import orjson
import pytest

from cumulo.app import make_bus
from cumulo.bus.base import Bus, Subscription
from cumulo.bus.local import MAX_PENDING, LocalBus
from cumulo.bus.nats import NatsBus
from cumulo.errors import CumuloError, InvalidParameter

pytestmark = pytest.mark.anyio

NATS_URL = os.environ.get("CUMULO_TEST_NATS_URL", "nats://127.0.0.1:4222")


def _nats_missing(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"NATS is required on CI: {reason}")
    pytest.skip(f"NATS not reachable at {NATS_URL}: {reason}")


@dataclass
class Pair:
    """Two nodes' buses: a message published on either reaches subscribers on both."""

    a: Bus
    b: Bus


async def _nats_bus(prefix: str) -> NatsBus:
    bus = NatsBus(f"{NATS_URL}?prefix={prefix}", connect_timeout_s=2)
    try:
        await bus.connect()
    except CumuloError as exc:
        _nats_missing(exc.message)
    return bus


@pytest.fixture(params=["memory", "nats"])
async def pair(request: pytest.FixtureRequest) -> AsyncIterator[Pair]:
    if request.param == "memory":
        local = LocalBus()
        yield Pair(local, local)
        await local.close()
        return
    prefix = f"cumulo.t{uuid.uuid4().hex[:12]}"
    a = await _nats_bus(prefix)
    b = await _nats_bus(prefix)
    try:
        yield Pair(a, b)
    finally:
        await a.close()
        await b.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _subject() -> str:
    return f"invocation.{uuid.uuid4()}"


async def _take(sub: Subscription, count: int, timeout_s: float = 5.0) -> list[bytes]:
    got: list[bytes] = []
    async with asyncio.timeout(timeout_s):
        async for item in sub:
            got.append(item)
            if len(got) == count:
                break
    return got


async def _nothing_more(sub: Subscription, wait_s: float = 0.3) -> bool:
    messages = sub.__aiter__()
    try:
        async with asyncio.timeout(wait_s):
            await anext(messages)
    except TimeoutError:
        return True
    return False


def test_both_buses_satisfy_the_protocol() -> None:
    buses: list[Bus] = [LocalBus(), NatsBus(NATS_URL)]
    assert len(buses) == 2


async def test_order_is_kept_per_subject(pair: Pair) -> None:
    subject = _subject()
    sub = await pair.b.subscribe(subject)
    sent = [b"%d" % i for i in range(500)]
    for data in sent:
        await pair.a.publish(subject, data)
    assert await _take(sub, len(sent)) == sent
    await sub.close()


async def test_only_messages_published_after_subscribe(pair: Pair) -> None:
    subject = _subject()
    # "Before" is when it reached every subscriber of the time (here: one on the publisher).
    witness = await pair.a.subscribe(subject)
    await pair.a.publish(subject, b"before")
    assert await _take(witness, 1) == [b"before"]
    sub = await pair.b.subscribe(subject)
    # At once: subscribe returns only when another node's publish will reach it.
    await pair.a.publish(subject, b"after")
    assert await _take(sub, 1) == [b"after"]
    assert await _nothing_more(sub)
    await sub.close()
    await witness.close()


async def test_exactly_this_subject(pair: Pair) -> None:
    subject, other = _subject(), _subject()
    sub = await pair.b.subscribe(subject)
    await pair.a.publish(other, b"other")
    await pair.a.publish(f"{subject}.more", b"longer")
    await pair.a.publish(subject, b"mine")
    assert await _take(sub, 1) == [b"mine"]
    assert await _nothing_more(sub)
    await sub.close()


async def test_close_ends_iteration_and_is_idempotent(pair: Pair) -> None:
    subject = _subject()
    sub = await pair.b.subscribe(subject)
    got: list[bytes] = []

    async def read() -> None:
        async for item in sub:
            got.append(item)

    reader = asyncio.create_task(read())
    await pair.a.publish(subject, b"one")
    for _ in range(100):
        if got:
            break
        await asyncio.sleep(0.02)
    await sub.close()
    await asyncio.wait_for(reader, 2)
    assert got == [b"one"]
    await sub.close()
    await pair.a.publish(subject, b"two")  # nobody listens: not an error


async def test_closing_the_bus_ends_its_subscriptions(pair: Pair) -> None:
    sub = await pair.b.subscribe(_subject())
    reader = asyncio.create_task(_take(sub, 1, timeout_s=10))
    await asyncio.sleep(0.05)
    await pair.b.close()
    assert await asyncio.wait_for(reader, 2) == []
    await pair.b.close()
    await sub.close()


async def test_many_subscribers_each_get_every_message(pair: Pair) -> None:
    subject = _subject()
    subs = [await (pair.a if i % 2 else pair.b).subscribe(subject) for i in range(40)]
    sent = [b"%d" % i for i in range(50)]
    for data in sent:
        await pair.a.publish(subject, data)
    for sub in subs:
        assert await _take(sub, len(sent)) == sent
    # One subscriber leaving does not disturb the others.
    await subs[0].close()
    await pair.b.publish(subject, b"last")
    for sub in subs[1:]:
        assert await _take(sub, 1) == [b"last"]
    for sub in subs:
        await sub.close()


async def test_a_slow_subscriber_drops_its_oldest_without_blocking_publish(pair: Pair) -> None:
    subject = _subject()
    slow = await pair.b.subscribe(subject)
    fast = await pair.b.subscribe(subject)
    total = MAX_PENDING + 500
    sent = [b"%d" % i for i in range(total)]
    # The fast one keeps up; once it saw the last message, so did the slow one's queue.
    fast_reader = asyncio.create_task(_take(fast, total, timeout_s=20))
    started = time.monotonic()
    for i, data in enumerate(sent):
        await pair.a.publish(subject, data)
        if i % 500 == 0:
            await asyncio.sleep(0)  # let the fast reader run
    assert time.monotonic() - started < 10
    assert await fast_reader == sent
    await asyncio.sleep(0.2)
    kept = await _take(slow, MAX_PENDING)
    assert kept == sent[-MAX_PENDING:]
    assert await _nothing_more(slow)
    await slow.close()
    await fast.close()


@pytest.mark.parametrize("size", [1_000_000, 3_500_000])
async def test_large_payloads_arrive_whole_and_in_order(pair: Pair, size: int) -> None:
    # A log batch of about the size given, as the log collector publishes it.
    line = {"seq": 0, "ts": "2024-01-01T00:00:00.000Z", "stream": "stdout", "text": "x" * 200}
    lines = [dict(line, seq=i + 1) for i in range(size // 260)]
    batch = orjson.dumps({"kind": "logs", "lines": lines})
    subject = _subject()
    sub = await pair.b.subscribe(subject)
    await pair.a.publish(subject, b"small before")
    await pair.a.publish(subject, batch)
    await pair.a.publish(subject, b"small after")
    got = await _take(sub, 3, timeout_s=10)
    assert got[0] == b"small before"
    assert orjson.loads(got[1])["lines"] == lines
    assert got[2] == b"small after"
    await sub.close()


async def test_subjects_carry_request_ids(pair: Pair) -> None:
    rid = str(uuid.uuid4())
    assert "." not in rid
    sub = await pair.b.subscribe(f"invocation.{rid}")
    await pair.a.publish(f"invocation.{rid}", b'{"kind":"status","status":"running"}')
    assert orjson.loads((await _take(sub, 1))[0]) == {"kind": "status", "status": "running"}
    await sub.close()


# --- NATS only -------------------------------------------------------------------------


def test_make_bus_builds_each_kind() -> None:
    assert isinstance(make_bus("memory://"), LocalBus)
    bus = make_bus("nats://127.0.0.1:4222?prefix=prod.eu")
    assert isinstance(bus, NatsBus)
    assert bus.prefix == "prod.eu"
    assert isinstance(make_bus("nats://127.0.0.1:4222"), NatsBus)
    with pytest.raises(InvalidParameter, match=r"memory:// \(one node\) or nats://"):
        make_bus("redis://127.0.0.1")


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("nats://", "invalid"),
        ("nats://h:4222/some/path", "invalid"),
        ("nats://h:4222?prefx=a", "unknown option"),
        ("nats://h:4222?prefix=a.*", "prefix 'a.*' is invalid"),
        ("nats://h:4222?prefix=", "prefix '' is invalid"),
    ],
)
def test_bad_nats_urls_say_what_is_wrong(url: str, says: str) -> None:
    with pytest.raises(InvalidParameter, match=says):
        NatsBus(url)


async def test_an_unreachable_server_is_named_with_what_to_do() -> None:
    url = f"nats://user:hunter2@127.0.0.1:{free_port()}"
    bus = NatsBus(url, connect_timeout_s=1.5)
    started = time.monotonic()
    with pytest.raises(CumuloError) as caught:
        await bus.connect()
    assert time.monotonic() - started < 5
    assert caught.value.code == "InternalError.Bus"
    message = caught.value.message
    assert "user:***@127.0.0.1" in message and "hunter2" not in message
    assert "start nats-server" in message
    with pytest.raises(CumuloError, match="not connected"):
        await bus.publish("invocation.x", b"")
    await bus.close()


async def test_wildcards_are_refused() -> None:
    """NATS would read them as patterns: a follower must never tail other invocations."""
    bus = await _nats_bus(f"cumulo.t{uuid.uuid4().hex[:12]}")
    try:
        for subject in ["invocation.*", "invocation.>", "invocation.a b", "invocation..x", ""]:
            with pytest.raises(InvalidParameter, match="bus subject"):
                await bus.subscribe(subject)
            with pytest.raises(InvalidParameter, match="bus subject"):
                await bus.publish(subject, b"")
    finally:
        await bus.close()


async def test_prefixes_keep_clusters_apart() -> None:
    first = await _nats_bus(f"cumulo.t{uuid.uuid4().hex[:12]}")
    second = await _nats_bus(f"cumulo.t{uuid.uuid4().hex[:12]}")
    try:
        subject = _subject()
        sub = await second.subscribe(subject)
        await first.publish(subject, b"other cluster")
        await second.publish(subject, b"mine")
        assert await _take(sub, 1) == [b"mine"]
        assert await _nothing_more(sub)
        await sub.close()
    finally:
        await first.close()
        await second.close()


@contextlib.contextmanager
def _nats_server(port: int, workdir: Path) -> Iterator[subprocess.Popen[bytes]]:
    binary = shutil.which("nats-server") or shutil.which("nats-server", path="/usr/sbin")
    if binary is None:
        _nats_missing("nats-server is not installed (apt-get install nats-server)")
    assert binary is not None
    with (workdir / f"nats-{port}.log").open("ab") as log:
        proc = subprocess.Popen(
            [binary, "-a", "127.0.0.1", "-p", str(port)], stdout=log, stderr=subprocess.STDOUT
        )
    try:
        yield proc
    finally:
        proc.kill()
        proc.wait(5)


async def _listening(port: int) -> None:
    for _ in range(100):
        with contextlib.suppress(OSError):
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            await writer.wait_closed()
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"nats-server did not listen on {port}")


async def test_subscriptions_outlive_a_dropped_connection(tmp_path: Path) -> None:
    """The dispatcher's terminate loop iterates one subscription for the node's life: a NATS
    restart must not end it, and what is published after the reconnect must reach it."""
    port = free_port()
    url = f"nats://127.0.0.1:{port}?prefix=cumulo.restart"
    with _nats_server(port, tmp_path):
        await _listening(port)
        node, other = NatsBus(url, connect_timeout_s=5), NatsBus(url, connect_timeout_s=5)
        await node.connect()
        await other.connect()
        sub = await node.subscribe("terminate.node1")
        got: list[bytes] = []

        async def loop() -> None:
            async for raw in sub:
                got.append(raw)

        terminate_loop = asyncio.create_task(loop())
        # At most once: on a loaded machine the first message may be lost; say it again.
        deadline = time.monotonic() + 10
        while not got and time.monotonic() < deadline:
            await other.publish("terminate.node1", b"before")
            await asyncio.sleep(0.2)
        assert got and set(got) == {b"before"}
    # The server is gone: publishing is buffered, not an error; the loop goes on.
    await node.publish("invocation.x", b"while down")
    await asyncio.sleep(0.5)
    assert not terminate_loop.done()
    with _nats_server(port, tmp_path):
        await _listening(port)
        deadline = time.monotonic() + 15
        while b"after" not in got and time.monotonic() < deadline:
            with contextlib.suppress(CumuloError):
                await other.publish("terminate.node1", b"after")
            await asyncio.sleep(0.2)
        assert got[0] == b"before" and b"after" in got
        assert not terminate_loop.done()
        await node.close()
        await other.close()
    await asyncio.wait_for(terminate_loop, 2)
    del node, other
    # The connection the server dropped left a stream writer behind in the client; collect it
    # now, while this test's loop runs, rather than in whichever test comes next.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        gc.collect()
