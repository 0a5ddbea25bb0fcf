"""``QueueStore.claim`` with ``limits``: a function's ``max_concurrency`` counted over the rows
running on every node, on SQLite and on PostgreSQL."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Callable

import pytest
from factories import make_function, make_invocation

from cumulo.models import Function, Status
from cumulo.store.sql import SqlStore

pytestmark = pytest.mark.anyio

StoreFactory = Callable[[], Awaitable[SqlStore]]

T0 = 1_700_000_000.0


async def _queue(store: SqlStore, fn: Function, count: int) -> None:
    await store.enqueue([make_invocation(fn, now=T0 + i * 1e-3) for i in range(count)])


async def _running(store: SqlStore, fn: Function) -> int:
    counts = await store.count_by_status()
    return counts.get((fn.namespace, fn.name, "running"), 0)


async def test_a_function_at_its_limit_gets_no_rows(store: SqlStore) -> None:
    fn = make_function(max_concurrency=3)
    await _queue(store, fn, 5)
    assert len(await store.claim("elsewhere", 3, 30.0, T0 + 1)) == 3
    limits = {fn.id: 3}
    assert await store.claim("n1", 5, 30.0, T0 + 1, only_function_ids=[fn.id], limits=limits) == []
    assert await store.claim("n1", 5, 30.0, T0 + 1, limits=limits) == []
    # Without limits the claim does not count (and takes the rest).
    assert len(await store.claim("n1", 5, 30.0, T0 + 1, only_function_ids=[fn.id])) == 2


async def test_a_function_gets_its_limit_less_what_runs(store: SqlStore) -> None:
    fn = make_function(max_concurrency=3)
    await _queue(store, fn, 6)
    (first,) = await store.claim("elsewhere", 1, 30.0, T0 + 1)
    limits = {fn.id: 3}
    claimed = await store.claim("n1", 5, 30.0, T0 + 1, only_function_ids=[fn.id], limits=limits)
    assert len(claimed) == 2
    assert [i.created_at for i in claimed] == sorted(i.created_at for i in claimed)
    assert all(i.created_at > first.created_at for i in claimed)  # still oldest first
    assert await store.claim("n1", 5, 30.0, T0 + 1, limits=limits) == []
    # A finished run frees its place, on whichever node it ran.
    done = dataclasses.replace(first, status=Status.SUCCEEDED, finished_at=T0 + 2)
    assert await store.finish(done, "elsewhere")
    assert len(await store.claim("n1", 5, 30.0, T0 + 2, limits=limits)) == 1


async def test_limits_bound_only_the_functions_they_name(store: SqlStore) -> None:
    limited, free, left_out = make_function(), make_function(), make_function()
    for fn in (limited, free, left_out):
        await _queue(store, fn, 4)
    claimed = await store.claim(
        "n1",
        10,
        30.0,
        T0 + 1,
        exclude_function_ids=[left_out.id],
        limits={limited.id: 1, left_out.id: 1},
    )
    assert sorted(i.function_id for i in claimed) == sorted([limited.id] + [free.id] * 4)
    assert len(await store.claim("n1", 10, 30.0, T0 + 1, limits={limited.id: 1})) == 4
    # The limited function comes first when the claim cannot take everything.
    await _queue(store, limited, 1)
    more = await store.claim("n1", 1, 30.0, T0 + 1, limits={limited.id: 3})
    assert [i.function_id for i in more] == [limited.id]


@pytest.mark.postgres
async def test_claimers_on_two_nodes_never_exceed_the_limit_together(
    pg_store_factory: StoreFactory,
) -> None:
    a, b = await pg_store_factory(), await pg_store_factory()
    fn = make_function(max_concurrency=3)
    await _queue(a, fn, 60)
    limits = {fn.id: 3}

    async def claim(store: SqlStore, node: str) -> list[str]:
        claimed = await store.claim(node, 3, 30.0, T0 + 1, [], [fn.id], limits)
        return [i.request_id for i in claimed]

    running: list[str] = []
    for _ in range(5):
        # Four claimers per node, each on its own connection, all at once.
        results = await asyncio.gather(
            *(claim(a, f"a{k}") for k in range(4)), *(claim(b, f"b{k}") for k in range(4))
        )
        running += [rid for got in results for rid in got]
        assert len(running) == len(set(running)) == 3
        assert await _running(a, fn) == 3
        # One run ends; the next round may start exactly one.
        ended = await a.get_invocation("default", running.pop())
        done = dataclasses.replace(ended, status=Status.SUCCEEDED, finished_at=T0 + 2)
        assert await a.finish(done, ended.lease_owner or "")
