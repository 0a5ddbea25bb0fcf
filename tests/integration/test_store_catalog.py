"""The store contract for versions, aliases, API keys, triggers, namespaces' descriptions and
the offset search of invocations (``cumulo.store.base``), run on SQLite and on PostgreSQL."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
from factories import make_function, make_invocation

from cumulo.engine import keys as keys_module
from cumulo.engine.keys import Keys
from cumulo.errors import Conflict, InvalidParameter, NamespaceNotFound, NotFound
from cumulo.models import (
    LATEST,
    Alias,
    ApiKey,
    Function,
    Invocation,
    InvocationFilter,
    InvocationOrder,
    InvocationType,
    Namespace,
    Status,
    Trigger,
)
from cumulo.secretbox import SecretBox
from cumulo.store.sql import SqlStore

pytestmark = pytest.mark.anyio

T0 = 1_700_000_000.0


def _alias(fn: Function, name: str, version: str, **kw: Any) -> Alias:
    values: dict[str, Any] = {"created_at": T0, "updated_at": T0, **kw}
    return Alias(function_id=fn.id, name=name, function_version=version, **values)


def _trigger(fn: Function, name: str, **kw: Any) -> Trigger:
    values: dict[str, Any] = {
        "type": "timer",
        "description": "0 */5 * * * * *",
        "created_at": T0,
        "updated_at": T0,
        **kw,
    }
    return Trigger(
        function_id=fn.id, namespace=fn.namespace, function_name=fn.name, name=name, **values
    )


# --- versions ---------------------------------------------------------------------------


async def test_snapshot_round_trip_equals_the_function(store: SqlStore) -> None:
    fn = await store.create_function(
        make_function(
            name="snap",
            handler="app.run",
            code_sha256="ab" * 32,
            code_size_bytes=1234,
            timeout_s=42.5,
            memory_mb=512,
            environment={"LEVEL": "debug", "NAME": "é ✓"},
            description="the first",
            max_concurrency=3,
            revision=7,
        )
    )
    published = await store.publish_version(fn, "v one", T0)
    assert published.version == 1
    assert published.function == dataclasses.replace(fn, version="1")
    assert published.description == "v one"
    assert published.created_at == T0
    assert await store.get_version(fn.id, 1) == published

    # Changing the function afterwards leaves the snapshot as it was.
    changed = dataclasses.replace(fn, environment={"LEVEL": "info"}, revision=8, timeout_s=1.0)
    await store.update_function(changed, fn.revision)
    assert await store.get_version(fn.id, 1) == published
    second = await store.publish_version(changed, "", T0 + 1)
    assert second.function == dataclasses.replace(changed, version="2")
    assert await store.list_versions(fn.id) == [published, second]


async def test_version_numbers_are_never_reused(store: SqlStore) -> None:
    fn = await store.create_function(make_function())
    other = await store.create_function(make_function())
    numbers = [(await store.publish_version(fn, "", T0)).version for _ in range(3)]
    assert numbers == [1, 2, 3]
    await store.delete_version(fn.id, 3)
    assert (await store.publish_version(fn, "", T0)).version == 4
    await store.delete_version(fn.id, 4)
    await store.delete_version(fn.id, 1)
    assert (await store.publish_version(fn, "", T0)).version == 5
    assert [v.version for v in await store.list_versions(fn.id)] == [2, 5]
    # Numbers are per function.
    assert (await store.publish_version(other, "", T0)).version == 1


async def test_deleted_and_unknown_versions(store: SqlStore) -> None:
    fn = await store.create_function(make_function())
    await store.publish_version(fn, "", T0)
    await store.delete_version(fn.id, 1)
    for number in (1, 2):
        with pytest.raises(NotFound) as info:
            await store.get_version(fn.id, number)
        assert info.value.code == "ResourceNotFound.Version"
        with pytest.raises(NotFound):
            await store.delete_version(fn.id, number)
    assert await store.list_versions(fn.id) == []
    assert await store.list_versions("no-such-function") == []


async def test_delete_version_refused_while_an_alias_uses_it(store: SqlStore) -> None:
    fn = await store.create_function(make_function())
    for _ in range(3):
        await store.publish_version(fn, "", T0)
    await store.create_alias(_alias(fn, "prod", "1", additional_weights={"2": 0.25}))
    for used in (1, 2):
        with pytest.raises(Conflict) as info:
            await store.delete_version(fn.id, used)
        assert info.value.code == "ResourceInUse.Alias"
        assert "prod" in info.value.message
    assert [v.version for v in await store.list_versions(fn.id)] == [1, 2, 3]
    await store.delete_version(fn.id, 3)  # no alias names it

    await store.update_alias(_alias(fn, "prod", "2", updated_at=T0 + 1))
    await store.delete_version(fn.id, 1)
    with pytest.raises(Conflict):
        await store.delete_version(fn.id, 2)
    await store.delete_alias(fn.id, "prod")
    await store.delete_version(fn.id, 2)
    assert await store.list_versions(fn.id) == []


async def test_an_alias_of_another_function_does_not_hold_a_version(store: SqlStore) -> None:
    fn, other = make_function(), make_function()
    await store.publish_version(fn, "", T0)
    await store.publish_version(other, "", T0)
    await store.create_alias(_alias(other, "prod", "1"))
    await store.delete_version(fn.id, 1)


# --- aliases ----------------------------------------------------------------------------


async def _publish(store: SqlStore, fn: Function, count: int) -> None:
    for _ in range(count):
        await store.publish_version(fn, "", T0)


async def test_alias_life_cycle(store: SqlStore) -> None:
    fn = make_function()
    await _publish(store, fn, 3)
    prod = _alias(fn, "prod", "1", additional_weights={"2": 0.1, "3": 0.25}, description="p")
    assert await store.create_alias(prod) == prod
    assert await store.get_alias(fn.id, "prod") == prod
    latest = await store.create_alias(_alias(fn, "beta", LATEST))
    assert await store.list_aliases(fn.id) == [latest, prod]  # by name

    moved = dataclasses.replace(
        prod,
        function_version="2",
        additional_weights={},
        description="moved",
        created_at=T0 + 99,  # not a column an update may change
        updated_at=T0 + 5,
    )
    updated = await store.update_alias(moved)
    assert updated == dataclasses.replace(moved, created_at=T0)
    assert await store.get_alias(fn.id, "prod") == updated

    await store.delete_alias(fn.id, "prod")
    assert await store.list_aliases(fn.id) == [latest]
    with pytest.raises(NotFound) as info:
        await store.get_alias(fn.id, "prod")
    assert info.value.code == "ResourceNotFound.Alias"


async def test_alias_conflicts_and_unknown_aliases(store: SqlStore) -> None:
    fn, other = make_function(), make_function()
    await _publish(store, fn, 2)
    await _publish(store, other, 3)
    await store.create_alias(_alias(fn, "prod", "1"))
    with pytest.raises(Conflict) as info:
        await store.create_alias(_alias(fn, "prod", "2"))
    assert info.value.code == "ResourceInUse.Alias"
    assert (await store.get_alias(fn.id, "prod")).function_version == "1"
    # The same name on another function is another alias.
    await store.create_alias(_alias(other, "prod", "3"))
    assert (await store.get_alias(other.id, "prod")).function_version == "3"

    with pytest.raises(NotFound):
        await store.get_alias(fn.id, "nope")
    with pytest.raises(NotFound):
        await store.update_alias(_alias(fn, "nope", "1"))
    with pytest.raises(NotFound):
        await store.delete_alias(fn.id, "nope")
    await store.delete_alias(fn.id, "prod")
    with pytest.raises(NotFound):
        await store.delete_alias(fn.id, "prod")
    assert await store.list_aliases(fn.id) == []
    assert [a.name for a in await store.list_aliases(other.id)] == ["prod"]


async def test_an_alias_cannot_route_to_a_deleted_version(store: SqlStore) -> None:
    """Checked inside the alias's own write: another node may delete a version between the
    engine's check and the write."""
    fn = make_function()
    await _publish(store, fn, 2)
    await store.delete_version(fn.id, 2)
    with pytest.raises(NotFound) as info:
        await store.create_alias(_alias(fn, "prod", "1", additional_weights={"2": 0.5}))
    assert info.value.code == "ResourceNotFound.Version"
    await store.create_alias(_alias(fn, "prod", "1"))
    with pytest.raises(NotFound):
        await store.update_alias(_alias(fn, "prod", "2"))


