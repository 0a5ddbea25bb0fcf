"""The named queries behind ``SqlStore``'s builds, installed environments and layer versions.

Plain sync functions over a ``sqlalchemy.Connection``, as in ``store.queries``: writes run in
a transaction the caller commits; what the caller asked wrong raises ``cumulo.errors``.

The lock that makes one build of an environment happen once across a cluster is the
``environments`` row itself: :func:`claim_environment` inserts it (or takes over one whose
builder's lease ran out) and only its holder installs; everyone else waits for it to turn
``ready`` or ``failed``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import orjson
import sqlalchemy as sa

from cumulo.errors import Conflict, FunctionNotFound, NotFound
from cumulo.models import (
    Build,
    BuildStatus,
    Environment,
    EnvironmentStatus,
    Function,
    FunctionState,
    LayerVersion,
    Status,
)
from cumulo.store.engine import insert_ignoring_conflicts, is_unique_violation
from cumulo.store.schema import function_from_row, function_versions, functions, invocations
from cumulo.store.schema_builds import (
    build_from_row,
    build_values,
    builds,
    environment_from_row,
    environment_values,
    environments,
    layer_from_row,
    layer_values,
    layer_versions,
)

_b = builds.c
_e = environments.c
_l = layer_versions.c
_f = functions.c

# --- builds -----------------------------------------------------------------------------


def create_build(conn: sa.Connection, build: Build) -> Build:
    conn.execute(sa.insert(builds).values(build_values(build)))
    return build


def get_build(conn: sa.Connection, build_id: str) -> Build:
    """Raises ``NotFound`` (``ResourceNotFound.Build``)."""
    row = conn.execute(sa.select(builds).where(_b.id == build_id)).first()
    if row is None:
        raise NotFound(f"build {build_id!r} does not exist", code="ResourceNotFound.Build")
    return build_from_row(row)


def finish_build(conn: sa.Connection, build: Build, node_id: str) -> bool:
    """Write how ``build`` ended, only if it is still ``building`` on ``node_id``."""
    values = build_values(build)
    del values["id"], values["created_at"]
    updated = conn.execute(
        sa.update(builds)
        .where(_b.id == build.id, _b.status == BuildStatus.BUILDING.value, _b.node_id == node_id)
        .values(values)
    )
    return bool(updated.rowcount)


def renew_builds(conn: sa.Connection, node_id: str, build_ids: list[str], until: float) -> set[str]:
    """Extend the leases of these running builds of ``node_id``; the ids still held."""
    conn.execute(
        sa.update(builds)
        .where(
            _b.id.in_(build_ids),
            _b.node_id == node_id,
            _b.status == BuildStatus.BUILDING.value,
        )
        .values(lease_expires_at=until)
    )
    held = conn.scalars(
        sa.select(_b.id).where(
            _b.id.in_(build_ids), _b.node_id == node_id, _b.status == BuildStatus.BUILDING.value
        )
    )
    return set(held)


def take_orphaned_builds(
    conn: sa.Connection, node_id: str, now: float, until: float, everyone: bool
) -> list[Build]:
    """Builds left ``building`` by a node that stopped (lease past ``now``; every one when
    ``everyone``, on a store only this node uses), now leased to ``node_id``."""
    query = sa.select(builds).where(_b.status == BuildStatus.BUILDING.value)
    if not everyone:
        query = query.where(_b.lease_expires_at < now)
    taken = []
    for row in conn.execute(query.order_by(_b.created_at).limit(50)).all():
        fence = sa.and_(_b.id == row.id, _b.status == BuildStatus.BUILDING.value)
        if not everyone:
            fence = sa.and_(fence, _b.lease_expires_at < now)
        claimed = conn.execute(
            sa.update(builds).where(fence).values(node_id=node_id, lease_expires_at=until)
        )
        if claimed.rowcount:
            taken.append(get_build(conn, row.id))
    return taken


def apply_build(
    conn: sa.Connection,
    function_id: str,
    build_id: str,
    node_id: str,
    changes: Mapping[str, Any],
) -> Function | None:
    """Set ``changes`` (columns) on the function and bump its revision, only while
    ``build_id`` is still its latest build and still running on ``node_id``; the function as
    written, or ``None`` when a newer build (or a deleted function, or another node that
    took the build over) superseded this one."""
    held = conn.scalar(
        sa.select(_b.id).where(
            _b.id == build_id, _b.node_id == node_id, _b.status == BuildStatus.BUILDING.value
        )
    )
    if held is None:
        return None
    updated = conn.execute(
        sa.update(functions)
        .where(_f.id == function_id, _f.build_id == build_id)
        .values({**changes, "revision": _f.revision + 1})
    )
    if not updated.rowcount:
        return None
    return function_from_row(conn.execute(sa.select(functions).where(_f.id == function_id)).one())


def settle_queued(
    conn: sa.Connection, function_id: str, error: Mapping[str, Any], now: float
) -> list[str]:
    """End every queued invocation of a function that has no code to run (its first build
    failed) as ``failed`` with ``error``; their request ids."""
    ids = list(
        conn.scalars(
            sa.select(invocations.c.request_id).where(
                invocations.c.function_id == function_id,
                invocations.c.status == Status.QUEUED.value,
            )
        )
    )
    if ids:
        conn.execute(
            sa.update(invocations)
            .where(invocations.c.request_id.in_(ids), invocations.c.status == Status.QUEUED.value)
            .values(
                status=Status.FAILED.value,
                error=orjson.dumps(dict(error)).decode(),
                finished_at=now,
                duration_ms=0.0,
                billed_duration_ms=0,
            )
        )
    return ids


def delete_function_builds(conn: sa.Connection, function_id: str) -> list[str]:
    """Delete a deleted function's builds; their ids (whose log lines go too)."""
    ids = list(conn.scalars(sa.select(_b.id).where(_b.function_id == function_id)))
    conn.execute(sa.delete(builds).where(_b.function_id == function_id))
    return ids


