"""Fixtures for tests against real databases.

``store`` is an open ``SqlStore`` on each backend in turn: SQLite in ``tmp_path``, and
PostgreSQL at ``CUMULO_TEST_PG_URL`` (default ``postgresql+asyncpg://postgres@127.0.0.1:5432/
test``) in a schema of its own, dropped afterwards. When PostgreSQL cannot be reached the
postgres cases fail if ``CI`` is set and are skipped otherwise.

``store_factory`` opens more stores on the same database, for tests that need two stores
side by side; ``pg_store_factory`` does the same on PostgreSQL only.
"""

from __future__ import annotations

import functools
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from cumulo.store.sql import SqlStore

PG_URL = os.environ.get("CUMULO_TEST_PG_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")

StoreFactory = Callable[[], Awaitable[SqlStore]]


def _postgres_missing(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"PostgreSQL is required on CI: {reason}")
    pytest.skip(f"PostgreSQL not reachable at {PG_URL}: {reason}")


async def _new_pg_schema() -> AsyncIterator[str]:
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_async_engine(PG_URL)
    try:
        try:
            async with admin.begin() as conn:
                await conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
        except (OSError, TimeoutError, sa.exc.DBAPIError) as exc:
            _postgres_missing(str(exc))
        yield schema
        async with admin.begin() as conn:
            await conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
    finally:
        await admin.dispose()


async def _opening(make: Callable[[], SqlStore]) -> AsyncIterator[StoreFactory]:
    opened: list[SqlStore] = []

    async def factory() -> SqlStore:
        store = make()
        opened.append(store)
        await store.open()
        return store

    try:
        yield factory
    finally:
        for store in opened:
            await store.close()


@pytest.fixture
async def pg_store_factory() -> AsyncIterator[StoreFactory]:
    """Opens PostgreSQL stores that share one fresh schema (whatever the ``store`` backend);
    closes them and drops the schema after the test."""
    async for schema in _new_pg_schema():
        args = {"server_settings": {"search_path": schema}}
        async for factory in _opening(functools.partial(SqlStore, PG_URL, connect_args=args)):
            yield factory


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def store_factory(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[StoreFactory]:
    """Opens stores that share one database of the parametrised backend; closes them all."""
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'cumulo.db'}"
        async for factory in _opening(lambda: SqlStore(url)):
            yield factory
        return
    async for schema in _new_pg_schema():
        args = {"server_settings": {"search_path": schema}}
        async for factory in _opening(functools.partial(SqlStore, PG_URL, connect_args=args)):
            yield factory


@pytest.fixture
async def store(store_factory: StoreFactory) -> SqlStore:
    """An open store, on SQLite then on PostgreSQL."""
    return await store_factory()
