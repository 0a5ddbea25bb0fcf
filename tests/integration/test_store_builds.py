"""Store contract for builds, installed environments and layer versions, on SQLite and
PostgreSQL: the build-once lock of an environment (also between two stores on one database,
as two nodes), fenced build writes, the sweep of unused environments, layer numbers and
layers in use."""

from __future__ import annotations

import asyncio
import dataclasses
import time
import uuid

import pytest
from factories import make_function, make_invocation

from cumulo.errors import Conflict, NotFound
from cumulo.models import (
    Build,
    BuildStatus,
    BuildTarget,
    Environment,
    EnvironmentStatus,
    FunctionState,
    LayerRef,
    LayerVersion,
    Status,
)
from cumulo.store.sql import SqlStore

pytestmark = pytest.mark.anyio
T0 = 1_700_000_000.0


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def make_env(key: str | None = None) -> Environment:
    return Environment(
        key=key or uuid.uuid4().hex,
        requirements="numpy==2.2.6\n",
        interpreter="cpython-3.11",
        status=EnvironmentStatus.BUILDING,
        created_at=T0,
    )


def make_build(function_id: str | None, node: str = "n1", **overrides: object) -> Build:
    build = Build(
        id=str(uuid.uuid4()),
        status=BuildStatus.BUILDING,
        target=BuildTarget("ab" * 32, 10, "index.main_handler"),
        created_at=T0,
        function_id=function_id,
        namespace="default",
        function_name="f",
        node_id=node,
        lease_expires_at=T0 + 30,
    )
    return dataclasses.replace(build, **overrides)  # type: ignore[arg-type]


def make_layer(name: str = "shared") -> LayerVersion:
    return LayerVersion(
        name=name,
        version=0,
        code_sha256="cd" * 32,
        code_size_bytes=100,
        unpacked_bytes=1000,
        created_at=T0,
        compatible_runtimes=("Python3.11",),
    )


async def test_an_environment_is_claimed_by_one_node(store_factory) -> None:  # type: ignore[no-untyped-def]
    a: SqlStore = await store_factory()
    b: SqlStore = await store_factory()
    env = make_env()
    first, second = await asyncio.gather(
        a.claim_environment(env, "node-a", T0, T0 + 30),
        b.claim_environment(env, "node-b", T0, T0 + 30),
    )
    assert first.builder == second.builder
    holder, store = ("node-a", a) if first.builder == "node-a" else ("node-b", b)
    other = "node-b" if holder == "node-a" else "node-a"
    # The other node may not finish it; the holder does.
    ready = dataclasses.replace(env, status=EnvironmentStatus.READY, size_bytes=42,
                                packages=(("numpy", "2.2.6"),), build_ms=12.5)  # fmt: skip
    assert not await store.finish_environment(ready, other)
    assert await store.finish_environment(ready, holder)
    got = await a.get_environment(env.key)
    assert got is not None
    assert (got.status, got.size_bytes, got.packages, got.builder) == (
        EnvironmentStatus.READY, 42, (("numpy", "2.2.6"),), None,
    )  # fmt: skip
    # A ready environment is handed out as it is.
    again = await b.claim_environment(env, other, T0 + 1, T0 + 31)
    assert again.status is EnvironmentStatus.READY


async def test_a_stale_or_failed_environment_claim_is_taken_over(store: SqlStore) -> None:
    env = make_env()
    await store.claim_environment(env, "dead", T0, T0 + 30)
    still = await store.claim_environment(env, "alive", T0 + 10, T0 + 40)
    assert still.builder == "dead"  # the lease holds
    taken = await store.claim_environment(env, "alive", T0 + 31, T0 + 61)
    assert (taken.builder, taken.status) == ("alive", EnvironmentStatus.BUILDING)
    failed = dataclasses.replace(taken, status=EnvironmentStatus.FAILED, error="boom")
    assert await store.finish_environment(failed, "alive")
    retried = await store.claim_environment(env, "third", T0 + 62, T0 + 92)
    assert (retried.builder, retried.status, retried.error) == (
        "third", EnvironmentStatus.BUILDING, ""
    )  # fmt: skip
    assert await store.renew_environment(env.key, "third", T0 + 200)
    assert not await store.renew_environment(env.key, "alive", T0 + 200)


async def test_unused_environments_are_swept_after_the_grace_period(store: SqlStore) -> None:
    used, unused = make_env(), make_env()
    for env in (used, unused):
        await store.claim_environment(env, "n", T0, T0 + 30)
        await store.finish_environment(
            dataclasses.replace(env, status=EnvironmentStatus.READY), "n"
        )
    fn = await store.create_function(make_function(deps_key=used.key))
    assert await store.sweep_environments(T0 + 100, grace_s=50) == []  # marked unused now
    marked = await store.get_environment(unused.key)
    assert marked is not None and marked.unused_since == T0 + 100
    assert await store.sweep_environments(T0 + 140, grace_s=50) == []  # within the grace
    # A published version keeps its environment after the function moved on.
    await store.publish_version(fn, "", T0)
    await store.update_function(
        dataclasses.replace(fn, deps_key=None, revision=fn.revision + 1), fn.revision
    )
    assert await store.sweep_environments(T0 + 151, grace_s=50) == [unused.key]
    assert await store.get_environment(unused.key) is None
    kept = await store.get_environment(used.key)
    assert kept is not None and kept.unused_since is None
    await store.delete_function(fn.namespace, fn.name)  # its versions go with it
    assert await store.sweep_environments(T0 + 200, grace_s=50) == []
    assert await store.sweep_environments(T0 + 251, grace_s=50) == [used.key]


