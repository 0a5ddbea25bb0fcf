"""The store contract (``cumulo.store.base``), run on SQLite and on PostgreSQL."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import sqlite3
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from factories import make_function, make_invocation, make_log_line

from cumulo.errors import (
    Conflict,
    FunctionChanged,
    FunctionExists,
    FunctionNotFound,
    InvalidParameter,
    InvocationNotFound,
    NamespaceExists,
    NamespaceNotFound,
    NotFound,
    StoreUnavailable,
)
from cumulo.models import Invocation, InvocationFilter, Namespace, Status, TerminateMode
from cumulo.store.base import Store
from cumulo.store.sql import SqlStore

pytestmark = pytest.mark.anyio

StoreFactory = Callable[[], Awaitable[SqlStore]]

T0 = 1_700_000_000.0


def test_sql_store_satisfies_the_protocol(tmp_path: object) -> None:
    store: Store = SqlStore(f"sqlite+aiosqlite:///{tmp_path}/x.db")
    assert store.exclusive


async def _running(store: SqlStore, node: str = "n1", now: float = T0, **kw: Any) -> Invocation:
    """One fresh invocation, claimed by ``node`` at ``now`` with a 30 s lease."""
    (inv,) = await store.enqueue([make_invocation(now=now - 1, **kw)])
    claimed = await store.claim(node, 1, lease_s=30.0, now=now)
    assert [c.request_id for c in claimed] == [inv.request_id]
    return claimed[0]


# --- namespaces -------------------------------------------------------------------------


async def test_default_namespace_exists(store: SqlStore) -> None:
    assert [ns.name for ns in await store.list_namespaces()] == ["default"]


async def test_namespaces_create_list_delete(store: SqlStore) -> None:
    team = Namespace(name="team", description="a team", created_at=T0)
    assert await store.create_namespace(team) == team
    await store.create_namespace(Namespace(name="alpha", created_at=T0))
    assert [ns.name for ns in await store.list_namespaces()] == ["alpha", "default", "team"]
    assert (await store.list_namespaces())[2] == team
    with pytest.raises(NamespaceExists):
        await store.create_namespace(Namespace(name="team"))
    await store.delete_namespace("alpha")
    assert [ns.name for ns in await store.list_namespaces()] == ["default", "team"]
    with pytest.raises(NamespaceNotFound):
        await store.delete_namespace("alpha")


async def test_delete_namespace_refuses_default_and_nonempty(store: SqlStore) -> None:
    with pytest.raises(InvalidParameter):
        await store.delete_namespace("default")
    await store.create_namespace(Namespace(name="team"))
    fn = await store.create_function(make_function(namespace="team"))
    with pytest.raises(InvalidParameter, match="holds"):
        await store.delete_namespace("team")
    await store.delete_function("team", fn.name)
    await store.delete_namespace("team")


# --- code and functions -----------------------------------------------------------------


async def test_code_packages(store: SqlStore) -> None:
    sha = "ab" * 32
    await store.save_code(sha, b"PK\x03\x04zip")
    await store.save_code(sha, b"PK\x03\x04zip")  # idempotent
    assert await store.load_code(sha) == b"PK\x03\x04zip"
    with pytest.raises(NotFound):
        await store.load_code("cd" * 32)


async def test_function_life_cycle(store: SqlStore) -> None:
    fn = make_function(name="resize", environment={"A": "1", "B": "é"}, max_concurrency=4)
    assert await store.create_function(fn) == fn
    assert await store.get_function("default", "resize") == fn
    await store.create_function(make_function(name="archive"))
    assert [f.name for f in await store.list_functions("default")] == ["archive", "resize"]
    assert await store.list_functions("nowhere") == []

    changed = dataclasses.replace(fn, timeout_s=60.0, revision=2, updated_at=T0 + 5)
    assert await store.update_function(changed, fn.revision) == changed
    assert await store.get_function("default", "resize") == changed
    # Fenced on the revision: a write that read the function before this one is refused.
    with pytest.raises(FunctionChanged):
        await store.update_function(dataclasses.replace(fn, timeout_s=5.0), fn.revision)
    assert await store.get_function("default", "resize") == changed

    await store.delete_function("default", "resize")
    with pytest.raises(FunctionNotFound):
        await store.get_function("default", "resize")


async def test_function_errors(store: SqlStore) -> None:
    fn = await store.create_function(make_function(name="f"))
    with pytest.raises(FunctionExists):
        await store.create_function(make_function(name="f"))
    with pytest.raises(NamespaceNotFound):
        await store.create_function(make_function(namespace="nowhere"))
    with pytest.raises(FunctionNotFound):
        await store.get_function("default", "g")
    with pytest.raises(FunctionNotFound):
        await store.update_function(make_function(name="g"), 1)
    with pytest.raises(FunctionNotFound):
        await store.delete_function("default", "g")
    other = await store.create_function(make_function(name="other"))
    with pytest.raises(FunctionExists):
        await store.update_function(dataclasses.replace(other, name=fn.name), other.revision)


async def test_deleting_a_function_keeps_its_invocations(store: SqlStore) -> None:
    fn = await store.create_function(make_function())
    (inv,) = await store.enqueue([make_invocation(fn)])
    await store.delete_function(fn.namespace, fn.name)
    assert await store.get_invocation(fn.namespace, inv.request_id) == inv


# --- enqueue and idempotency ------------------------------------------------------------


async def test_enqueue_stores_every_row(store: SqlStore) -> None:
    fn = make_function()
    # Larger than one multi-row VALUES can carry (PostgreSQL's 32,767 parameters).
    batch = [make_invocation(fn, event=f'{{"i": {i}}}') for i in range(1500)]
    assert await store.enqueue(batch) == batch
    keyed = [make_invocation(fn, idempotency_key=str(i)) for i in range(1500)]
    assert await store.enqueue(keyed) == keyed
    assert await store.enqueue([]) == []
    for inv in (batch[0], batch[-1]):
        assert await store.get_invocation("default", inv.request_id) == inv
    with pytest.raises(InvocationNotFound):
        await store.get_invocation("default", str(uuid.uuid4()))
    with pytest.raises(InvocationNotFound):
        await store.get_invocation("other", batch[0].request_id)


async def test_a_failing_enqueue_stores_none_of_its_rows(store: SqlStore) -> None:
    fn = make_function()
    # Larger than one multi-row INSERT: the duplicate request id fails a later statement.
    batch = [make_invocation(fn) for _ in range(1200)]
    batch.append(dataclasses.replace(make_invocation(fn), request_id=batch[0].request_id))
    with pytest.raises(Conflict):
        await store.enqueue(batch)
    for inv in (batch[0], batch[600], batch[1199]):
        with pytest.raises(InvocationNotFound):
            await store.get_invocation("default", inv.request_id)
    assert await store.count_by_status() == {}


async def test_idempotency_key_same_function_returns_the_first_row(store: SqlStore) -> None:
    fn = make_function()
    (first,) = await store.enqueue([make_invocation(fn, idempotency_key="k1")])
    again = make_invocation(fn, idempotency_key="k1", event='{"other": 1}')
    plain = make_invocation(fn)
    stored = await store.enqueue([plain, again])
    assert stored == [plain, first]
    page = await store.list_invocations(InvocationFilter(namespace="default"), 10, None)
    assert {i.request_id for i in page.items} == {first.request_id, plain.request_id}


async def test_idempotency_key_is_per_function(store: SqlStore) -> None:
    a, b = make_function(), make_function()
    stored = await store.enqueue(
        [make_invocation(a, idempotency_key="k"), make_invocation(b, idempotency_key="k")]
    )
    assert stored[0].request_id != stored[1].request_id
    counts = await store.count_by_status()
    assert counts[("default", a.name, "queued")] == 1
    assert counts[("default", b.name, "queued")] == 1


async def test_idempotency_key_within_one_batch(store: SqlStore) -> None:
    fn = make_function()
    batch = [make_invocation(fn, idempotency_key=f"k{i % 3}") for i in range(9)]
    stored = await store.enqueue(batch)
    assert [s.request_id for s in stored] == [batch[i % 3].request_id for i in range(9)]
    assert stored[:3] == batch[:3]
    assert sum((await store.count_by_status()).values()) == 3
    # The same keys again, mixed with a new one: the earlier rows come back.
    fresh = make_invocation(fn, idempotency_key="k9")
    again = await store.enqueue([make_invocation(fn, idempotency_key="k1"), fresh, batch[0]])
    assert again == [batch[1], fresh, batch[0]]
    assert sum((await store.count_by_status()).values()) == 4


# --- claim, heartbeat, finish, recovery -------------------------------------------------


async def test_claim_oldest_due_first(store: SqlStore) -> None:
    fn = make_function()
    old, mid, new = (make_invocation(fn, now=T0 + i) for i in range(3))
    later = make_invocation(fn, now=T0, run_after=T0 + 100)
    await store.enqueue([new, later, old, mid])

    first = await store.claim("n1", 2, lease_s=30.0, now=T0 + 10)
    assert [i.request_id for i in first] == [old.request_id, mid.request_id]
    got = first[0]
    assert got.status is Status.RUNNING
    assert got.lease_owner == "n1"
    assert got.lease_expires_at == T0 + 40
    assert got.attempt == 1
    assert got.started_at == T0 + 10
    assert await store.get_invocation("default", old.request_id) == got

    assert [i.request_id for i in await store.claim("n2", 5, 30.0, T0 + 10)] == [new.request_id]
    assert await store.claim("n2", 5, 30.0, T0 + 99) == []
    assert [i.request_id for i in await store.claim("n2", 5, 30.0, T0 + 100)] == [later.request_id]
    assert await store.claim("n2", 0, 30.0, T0 + 100) == []


async def test_claim_excludes_functions(store: SqlStore) -> None:
    busy, free = make_function(), make_function()
    await store.enqueue([make_invocation(busy, now=T0), make_invocation(free, now=T0 + 1)])
    claimed = await store.claim("n1", 10, 30.0, T0 + 5, exclude_function_ids=[busy.id])
    assert [i.function_id for i in claimed] == [free.id]


async def test_claim_only_some_functions(store: SqlStore) -> None:
    a, b, c = make_function(), make_function(), make_function()
    await store.enqueue([make_invocation(fn, now=T0 + i) for i, fn in enumerate((a, b, c, a))])
    assert await store.claim("n1", 10, 30.0, T0 + 5, only_function_ids=[]) == []
    claimed = await store.claim("n1", 10, 30.0, T0 + 5, only_function_ids=[a.id, c.id])
    assert [i.function_id for i in claimed] == [a.id, c.id, a.id]
    both = await store.claim("n1", 10, 30.0, T0 + 5, [b.id], only_function_ids=[b.id])
    assert both == []
    assert [i.function_id for i in await store.claim("n1", 10, 30.0, T0 + 5)] == [b.id]


async def test_claim_one_function_breaks_ties_by_created_at_then_request_id(
    store: SqlStore,
) -> None:
    fn = make_function()
    same = [make_invocation(fn, now=T0) for _ in range(5)]
    younger = make_invocation(fn, now=T0 - 1, run_after=T0)  # created earlier, same run_after
    await store.enqueue([*same, younger, make_invocation(make_function(), now=T0 - 5)])
    claimed = await store.claim("n1", 4, 30.0, T0 + 1, only_function_ids=[fn.id])
    expected = [younger, *sorted(same, key=lambda i: i.request_id)][:4]
    assert [i.request_id for i in claimed] == [i.request_id for i in expected]


async def test_queued_function_ids(store: SqlStore) -> None:
    due, later, running, done, gone, idle = (make_function() for _ in range(6))
    await store.enqueue(
        [
            make_invocation(due, now=T0),
            make_invocation(due, now=T0 + 1),
            make_invocation(later, now=T0, run_after=T0 + 100),
            make_invocation(running, now=T0 - 1),
            make_invocation(done, now=T0 - 2),
            make_invocation(gone, now=T0),
        ]
    )
    assert await store.queued_function_ids(T0 - 100) == []
    finished, _ = await store.claim("n1", 2, 30.0, T0, only_function_ids=[done.id, running.id])
    assert finished.function_id == done.id
    assert await store.finish(
        dataclasses.replace(finished, status=Status.SUCCEEDED, finished_at=T0), "n1"
    )
    # A deleted function's rows stay until purged, and still need a dispatcher.
    await store.create_function(gone)
    await store.delete_function(gone.namespace, gone.name)
    assert await store.queued_function_ids(T0) == sorted([due.id, gone.id])
    assert await store.queued_function_ids(T0 + 100) == sorted([due.id, gone.id, later.id])
    assert idle.id not in await store.queued_function_ids(T0 + 100)


async def test_per_function_claims_stay_cheap_with_a_deep_queue(store: SqlStore) -> None:
    """20,000 queued rows: a function whose 10,000 rows are all due before any row of the
    other; claims of either take the oldest rows of that function without walking the
    other's. Timings are printed (``pytest -s``); the bound is only against a scan per
    claim gone quadratic."""
    old, new = make_function(), make_function()
    rows: dict[str, list[Invocation]] = {old.id: [], new.id: []}
    for base, fn in ((T0, old), (T0 + 100, new)):
        for start in range(0, 10_000, 2_500):
            batch = [make_invocation(fn, now=base + (start + i) * 1e-3) for i in range(2_500)]
            rows[fn.id] += await store.enqueue(batch)

    timings_ms: dict[str, float] = {}

    async def timed(name: str, call: Awaitable[Any]) -> Any:
        started = time.perf_counter()
        result = await call
        timings_ms[name] = round((time.perf_counter() - started) * 1e3, 2)
        return result

    now = T0 + 1_000
    assert await timed("queued_function_ids", store.queued_function_ids(now)) == sorted(rows)
    for round_ in range(3):
        for fn in (new, old):
            claimed = await timed(
                f"claim 2 of {'new' if fn is new else 'old'} #{round_}",
                store.claim("n1", 2, 30.0, now, only_function_ids=[fn.id]),
            )
            expected = rows[fn.id][2 * round_ : 2 * round_ + 2]
            assert [i.request_id for i in claimed] == [i.request_id for i in expected]
            assert all(i.function_id == fn.id for i in claimed)
    everything = await timed("claim 100 of all", store.claim("n1", 100, 30.0, now))
    assert [i.request_id for i in everything] == [i.request_id for i in rows[old.id][6:106]]
    backend = "sqlite" if store.exclusive else "postgres"
    print(f"\n{backend} with 20,000 queued rows, ms: {timings_ms}")
    assert max(timings_ms.values()) < 1_000, timings_ms


async def test_heartbeat_extends_only_owned_running_leases(store: SqlStore) -> None:
    mine = await _running(store, "n1")
    theirs = await _running(store, "n2")
    (queued,) = await store.enqueue([make_invocation()])
    ids = [mine.request_id, theirs.request_id, queued.request_id]
    assert await store.heartbeat("n1", ids, lease_s=60.0, now=T0 + 20) == {mine.request_id}
    assert (await store.get_invocation("default", mine.request_id)).lease_expires_at == T0 + 80
    assert (await store.get_invocation("default", theirs.request_id)).lease_expires_at == T0 + 30
    assert await store.heartbeat("n1", [], 60.0, T0) == set()


async def test_finish_is_fenced_on_the_lease(store: SqlStore) -> None:
    inv = await _running(store, "n1")
    done = dataclasses.replace(
        inv,
        status=Status.SUCCEEDED,
        result='{"ok": true}',
        finished_at=T0 + 2,
        duration_ms=2000.5,
        billed_duration_ms=2001,
        peak_memory_mb=42.5,
    )
    assert not await store.finish(done, "n2")
    assert (await store.get_invocation("default", inv.request_id)).status is Status.RUNNING
    assert await store.finish(done, "n1")
    assert await store.get_invocation("default", inv.request_id) == done
    assert not await store.finish(done, "n1")  # no longer running


async def test_finish_with_retry_requeues_and_clears_the_lease(store: SqlStore) -> None:
    inv = await _running(store, "n1")
    retry = dataclasses.replace(
        inv,
        status=Status.QUEUED,
        run_after=T0 + 60,
        error={"type": "ValueError", "message": "boom", "traceback": "..."},
    )
    assert await store.finish(retry, "n1")
    stored = await store.get_invocation("default", inv.request_id)
    assert stored.status is Status.QUEUED
    assert (stored.lease_owner, stored.lease_expires_at) == (None, None)
    assert stored.error == {"type": "ValueError", "message": "boom", "traceback": "..."}
    assert await store.claim("n2", 1, 30.0, T0 + 59) == []
    (again,) = await store.claim("n2", 1, 30.0, T0 + 60)
    assert (again.attempt, again.lease_owner) == (2, "n2")


async def test_an_old_attempt_cannot_finish_over_a_new_one(store: SqlStore) -> None:
    first = await _running(store, "n1")
    retry = dataclasses.replace(first, status=Status.QUEUED, run_after=T0)
    assert await store.finish(retry, "n1")
    (second,) = await store.claim("n1", 1, 30.0, T0 + 1)  # the same node claims the retry
    assert second.attempt == first.attempt + 1
    stale = dataclasses.replace(first, status=Status.SUCCEEDED, result="1", finished_at=T0 + 2)
    assert not await store.finish(stale, "n1")
    assert (await store.get_invocation("default", first.request_id)).status is Status.RUNNING
    done = dataclasses.replace(second, status=Status.SUCCEEDED, result="2", finished_at=T0 + 3)
    assert await store.finish(done, "n1")
    assert (await store.get_invocation("default", first.request_id)).result == "2"


async def test_expired_lease_and_recovery(store: SqlStore) -> None:
    inv = await _running(store, "n1", now=T0)  # lease until T0 + 30
    kept = await _running(store, "n2", now=T0)
    assert await store.heartbeat("n2", [kept.request_id], 30.0, T0 + 25) == {kept.request_id}
    assert await store.expired(T0 + 30) == []
    lost = await store.expired(T0 + 31)
    assert [i.request_id for i in lost] == [inv.request_id]

    failed = dataclasses.replace(
        lost[0],
        status=Status.FAILED,
        finished_at=T0 + 31,
        error={"type": "InstanceLost", "message": "node n1 went away", "traceback": ""},
    )
    assert not await store.recover(failed, expected_owner="n2")
    assert await store.recover(failed, expected_owner="n1")
    # The first owner comes back too late: its write is fenced off.
    assert not await store.finish(dataclasses.replace(inv, status=Status.SUCCEEDED), "n1")
    stored = await store.get_invocation("default", inv.request_id)
    assert stored.status is Status.FAILED
    assert stored.error is not None and stored.error["type"] == "InstanceLost"
    assert await store.expired(T0 + 31) == []
    assert await store.heartbeat("n1", [inv.request_id], 30.0, T0 + 32) == set()


# --- terminate --------------------------------------------------------------------------


async def test_terminate_a_queued_invocation(store: SqlStore) -> None:
    (inv,) = await store.enqueue([make_invocation(now=T0)])
    stopped = await store.request_terminate("default", inv.request_id, TerminateMode.FORCE, T0 + 1)
    assert (stopped.status, stopped.finished_at) == (Status.TERMINATED, T0 + 1)
    again = await store.request_terminate("default", inv.request_id, TerminateMode.FORCE, T0 + 9)
    assert again == stopped
    assert await store.claim("n1", 10, 30.0, T0 + 10) == []


async def test_terminate_a_running_invocation_marks_it(store: SqlStore) -> None:
    inv = await _running(store, "n1")
    marked = await store.request_terminate("default", inv.request_id, TerminateMode.GRACEFUL, T0)
    assert (marked.status, marked.terminate_mode) == (Status.RUNNING, TerminateMode.GRACEFUL)
    forced = await store.request_terminate("default", inv.request_id, TerminateMode.FORCE, T0)
    assert forced.terminate_mode is TerminateMode.FORCE
    still = await store.request_terminate("default", inv.request_id, TerminateMode.GRACEFUL, T0)
    assert still.terminate_mode is TerminateMode.FORCE

    # The dispatcher's copy predates the request; finishing must not clear the mark.
    ended = dataclasses.replace(inv, status=Status.TERMINATED, finished_at=T0 + 1)
    assert await store.finish(ended, "n1")
    stored = await store.get_invocation("default", inv.request_id)
    assert (stored.status, stored.terminate_mode) == (Status.TERMINATED, TerminateMode.FORCE)


async def test_terminate_a_finished_invocation_changes_nothing(store: SqlStore) -> None:
    inv = await _running(store, "n1")
    done = dataclasses.replace(inv, status=Status.SUCCEEDED, result="1", finished_at=T0 + 1)
    assert await store.finish(done, "n1")
    assert (
        await store.request_terminate("default", inv.request_id, TerminateMode.FORCE, T0 + 5)
        == done
    )
    with pytest.raises(InvocationNotFound):
        await store.request_terminate("default", str(uuid.uuid4()), TerminateMode.FORCE, T0)
    with pytest.raises(InvocationNotFound):
        await store.request_terminate("other", inv.request_id, TerminateMode.FORCE, T0)


# --- listing ----------------------------------------------------------------------------


async def test_pagination_has_no_duplicates_and_no_gaps(store: SqlStore) -> None:
    fn = make_function()
    # Several rows share a created_at, so request_id must break the ties.
    batch = [make_invocation(fn, now=T0 + i // 3) for i in range(25)]
    await store.enqueue(batch)
    expected = sorted(batch, key=lambda i: (i.created_at, i.request_id), reverse=True)

    where = InvocationFilter(namespace="default")
    seen: list[Invocation] = []
    cursor: str | None = None
    sizes = []
    while True:
        page = await store.list_invocations(where, 10, cursor)
        sizes.append(len(page.items))
        seen.extend(page.items)
        cursor = page.next_cursor
        if cursor is None:
            break
    assert sizes == [10, 10, 5]
    assert seen == expected


async def test_exact_last_page_has_no_cursor(store: SqlStore) -> None:
    await store.enqueue([make_invocation() for _ in range(10)])
    page = await store.list_invocations(InvocationFilter(namespace="default"), 10, None)
    assert (len(page.items), page.next_cursor) == (10, None)


@pytest.mark.parametrize(
    "cursor",
    [
        "not base64!",
        base64.urlsafe_b64encode(b"not json").decode(),
        base64.urlsafe_b64encode(b'{"a": 1}').decode(),
        base64.urlsafe_b64encode(b'["x", "y"]').decode(),
    ],
)
async def test_bad_cursor(store: SqlStore, cursor: str) -> None:
    with pytest.raises(InvalidParameter) as caught:
        await store.list_invocations(InvocationFilter(namespace="default"), 10, cursor)
    assert caught.value.field == "cursor"


async def test_bad_limit(store: SqlStore) -> None:
    with pytest.raises(InvalidParameter):
        await store.list_invocations(InvocationFilter(namespace="default"), 0, None)


async def test_list_filters(store: SqlStore) -> None:
    a, b = make_function(name="a"), make_function(name="b")
    await store.create_namespace(Namespace(name="elsewhere"))
    rows = [make_invocation(a, now=T0 + i) for i in range(4)]
    rows += [make_invocation(b, now=T0 + 10), make_invocation(b, now=T0 + 11)]
    rows.append(make_invocation(make_function(namespace="elsewhere"), now=T0 + 50))
    await store.enqueue(rows)
    # a: rows[0] failed and dead-lettered, rows[1] succeeded, rows[2] running, rows[3] queued.
    r0, r1 = await store.claim("n1", 2, 30.0, T0 + 1)
    await store.finish(
        dataclasses.replace(r0, status=Status.FAILED, dead_lettered=True, finished_at=T0 + 2), "n1"
    )
    await store.finish(dataclasses.replace(r1, status=Status.SUCCEEDED, finished_at=T0 + 2), "n1")
    await store.claim("n1", 1, 30.0, T0 + 2)

    async def ids(**kw: object) -> list[str]:
        where = InvocationFilter(namespace="default", **kw)  # type: ignore[arg-type]
        return [i.request_id for i in (await store.list_invocations(where, 100, None)).items]

    def rid(*indexes: int) -> list[str]:
        return [rows[i].request_id for i in indexes]

    assert await ids() == rid(5, 4, 3, 2, 1, 0)
    assert await ids(function_name="a") == rid(3, 2, 1, 0)
    assert await ids(status=frozenset({Status.SUCCEEDED, Status.FAILED})) == rid(1, 0)
    assert await ids(status=frozenset({Status.RUNNING}), function_name="a") == rid(2)
    assert await ids(created_after=T0 + 1, created_before=T0 + 10) == rid(3, 2, 1)
    assert await ids(dead_lettered=True) == rid(0)
    assert await ids(dead_lettered=False, function_name="a") == rid(3, 2, 1)
    assert await ids(function_name="nope") == []


async def test_count_by_status(store: SqlStore) -> None:
    a, b = make_function(name="a"), make_function(name="b")
    await store.enqueue([make_invocation(a, now=T0), make_invocation(a), make_invocation(b)])
    await store.claim("n1", 1, 30.0, T0 + 1)
    assert await store.count_by_status() == {
        ("default", "a", "running"): 1,
        ("default", "a", "queued"): 1,
        ("default", "b", "queued"): 1,
    }


# --- logs and purge ---------------------------------------------------------------------


async def test_logs_in_order_and_duplicates_ignored(store: SqlStore) -> None:
    rid = str(uuid.uuid4())
    await store.append_logs([make_log_line(rid, 2), make_log_line(rid, 1)])
    await store.append_logs([make_log_line(rid, 2, "again"), make_log_line(rid, 3, "three")])
    await store.append_logs([])
    await store.append_logs([make_log_line(str(uuid.uuid4()), 1)])
    lines = await store.read_logs(rid)
    assert [(line.seq, line.text) for line in lines] == [(1, "line 1"), (2, "line 2"), (3, "three")]
    assert [line.seq for line in await store.read_logs(rid, after_seq=1)] == [2, 3]
    assert [line.seq for line in await store.read_logs(rid, after_seq=1, limit=1)] == [2]
    assert await store.read_logs(rid, after_seq=3) == []


async def test_many_log_lines_in_one_call(store: SqlStore) -> None:
    rid = str(uuid.uuid4())
    lines = [make_log_line(rid, seq) for seq in range(1, 2501)]
    lines.insert(1000, make_log_line(rid, 5, "again, in the same call"))
    await store.append_logs(lines)
    stored = await store.read_logs(rid)
    assert [line.seq for line in stored] == list(range(1, 2501))
    assert stored[4].text == "line 5"


async def test_purge_removes_old_terminal_rows_and_their_logs(store: SqlStore) -> None:
    fn = make_function()
    await store.enqueue([make_invocation(fn, now=T0 + i) for i in range(4)])
    old, recent, running = await store.claim("n1", 3, 30.0, T0 + 5)
    await store.finish(dataclasses.replace(old, status=Status.FAILED, finished_at=T0 + 6), "n1")
    await store.finish(
        dataclasses.replace(recent, status=Status.SUCCEEDED, finished_at=T0 + 20), "n1"
    )
    for inv in (old, recent, running):
        await store.append_logs(
            [make_log_line(inv.request_id, 1), make_log_line(inv.request_id, 2)]
        )

    assert await store.purge(finished_before=T0 + 10) == 1
    with pytest.raises(InvocationNotFound):
        await store.get_invocation("default", old.request_id)
    assert await store.read_logs(old.request_id) == []
    assert len(await store.read_logs(recent.request_id)) == 2
    assert len(await store.read_logs(running.request_id)) == 2
    assert sum((await store.count_by_status()).values()) == 3
    assert await store.purge(finished_before=T0 + 10) == 0


# --- migrations and concurrency ---------------------------------------------------------


async def test_reopening_an_existing_database_is_a_no_op(store_factory: StoreFactory) -> None:
    first = await store_factory()
    fn = await first.create_function(make_function())
    (inv,) = await first.enqueue([make_invocation(fn)])
    await first.open()  # again, on the same store
    second = await store_factory()
    assert [ns.name for ns in await second.list_namespaces()] == ["default"]
    assert await second.get_function("default", fn.name) == fn
    assert await second.get_invocation("default", inv.request_id) == inv


async def test_concurrent_writers_do_not_fail(store: SqlStore) -> None:
    fn = make_function()

    async def writer(i: int) -> None:
        await store.enqueue([make_invocation(fn) for _ in range(5)])
        await store.append_logs([make_log_line(f"r{i}", seq) for seq in range(1, 6)])
        await store.claim(f"n{i}", 2, 30.0, time.time() + 1)

    await asyncio.gather(*(writer(i) for i in range(40)))
    counts = await store.count_by_status()
    assert sum(counts.values()) == 200
    assert counts[("default", fn.name, "running")] == 80


@pytest.mark.postgres
async def test_two_nodes_never_claim_the_same_row(pg_store_factory: StoreFactory) -> None:
    a, b = await pg_store_factory(), await pg_store_factory()
    fn = make_function()
    await a.enqueue([make_invocation(fn, now=T0 + i * 1e-3) for i in range(600)])

    async def drain(store: SqlStore, node: str) -> list[str]:
        got: list[str] = []
        while claimed := await store.claim(node, 7, 30.0, T0 + 10):
            got.extend(i.request_id for i in claimed)
        return got

    # Three claimers per node, each on its own connection, all at once.
    results = await asyncio.gather(
        *(drain(a, f"a{k}") for k in range(3)), *(drain(b, f"b{k}") for k in range(3))
    )
    claimed = [rid for got in results for rid in got]
    assert len(claimed) == len(set(claimed)) == 600
    assert any(results[:3]) and any(results[3:]), "both nodes should have won rows"


# --- writes that share a transaction, and close ---------------------------------------


@contextlib.asynccontextmanager
async def _writes_pile_up(store: SqlStore, tmp_path: Path) -> AsyncIterator[None]:
    """On SQLite, hold the database's write lock from outside while the body starts its
    writes, so that they pile up and then commit in one transaction; the lock is let go on
    leaving. On PostgreSQL (a transaction per write) nothing is held."""
    if not store.exclusive:
        yield
        return
    # conftest's SQLite database; another connection, as another process would have.
    outside = sqlite3.connect(tmp_path / "cumulo.db", isolation_level=None)
    try:
        outside.execute("BEGIN IMMEDIATE")
        # The first write now waits for the lock; those after it pile up behind it.
        stuck = asyncio.create_task(store.append_logs([make_log_line("gate", 1)]))
        await asyncio.sleep(0.05)
        yield
        await asyncio.sleep(0.05)
        outside.execute("ROLLBACK")
        await stuck
    finally:
        outside.close()


async def test_a_failing_write_leaves_the_writes_beside_it_alone(
    store: SqlStore, tmp_path: Path
) -> None:
    fn = await store.create_function(make_function(name="taken"))
    first, second = make_invocation(fn), make_invocation(fn)
    async with _writes_pile_up(store, tmp_path):
        writes = asyncio.gather(
            store.enqueue([first]),
            store.create_function(make_function(name="taken")),
            store.create_namespace(Namespace(name="team", created_at=T0)),
            store.create_namespace(Namespace(name="team", created_at=T0)),
            store.enqueue([second]),
            return_exceptions=True,
        )
    results = await writes
    assert results[0] == [first]
    assert isinstance(results[1], FunctionExists)
    assert sorted(type(r).__name__ for r in results[2:4]) == ["Namespace", "NamespaceExists"]
    assert results[4] == [second]
    assert await store.get_invocation("default", first.request_id) == first
    assert await store.get_invocation("default", second.request_id) == second
    assert [ns.name for ns in await store.list_namespaces()] == ["default", "team"]
    assert await store.list_functions("default") == [fn]


async def test_close_commits_the_writes_asked_for_then_refuses(
    store_factory: StoreFactory,
) -> None:
    store = await store_factory()
    fn = make_function()
    batches = [[make_invocation(fn)] for _ in range(20)]
    writes = [asyncio.create_task(store.enqueue(batch)) for batch in batches]
    await asyncio.sleep(0)  # every write has now been handed to the store
    await store.close()
    assert all(write.done() for write in writes), "close returned before the writes ended"
    assert await asyncio.gather(*writes) == batches
    with pytest.raises(StoreUnavailable):
        await store.enqueue([make_invocation(fn)])
    with pytest.raises(StoreUnavailable):
        await store.get_invocation("default", batches[0][0].request_id)
    await store.close()  # again: a no-op

    reopened = await store_factory()
    for (inv,) in batches:
        assert await reopened.get_invocation("default", inv.request_id) == inv