# --- environments -----------------------------------------------------------------------


def claim_environment(
    conn: sa.Connection, env: Environment, node_id: str, now: float, until: float
) -> Environment:
    """The row of ``env.key``: inserted as ``building`` by ``node_id`` if new, taken over if
    it ``failed`` or its builder's lease ran out; else as it is (``ready``, or ``building``
    elsewhere). The caller installs only when the row returned has ``builder == node_id``
    and status ``building``."""
    row = conn.execute(sa.select(environments).where(_e.key == env.key)).first()
    building = EnvironmentStatus.BUILDING.value
    if row is None:
        fresh = environment_values(env)
        fresh.update(status=building, builder=node_id, lease_expires_at=until, created_at=now)
        # Two nodes may insert at once: one row wins, the other reads it.
        conn.execute(insert_ignoring_conflicts(conn, environments), fresh)
        return get_environment(conn, env.key) or env
    current = environment_from_row(row)
    if current.status is EnvironmentStatus.READY and current.unused_since is not None:
        # Asked for again: a sweep must not remove it before the asker's function uses it.
        conn.execute(sa.update(environments).where(_e.key == env.key).values(unused_since=None))
        return replace(current, unused_since=None)
    stale = current.status is EnvironmentStatus.BUILDING and (current.lease_expires_at or 0) < now
    if current.status is EnvironmentStatus.FAILED or stale:
        conn.execute(
            sa.update(environments)
            .where(_e.key == env.key, _e.status == row.status, _e.builder.is_not_distinct_from(
                row.builder))
            .values(status=building, builder=node_id, lease_expires_at=until, error="")
        )  # fmt: skip
        return get_environment(conn, env.key) or current
    return current


def get_environment(conn: sa.Connection, key: str) -> Environment | None:
    row = conn.execute(sa.select(environments).where(_e.key == key)).first()
    return None if row is None else environment_from_row(row)


def finish_environment(conn: sa.Connection, env: Environment, node_id: str) -> bool:
    """Write how the build of ``env`` ended (``ready`` with its size and packages, or
    ``failed``), only if ``node_id`` still holds it."""
    values = environment_values(env)
    del values["key"], values["created_at"]
    values.update(builder=None, lease_expires_at=None)
    updated = conn.execute(
        sa.update(environments)
        .where(
            _e.key == env.key,
            _e.builder == node_id,
            _e.status == EnvironmentStatus.BUILDING.value,
        )
        .values(values)
    )
    return bool(updated.rowcount)


def renew_environment(conn: sa.Connection, key: str, node_id: str, until: float) -> bool:
    updated = conn.execute(
        sa.update(environments)
        .where(_e.key == key, _e.builder == node_id)
        .values(lease_expires_at=until)
    )
    return bool(updated.rowcount)


def list_environments(conn: sa.Connection) -> list[Environment]:
    return [
        environment_from_row(row)
        for row in conn.execute(sa.select(environments).order_by(_e.created_at))
    ]


def environments_in_use(conn: sa.Connection) -> set[str]:
    """Keys some function, published version, layer version or running build uses."""
    used: set[str] = set(conn.scalars(sa.select(_f.deps_key).where(_f.deps_key.is_not(None))))
    used |= set(conn.scalars(sa.select(_l.deps_key).where(_l.deps_key.is_not(None))))
    used |= set(
        conn.scalars(
            sa.select(_b.deps_key).where(
                _b.deps_key.is_not(None), _b.status == BuildStatus.BUILDING.value
            )
        )
    )
    for config in conn.scalars(
        sa.select(function_versions.c.config).where(function_versions.c.deleted.is_(False))
    ):
        key = orjson.loads(config).get("deps_key")
        if key:
            used.add(key)
    return used


