"""The real server on PostgreSQL (``--store postgresql://...``) runs the async-run life."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest
from cumulo_server import ServerProcess

pytestmark = pytest.mark.anyio

ADMIN_DSN = os.environ.get("CUMULO_TEST_PG_ADMIN", "postgresql://postgres@127.0.0.1:5432/test")
JOB = r"""
def main_handler(event, context):
    print("nul\x00byte", flush=True)
    for i in range(3):
        print("step", i, flush=True)
    return {"done": context.request_id}
"""


@pytest.fixture
async def database() -> AsyncIterator[str]:
    name = f"cumulo_t_{uuid.uuid4().hex[:10]}"
    try:
        admin = await asyncpg.connect(ADMIN_DSN)
    except (OSError, asyncpg.PostgresError) as exc:
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL is required on CI: {exc}")
        pytest.skip(f"PostgreSQL not reachable: {exc}")
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        yield f"postgresql://postgres@127.0.0.1:5432/{name}"
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


@pytest.fixture
def pg_server(tmp_path: Path, database: str) -> Iterator[ServerProcess]:
    srv = ServerProcess(tmp_path / "data", ["--store", database])
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


async def test_async_run_life_on_postgres(pg_server: ServerProcess) -> None:
    async with pg_server.client() as c:
        await c.create_function("pgjob", files={"index.py": JOB}, async_run=True)
        rid = (await c.invoke("pgjob"))["request_id"]
        events = [e async for e in c.follow_logs(rid)]
        texts = [d["text"] for k, d in events if k == "log"]
        # PostgreSQL takes no NUL in text: it is kept as U+FFFD, and nothing else suffers.
        assert texts == ["nul\ufffdbyte", "step 0", "step 1", "step 2"]
        assert events[-1][1]["status"] == "succeeded"
        inv = await c.get_invocation(rid)
        assert inv["result"] == {"done": rid}
        assert [i["request_id"] for i in (await c.list_invocations())["items"]] == [rid]
