"""Two real nodes, one cluster: a PostgreSQL store and the NATS bus, shared.

Each test gets a database of its own and a NATS subject prefix of its own, and starts node
``a`` then node ``b`` (the same secret key; ``b`` gets a copy of ``a``'s admin token, as
there is no flag for it). Which node runs an invocation is read from its first log line:
an instance runs in its node's data dir.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import datetime
from pathlib import Path

import asyncpg
import pytest
from cumulo_server import ServerProcess

from cumulo.client import Client
from cumulo.secretbox import generate_key

pytestmark = pytest.mark.anyio

ADMIN_DSN = os.environ.get("CUMULO_TEST_PG_ADMIN", "postgresql://postgres@127.0.0.1:5432/test")
NATS_HOST, NATS_PORT = "127.0.0.1", 4222
#: A short lease (``--lease``), so a dead node's runs are settled within seconds.
LEASE_S = 3

JOB = """
import os, time

def main_handler(event, context):
    print("run", context.request_id, os.getcwd(), flush=True)
    for i in range(event.get("ticks", 0)):
        time.sleep(event.get("every_s", 0.25))
        print("tick", i, time.time(), flush=True)
    return {"ticks": event.get("ticks", 0)}
"""


def _missing(service: str, reason: object) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{service} is required on CI: {reason}")
    pytest.skip(f"{service} not reachable: {reason}")


@pytest.fixture
async def database() -> AsyncIterator[str]:
    name = f"cumulo_c_{uuid.uuid4().hex[:10]}"
    try:
        admin = await asyncpg.connect(ADMIN_DSN)
    except (OSError, asyncpg.PostgresError) as exc:
        _missing("PostgreSQL", exc)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        yield f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}"
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


@pytest.fixture
def bus_url() -> str:
    try:
        socket.create_connection((NATS_HOST, NATS_PORT), timeout=2).close()
    except OSError as exc:
        _missing(f"NATS at {NATS_HOST}:{NATS_PORT}", exc)
    return f"nats://{NATS_HOST}:{NATS_PORT}?prefix=cumulo.t{uuid.uuid4().hex[:12]}"


class Cluster:
    def __init__(self, tmp_path: Path, database: str, bus_url: str) -> None:
        self.token = "cum_cluster_" + uuid.uuid4().hex
        args = ["--store", database, "--bus", bus_url, "--secret-key", generate_key(),
                "--admin-token", self.token, "--lease", str(LEASE_S)]  # fmt: skip
        self.a = ServerProcess(tmp_path / "a-data", args)
        self.b = ServerProcess(tmp_path / "b-data", args)
        for node in (self.a, self.b):
            node.data_dir.mkdir(parents=True)
            # The test harness reads the token from the data dir; the server takes the flag.
            (node.data_dir / "admin.token").write_text(self.token + "\n")

    def start(self) -> None:
        # One after the other: the first start migrates the fresh database.
        self.a.start()
        self.b.start()

    def stop(self) -> None:
        self.a.stop()
        self.b.stop()

    def runner(self, first_line: str) -> ServerProcess:
        """The node whose data dir the instance ran in (``run <request_id> <cwd>``)."""
        cwd = Path(first_line.split()[2])
        return self.a if cwd.is_relative_to(self.a.data_dir.resolve()) else self.b

    def other(self, node: ServerProcess) -> ServerProcess:
        return self.b if node is self.a else self.a


@pytest.fixture
def cluster(tmp_path: Path, database: str, bus_url: str) -> Iterator[Cluster]:
    nodes = Cluster(tmp_path, database, bus_url)
    try:
        nodes.start()
        yield nodes
    finally:
        nodes.stop()


async def _first_line(client: Client, rid: str, timeout_s: float = 10.0) -> str:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        lines = await client.logs(rid)
        if lines:
            return str(lines[0]["text"])
        await asyncio.sleep(0.05)
    raise AssertionError(f"{rid} did not start in {timeout_s} s")


async def test_invocations_accepted_on_both_nodes_run_exactly_once(cluster: Cluster) -> None:
    async with cluster.a.client() as a, cluster.b.client() as b:
        await a.create_function("job", files={"index.py": JOB}, async_run=True)
        rids = [(await (a, b)[i % 2].invoke("job", {"ticks": 1}))["request_id"] for i in range(16)]
        runners = set()
        for rid in rids:
            inv = await b.wait(rid, 30)
            assert inv["status"] == "succeeded", inv
            runs = [line["text"] for line in await a.logs(rid) if line["text"].startswith("run ")]
            assert len(runs) == 1, runs
            runners.add(cluster.runner(runs[0]))
        assert runners == {cluster.a, cluster.b}  # both nodes dispatch
        listed = await b.list_invocations("job", limit=100)
        assert sorted(i["request_id"] for i in listed["items"]) == sorted(rids)


async def test_logs_followed_through_the_other_node_arrive_live(cluster: Cluster) -> None:
    async with cluster.a.client() as a:
        await a.create_function("job", files={"index.py": JOB}, async_run=True)
        rid = (await a.invoke("job", {"ticks": 10, "every_s": 0.25}))["request_id"]
        watcher = cluster.other(cluster.runner(await _first_line(a, rid)))
        async with watcher.client() as w:
            followed_at = time.time()
            events = []
            async for kind, data in w.follow_logs(rid):
                events.append((kind, data, time.time()))
    # (when the instance printed it, when the follower got it)
    texts = [(data["text"], at) for kind, data, at in events if kind == "log"]
    ticks = [(float(text.split()[2]), at) for text, at in texts if text.startswith("tick")]
    assert len(ticks) == 10
    live = [(printed, at) for printed, at in ticks if printed > followed_at]
    assert len(live) >= 5, "the run ended before the follower started"
    # Each line crossed from the running node to the follower within a second.
    assert max(at - printed for printed, at in live) < 1.0, live
    kind, end, ended_at = events[-1]
    assert kind == "end" and end["status"] == "succeeded"
    assert ended_at - ticks[-1][0] < 2.0


async def test_terminate_through_the_node_that_does_not_run_it(cluster: Cluster) -> None:
    async with cluster.a.client() as a:
        await a.create_function("job", files={"index.py": JOB}, async_run=True)
        rid = (await a.invoke("job", {"ticks": 200, "every_s": 0.2}))["request_id"]
        other = cluster.other(cluster.runner(await _first_line(a, rid)))
        async with other.client() as c:
            asked = time.monotonic()
            await c.terminate(rid)
            inv = await c.wait(rid, 8)
            # The signal crossed on the bus: the lease heartbeat would take lease_s / 3.
            assert time.monotonic() - asked < 5
    assert inv["status"] == "terminated", inv


async def test_a_killed_node_s_run_is_settled_by_the_other(cluster: Cluster, database: str) -> None:
    async with cluster.a.client() as a:
        await a.create_function("job", files={"index.py": JOB}, async_run=True)
        rid = (await a.invoke("job", {"ticks": 200, "every_s": 0.2}))["request_id"]
        doomed = cluster.runner(await _first_line(a, rid))
    survivor = cluster.other(doomed)
    doomed.kill9()
    async with survivor.client() as c:
        # The lease runs out LEASE_S after the last heartbeat; recovery looks every
        # LEASE_S / 2.
        inv = await c.wait(rid, 4 * LEASE_S)
        assert inv["status"] == "failed", inv
        assert inv["error"]["type"] == "InstanceLost"
        texts = [line["text"] for line in await c.logs(rid)]
        assert "failed: InstanceLost" in texts[-1]


def _at(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


async def test_max_concurrency_holds_across_the_nodes(cluster: Cluster) -> None:
    async with cluster.a.client() as a, cluster.b.client() as b:
        await a.create_function("job", files={"index.py": JOB}, async_run=True, max_concurrency=2)
        event = {"ticks": 6, "every_s": 0.25}  # about 1.5 s
        rids = [(await (a, b)[i % 2].invoke("job", event))["request_id"] for i in range(8)]
        most_running = 0
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            listed = await b.list_invocations("job", limit=100)
            statuses = [inv["status"] for inv in listed["items"]]
            assert statuses.count("running") <= 2, statuses
            most_running = max(most_running, statuses.count("running"))
            if statuses.count("succeeded") == len(rids):
                break
            await asyncio.sleep(0.05)
        done = [await a.wait(rid, 5) for rid in rids]
    assert [inv["status"] for inv in done] == ["succeeded"] * len(rids), done
    assert most_running == 2
    # The runs' own times agree: never three at once. Each time is taken a few ms away from
    # the store write that starts or ends the run, hence the slack.
    slack_s = 0.1
    edges = sorted(
        [(_at(inv["started_at"]) + slack_s, 1) for inv in done]
        + [(_at(inv["finished_at"]) - slack_s, -1) for inv in done]
    )
    at_once = 0
    for _, step in edges:
        at_once += step
        assert at_once <= 2, edges