def sweep_environments(conn: sa.Connection, now: float, grace_s: float) -> list[str]:
    """Mark environments nothing uses as unused since ``now`` (and used ones as used again);
    delete those unused for longer than ``grace_s``. The keys deleted."""
    used = environments_in_use(conn)
    gone = []
    for env in list_environments(conn):
        if env.status is EnvironmentStatus.BUILDING:
            continue
        if env.key in used:
            if env.unused_since is not None:
                conn.execute(
                    sa.update(environments).where(_e.key == env.key).values(unused_since=None)
                )
        elif env.unused_since is None:
            conn.execute(sa.update(environments).where(_e.key == env.key).values(unused_since=now))
        elif env.unused_since <= now - grace_s:
            conn.execute(sa.delete(environments).where(_e.key == env.key))
            gone.append(env.key)
    return gone


# --- layer versions ---------------------------------------------------------------------


def publish_layer(conn: sa.Connection, layer: LayerVersion) -> LayerVersion:
    """Insert ``layer`` as the next version of its name (one more than any ever given out,
    deleted ones included)."""
    last = conn.scalar(sa.select(sa.func.max(_l.version)).where(_l.name == layer.name))
    values = layer_values(layer)
    values["version"] = (last or 0) + 1
    try:
        conn.execute(sa.insert(layer_versions).values(values))
    except sa.exc.IntegrityError as exc:
        if is_unique_violation(exc):
            raise Conflict(
                f"another version of layer {layer.name!r} was published at the same time; retry",
                code="ResourceInUse.LayerVersion",
            ) from exc
        raise
    return get_layer_version(conn, layer.name, values["version"])


def get_layer_version(conn: sa.Connection, name: str, version: int) -> LayerVersion:
    """Raises ``NotFound`` (``ResourceNotFound.Layer``)."""
    row = conn.execute(
        sa.select(layer_versions).where(
            _l.name == name, _l.version == version, _l.deleted.is_(False)
        )
    ).first()
    if row is None:
        raise NotFound(
            f"layer {name!r} has no version {version}", code="ResourceNotFound.LayerVersion"
        )
    return layer_from_row(row)


def list_layer_versions(conn: sa.Connection, name: str | None = None) -> list[LayerVersion]:
    """Every live version (of ``name``, when given), by name then version."""
    query = sa.select(layer_versions).where(_l.deleted.is_(False))
    if name is not None:
        query = query.where(_l.name == name)
    return [layer_from_row(row) for row in conn.execute(query.order_by(_l.name, _l.version))]


def update_layer_state(
    conn: sa.Connection,
    name: str,
    version: int,
    state: FunctionState,
    reason: str,
    deps_key: str | None,
) -> None:
    conn.execute(
        sa.update(layer_versions)
        .where(_l.name == name, _l.version == version)
        .values(state=state.value, state_reason=reason, deps_key=deps_key)
    )


def layer_users(conn: sa.Connection, name: str, version: int) -> list[str]:
    """``namespace/function`` (``:version`` for a published version) of everything that
    uses the layer version."""
    wanted = {"name": name, "version": version}
    pattern = f'%"name":{orjson.dumps(name).decode()}%'
    users = [
        f"{row.namespace}/{row.name}"
        for row in conn.execute(
            sa.select(_f.namespace, _f.name, _f.layers).where(_f.layers.like(pattern))
        )
        if wanted in orjson.loads(row.layers)
    ]
    snapshots = conn.execute(
        sa.select(function_versions.c.version, function_versions.c.config).where(
            # The snapshot holds the layers as JSON text inside JSON: match the bare name.
            function_versions.c.deleted.is_(False),
            function_versions.c.config.like(f"%{name}%"),
        )
    )
    for row in snapshots:
        config = orjson.loads(row.config)
        if wanted in orjson.loads(config.get("layers", "[]")):
            users.append(f"{config['namespace']}/{config['name']}:{row.version}")
    return users


def delete_layer_version(conn: sa.Connection, name: str, version: int) -> None:
    """Raises ``NotFound``; ``Conflict`` (``ResourceInUse.Layer``) while a function or a
    published version uses it."""
    get_layer_version(conn, name, version)
    users = layer_users(conn, name, version)
    if users:
        shown = ", ".join(users[:5]) + (f" and {len(users) - 5} more" if len(users) > 5 else "")
        raise Conflict(
            f"layer {name} version {version} is used by {shown}; detach it first",
            code="ResourceInUse.Layer",
        )
    conn.execute(
        sa.update(layer_versions)
        .where(_l.name == name, _l.version == version)
        .values(deleted=True, deps_key=None)
    )


def function_by_id(conn: sa.Connection, function_id: str) -> Function:
    """Raises ``FunctionNotFound``."""
    row = conn.execute(sa.select(functions).where(_f.id == function_id)).first()
    if row is None:
        raise FunctionNotFound(f"function {function_id} does not exist")
    return function_from_row(row)