# --- API keys ---------------------------------------------------------------------------


async def test_keys_create_get_list_revoke(store: SqlStore) -> None:
    admin = ApiKey("AKIDadmin", "enc-1", None, "the admin", T0)
    team = ApiKey("AKIDteam", "enc-2", "team", "", T0 + 1)
    assert await store.create_key(team) == team
    assert await store.create_key(admin) == admin
    assert await store.get_key("AKIDteam") == team
    assert await store.get_key("AKIDnone") is None
    assert await store.list_keys() == [admin, team]  # oldest first

    revoked = await store.revoke_key("AKIDteam", T0 + 10)
    assert revoked == dataclasses.replace(team, revoked_at=T0 + 10)
    # Idempotent: a second revoke keeps the first time.
    assert await store.revoke_key("AKIDteam", T0 + 20) == revoked
    assert await store.get_key("AKIDteam") == revoked
    assert await store.list_keys() == [admin, revoked]
    with pytest.raises(NotFound) as info:
        await store.revoke_key("AKIDnone", T0)
    assert info.value.code == "ResourceNotFound.SecretId"
    assert await store.get_key("AKIDnone") is None


async def test_the_key_engine_on_the_store(
    store: SqlStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    keys = Keys(store, store, SecretBox.load_or_create(tmp_path / "secret.key"))
    new = await keys.create(None, "engine")
    assert new.key.secret_enc != new.secret_key
    assert (await store.get_key(new.key.secret_id)) == new.key
    found = await keys.lookup(new.key.secret_id)
    assert found is not None and found[1] == new.secret_key
    await keys.revoke(new.key.secret_id)
    assert await keys.lookup(new.key.secret_id) is None  # at once, despite the cache
    with pytest.raises(NamespaceNotFound):
        await keys.create("nowhere")

    # Made-up SecretIds cannot grow the cache without end.
    monkeypatch.setattr(keys_module, "CACHE_MAX_ENTRIES", 20)
    for n in range(50):
        assert await keys.lookup(f"AKIDmadeup{n}") is None
        assert len(keys._cache) <= 20
    live = await keys.create()
    assert (await keys.lookup(live.key.secret_id)) is not None


# --- triggers ---------------------------------------------------------------------------


async def test_trigger_life_cycle(store: SqlStore) -> None:
    fn, other = make_function(name="a"), make_function(name="b")
    nightly = await store.create_trigger(
        _trigger(fn, "nightly", qualifier="prod", custom_argument='{"k": 1}')
    )
    assert nightly.qualifier == "prod"
    hourly = await store.create_trigger(_trigger(fn, "hourly", created_at=T0 + 1))
    theirs = await store.create_trigger(_trigger(other, "nightly", type="cos", created_at=T0 + 2))
    assert await store.list_triggers() == [nightly, hourly, theirs]
    assert await store.list_triggers(fn.id) == [nightly, hourly]
    assert await store.list_triggers(type_="timer") == [nightly, hourly]
    assert await store.list_triggers(other.id, "timer") == []
    with pytest.raises(Conflict) as info:
        await store.create_trigger(_trigger(fn, "nightly"))
    assert info.value.code == "ResourceInUse.Trigger"

    changes: dict[str, Any] = {
        "enabled": False,
        "description": "0 0 * * * * *",
        "updated_at": T0 + 5,
    }
    updated = await store.update_trigger(fn.id, "nightly", changes)
    assert updated == dataclasses.replace(nightly, **changes)
    assert (await store.list_triggers(fn.id))[0] == updated
    with pytest.raises(NotFound) as missing:
        await store.update_trigger(fn.id, "nope", changes)
    assert missing.value.code == "ResourceNotFound.Trigger"

    await store.delete_trigger(fn.id, "nightly")
    assert await store.list_triggers(fn.id) == [hourly]
    with pytest.raises(NotFound):
        await store.delete_trigger(fn.id, "nightly")
    assert await store.list_triggers(other.id) == [theirs]


# --- what goes with a function ----------------------------------------------------------


async def test_delete_function_removes_versions_aliases_and_triggers(store: SqlStore) -> None:
    fn = await store.create_function(make_function(name="doomed"))
    kept = await store.create_function(make_function(name="kept"))
    for target in (fn, kept):
        await store.publish_version(target, "", T0)
        await store.create_alias(_alias(target, "prod", "1"))
        await store.create_trigger(_trigger(target, "nightly"))

    await store.delete_function("default", "doomed")
    assert await store.list_versions(fn.id) == []
    with pytest.raises(NotFound):
        await store.get_version(fn.id, 1)
    assert await store.list_aliases(fn.id) == []
    assert await store.list_triggers(fn.id) == []
    assert [t.function_name for t in await store.list_triggers()] == ["kept"]
    assert len(await store.list_versions(kept.id)) == 1
    assert len(await store.list_aliases(kept.id)) == 1

    # A new function of the same name starts afresh.
    again = await store.create_function(make_function(name="doomed"))
    assert (await store.publish_version(again, "", T0)).version == 1


# --- namespaces -------------------------------------------------------------------------


async def test_update_namespace(store: SqlStore) -> None:
    await store.create_namespace(Namespace("team", "before", T0))
    assert await store.update_namespace("team", "after ✓") == Namespace("team", "after ✓", T0)
    assert Namespace("team", "after ✓", T0) in await store.list_namespaces()
    assert (await store.update_namespace("default", "the default")).description == "the default"
    with pytest.raises(NamespaceNotFound):
        await store.update_namespace("nowhere", "x")


# --- the offset search of invocations ---------------------------------------------------


def _finished(fn: Function, n: int, status: Status, **kw: Any) -> Invocation:
    """A row created at ``T0 + n`` with request_id sorting as ``n``."""
    request_id = f"00000000-0000-4000-8000-{n:012d}"
    return make_invocation(fn, request_id=request_id, now=T0 + n, status=status, **kw)


@pytest.fixture
async def searched(store: SqlStore) -> dict[str, Invocation]:
    """Rows r1-r7 in ``default`` (r4 queued, r5 running, the rest ended) and one elsewhere."""
    alpha, beta = make_function(name="alpha"), make_function(name="beta")
    await store.create_namespace(Namespace("other"))
    value_error = {"type": "ValueError", "message": "bad", "traceback": "..."}
    rows = {
        "r1": _finished(alpha, 1, Status.SUCCEEDED, started_at=T0 + 2, finished_at=T0 + 5,
                        duration_ms=3000.0, peak_memory_mb=50.0, result='{"ok":1}'),
        "r2": _finished(alpha, 2, Status.FAILED, type=InvocationType.SYNC, started_at=T0 + 3,
                        finished_at=T0 + 4, duration_ms=1000.0, peak_memory_mb=80.0,
                        error=value_error, function_version="1"),
        "r3": _finished(beta, 3, Status.TIMED_OUT, started_at=T0 + 4, finished_at=T0 + 14,
                        duration_ms=10000.0, peak_memory_mb=20.0, dead_lettered=True,
                        error={"type": "Timeout", "message": "10 s"}, function_version="1"),
        "r4": _finished(beta, 4, Status.QUEUED),
        "r5": _finished(alpha, 5, Status.RUNNING, started_at=T0 + 6, peak_memory_mb=30.0,
                        function_version="2"),
        # Its message spells the ValueError pair: the error_type filter must not match it.
        "r7": _finished(alpha, 7, Status.FAILED, started_at=T0 + 7.5, finished_at=T0 + 8,
                        duration_ms=500.0, peak_memory_mb=10.0,
                        error={"type": "RuntimeError", "message": '{"type":"ValueError"}'}),
        "r6": _finished(make_function(name="alpha", namespace="other"), 6, Status.SUCCEEDED,
                        started_at=T0 + 6, finished_at=T0 + 7, duration_ms=1.0),
    }  # fmt: skip
    await store.enqueue(list(rows.values()))
    return rows


async def _search(store: SqlStore, ns: str = "default", **kw: Any) -> tuple[list[str], int]:
    options = {k: kw.pop(k) for k in ("order", "ascending", "offset", "limit") if k in kw}
    items, total = await store.search_invocations(InvocationFilter(namespace=ns, **kw), **options)
    names = {f"00000000-0000-4000-8000-{n:012d}": f"r{n}" for n in range(1, 8)}
    return [names[i.request_id] for i in items], total


async def test_search_filters(store: SqlStore, searched: dict[str, Invocation]) -> None:
    async def names(**kw: Any) -> list[str]:
        found, total = await _search(store, ascending=True, limit=100, **kw)
        assert total == len(found)
        return found

    assert await names() == ["r1", "r2", "r3", "r4", "r5", "r7"]
    assert await names(ns="other") == ["r6"]
    assert await names(ns="nowhere") == []
    assert await names(function_name="alpha") == ["r1", "r2", "r5", "r7"]
    assert await names(status=frozenset({Status.FAILED, Status.TIMED_OUT})) == ["r2", "r3", "r7"]
    assert await names(status=frozenset({Status.QUEUED, Status.RUNNING})) == ["r4", "r5"]
    assert await names(created_after=T0 + 2, created_before=T0 + 4) == ["r2", "r3"]
    assert await names(dead_lettered=True) == ["r3"]
    assert await names(dead_lettered=False, function_name="beta") == ["r4"]
    assert await names(request_id=searched["r5"].request_id) == ["r5"]
    assert await names(request_id=searched["r6"].request_id) == []  # another namespace
    assert await names(types=frozenset({InvocationType.SYNC})) == ["r2"]
    assert await names(types=frozenset(InvocationType)) == ["r1", "r2", "r3", "r4", "r5", "r7"]
    assert await names(function_version="1") == ["r2", "r3"]
    assert await names(function_version=LATEST) == ["r1", "r4", "r7"]
    # [start, end): a start at the end bound is out, one at the start bound is in.
    assert await names(started_between=(T0 + 3, T0 + 6)) == ["r2", "r3"]
    assert await names(finished_between=(T0 + 4, T0 + 14)) == ["r1", "r2", "r7"]
    assert await names(error_type="ValueError") == ["r2"]
    assert await names(error_type="Timeout") == ["r3"]
    assert await names(error_type="Value") == []
    assert await names(error_type="ValueError", function_name="beta") == []
    assert await names(
        function_name="alpha", status=frozenset({Status.FAILED}), finished_between=(T0, T0 + 5)
    ) == ["r2"]


async def test_search_error_type_is_an_exact_match(store: SqlStore) -> None:
    fn = make_function()
    kinds = ["Value_Error", "ValueXError", "ValueError", "ValueErrors", "100%"]
    rows = [
        _finished(fn, n, Status.FAILED, error={"type": kind, "message": ""})
        for n, kind in enumerate(kinds, 1)
    ]
    await store.enqueue(rows)
    for kind in kinds:
        found, _ = await _search(store, ascending=True, error_type=kind)
        assert found == [f"r{kinds.index(kind) + 1}"], kind
    assert await _search(store, error_type="100") == ([], 0)


async def test_search_error_type_is_case_sensitive(store: SqlStore) -> None:
    fn = make_function()
    rows = [
        _finished(fn, 1, Status.FAILED, error={"type": "valueerror", "message": ""}),
        _finished(fn, 2, Status.FAILED, error={"type": "ValueError", "message": ""}),
    ]
    await store.enqueue(rows)
    assert await _search(store, error_type="ValueError") == (["r2"], 1)
    assert await _search(store, error_type="valueerror") == (["r1"], 1)


def _reference_order(
    rows: list[Invocation], order: InvocationOrder, ascending: bool
) -> list[Invocation]:
    """The documented order: by the column, ties by request_id, rows without a value
    last (among themselves by request_id), all in the same direction."""
    have = [r for r in rows if getattr(r, order.value) is not None]
    lack = [r for r in rows if getattr(r, order.value) is None]
    have.sort(key=lambda r: (getattr(r, order.value), r.request_id), reverse=not ascending)
    lack.sort(key=lambda r: r.request_id, reverse=not ascending)
    return have + lack


@pytest.mark.parametrize("order", list(InvocationOrder))
@pytest.mark.parametrize("ascending", [True, False])
async def test_search_orders(
    store: SqlStore, searched: dict[str, Invocation], order: InvocationOrder, ascending: bool
) -> None:
    mine = [row for name, row in searched.items() if name != "r6"]
    expected = [r.request_id for r in _reference_order(mine, order, ascending)]
    items, total = await store.search_invocations(
        InvocationFilter(namespace="default"), order, ascending, 0, 100
    )
    assert [i.request_id for i in items] == expected
    assert total == 6


async def test_search_orders_spelt_out(store: SqlStore, searched: dict[str, Invocation]) -> None:
    started, finished = InvocationOrder.STARTED, InvocationOrder.FINISHED
    assert await _search(store) == (["r7", "r5", "r4", "r3", "r2", "r1"], 6)
    assert (await _search(store, order=started))[0] == ["r7", "r5", "r3", "r2", "r1", "r4"]
    assert (await _search(store, order=started, ascending=True))[0] == [
        "r1", "r2", "r3", "r5", "r7", "r4"
    ]  # fmt: skip
    assert (await _search(store, order=finished, ascending=True))[0] == [
        "r2", "r1", "r7", "r3", "r4", "r5"
    ]  # fmt: skip
    duration = InvocationOrder.DURATION
    assert (await _search(store, order=duration))[0] == ["r3", "r1", "r2", "r7", "r5", "r4"]
    memory = InvocationOrder.MEMORY
    assert (await _search(store, order=memory, ascending=True))[0] == [
        "r7", "r3", "r5", "r1", "r2", "r4"
    ]  # fmt: skip
    by_function = InvocationOrder.FUNCTION
    assert (await _search(store, order=by_function, ascending=True))[0] == [
        "r1", "r2", "r5", "r7", "r3", "r4"
    ]  # fmt: skip


async def test_search_offset_limit_and_total(
    store: SqlStore, searched: dict[str, Invocation]
) -> None:
    assert await _search(store, ascending=True, offset=0, limit=2) == (["r1", "r2"], 6)
    assert await _search(store, ascending=True, offset=2, limit=2) == (["r3", "r4"], 6)
    assert await _search(store, ascending=True, offset=4, limit=2) == (["r5", "r7"], 6)
    assert await _search(store, ascending=True, offset=5, limit=20) == (["r7"], 6)
    assert await _search(store, ascending=True, offset=6, limit=20) == ([], 6)
    assert await _search(store, offset=1, limit=1) == (["r5"], 6)
    alpha = await _search(store, function_name="alpha", offset=1, limit=2, ascending=True)
    assert alpha == (["r2", "r5"], 4)
    failed = frozenset({Status.FAILED})
    assert await _search(store, status=failed, offset=5, limit=1) == ([], 2)
    # Pages in a row cover every row once.
    seen: list[str] = []
    for offset in range(0, 6, 4):
        seen += (await _search(store, order=InvocationOrder.MEMORY, offset=offset, limit=4))[0]
    assert sorted(seen) == ["r1", "r2", "r3", "r4", "r5", "r7"]


async def test_search_bad_offset_and_limit(store: SqlStore) -> None:
    where = InvocationFilter(namespace="default")
    with pytest.raises(InvalidParameter):
        await store.search_invocations(where, offset=-1)
    with pytest.raises(InvalidParameter):
        await store.search_invocations(where, limit=0)