async def test_builds_are_fenced_and_orphans_taken_over(store: SqlStore) -> None:
    fn = await store.create_function(make_function())
    build = await store.create_build(make_build(fn.id, node="n1"))
    assert await store.get_build(build.id) == build
    with pytest.raises(NotFound):
        await store.get_build("nope")
    assert await store.renew_builds("n1", [build.id], T0 + 60) == {build.id}
    assert await store.renew_builds("n2", [build.id], T0 + 60) == set()
    # A lease that ran out is taken over by another node, which alone may finish it.
    exclusive = store.exclusive
    taken = await store.take_orphaned_builds("n2", T0 + 61, T0 + 91)
    assert [t.id for t in taken] == [build.id]
    assert taken[0].node_id == "n2"
    done = dataclasses.replace(taken[0], status=BuildStatus.SUCCEEDED, finished_at=T0 + 70,
                               packages=(("numpy", "2.2.6"),), installed_bytes=5)  # fmt: skip
    assert not await store.finish_build(done, "n1")
    assert await store.finish_build(done, "n2")
    assert (await store.get_build(build.id)).packages == (("numpy", "2.2.6"),)
    assert await store.take_orphaned_builds("n3", T0 + 1000, T0 + 1030) == []
    assert exclusive == (store.exclusive)


async def test_only_the_latest_build_applies_and_only_on_its_node(store: SqlStore) -> None:
    fn = await store.create_function(make_function(ready=False, state=FunctionState.PENDING))
    old = await store.create_build(make_build(fn.id, node="n1"))
    new = await store.create_build(make_build(fn.id, node="n1"))
    await store.update_function(dataclasses.replace(fn, build_id=new.id, revision=2), 1)
    assert await store.apply_build(fn.id, old.id, "n1", {"state": "active"}) is None
    # A node that lost the build's lease to another may not apply it.
    assert await store.apply_build(fn.id, new.id, "n2", {"state": "active"}) is None
    applied = await store.apply_build(fn.id, new.id, "n1", {"state": "active", "ready": True,
                                                            "deps_key": "k1"})  # fmt: skip
    assert applied is not None
    assert (applied.state, applied.ready, applied.deps_key, applied.revision) == (
        FunctionState.ACTIVE, True, "k1", 3,
    )  # fmt: skip
    assert await store.get_function_by_id(fn.id) == applied


async def test_queued_invocations_of_a_function_without_code_are_settled(store: SqlStore) -> None:
    fn = await store.create_function(make_function(ready=False, state=FunctionState.FAILED))
    other = await store.create_function(make_function())
    rows = await store.enqueue([make_invocation(fn), make_invocation(fn), make_invocation(other)])
    error = {"type": "FunctionBuildFailed", "message": "m", "traceback": ""}
    settled = await store.settle_queued(fn.id, error, T0)
    assert sorted(settled) == sorted(r.request_id for r in rows[:2])
    for row in rows[:2]:
        got = await store.get_invocation(fn.namespace, row.request_id)
        assert (got.status, got.error, got.finished_at) == (Status.FAILED, error, T0)
    assert (await store.get_invocation(other.namespace, rows[2].request_id)).status is Status.QUEUED


async def test_asking_for_a_ready_environment_keeps_it_from_the_sweep(store: SqlStore) -> None:
    env = make_env()
    await store.claim_environment(env, "n", T0, T0 + 30)
    await store.finish_environment(dataclasses.replace(env, status=EnvironmentStatus.READY), "n")
    assert await store.sweep_environments(T0 + 10, grace_s=50) == []  # unused since T0 + 10
    claimed = await store.claim_environment(env, "n", T0 + 59, T0 + 89)
    assert claimed.unused_since is None
    assert await store.sweep_environments(T0 + 61, grace_s=50) == []  # asked for: kept


async def test_layer_versions_are_numbered_and_kept_while_used(store: SqlStore) -> None:
    one = await store.publish_layer(make_layer())
    two = await store.publish_layer(make_layer())
    other = await store.publish_layer(make_layer("other"))
    assert (one.version, two.version, other.version) == (1, 2, 1)
    assert [(lv.name, lv.version) for lv in await store.list_layer_versions()] == [
        ("other", 1), ("shared", 1), ("shared", 2),
    ]  # fmt: skip
    fn = await store.create_function(make_function(layers=(LayerRef("shared", 2),)))
    assert (await store.get_function(fn.namespace, fn.name)).layers == (LayerRef("shared", 2),)
    with pytest.raises(Conflict) as used:
        await store.delete_layer_version("shared", 2)
    assert used.value.code == "ResourceInUse.Layer"
    assert fn.name in used.value.message
    await store.delete_layer_version("shared", 1)
    with pytest.raises(NotFound):
        await store.get_layer_version("shared", 1)
    # A number is never given out twice, even after a delete.
    await store.delete_layer_version("other", 1)
    assert (await store.publish_layer(make_layer("other"))).version == 2
    await store.update_layer_state("shared", 2, FunctionState.FAILED, "why", None)
    failed = await store.get_layer_version("shared", 2)
    assert (failed.state, failed.state_reason, failed.scf_status) == (
        FunctionState.FAILED, "why", "PublishFailed",
    )  # fmt: skip
    # A published version of the function holds the layer too.
    await store.publish_version(fn, "", time.time())
    await store.update_function(
        dataclasses.replace(fn, layers=(), revision=fn.revision + 1), fn.revision
    )
    with pytest.raises(Conflict):
        await store.delete_layer_version("shared", 2)
