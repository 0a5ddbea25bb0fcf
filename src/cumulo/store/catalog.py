"""The named queries behind ``SqlStore``'s versions, aliases, API keys and triggers.

Plain sync functions over a ``sqlalchemy.Connection``, as in ``store.queries``: writes run in
a transaction the caller commits; what the caller asked wrong raises ``cumulo.errors``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa

from cumulo.errors import Conflict, NotFound
from cumulo.models import Alias, ApiKey, Function, FunctionVersion, Trigger
from cumulo.store.engine import is_unique_violation
from cumulo.store.schema import (
    alias_from_row,
    alias_values,
    aliases,
    api_keys,
    function_versions,
    key_from_row,
    key_values,
    trigger_from_row,
    trigger_values,
    triggers,
    version_from_row,
    version_values,
)

_v = function_versions.c
_a = aliases.c
_k = api_keys.c
_t = triggers.c

# --- versions ---------------------------------------------------------------------------


def publish_version(
    conn: sa.Connection, function: Function, description: str, now: float
) -> FunctionVersion:
    """Snapshot ``function`` as the next version number (one more than any ever given out,
    deleted ones included)."""
    last = conn.scalar(sa.select(sa.func.max(_v.version)).where(_v.function_id == function.id))
    version = FunctionVersion(
        function_id=function.id,
        version=(last or 0) + 1,
        function=function,
        description=description,
        created_at=now,
    )
    try:
        conn.execute(sa.insert(function_versions).values(version_values(version)))
    except sa.exc.IntegrityError as exc:
        if is_unique_violation(exc):
            raise Conflict(
                f"another version of {function.name!r} was published at the same time; retry",
                code="ResourceInUse.Version",
            ) from exc
        raise
    return version_from_row(
        conn.execute(
            sa.select(function_versions).where(
                _v.function_id == function.id, _v.version == version.version
            )
        ).one()
    )


def get_version(conn: sa.Connection, function_id: str, version: int) -> FunctionVersion:
    """Raises ``NotFound`` (code ``ResourceNotFound.Version``)."""
    row = conn.execute(
        sa.select(function_versions).where(
            _v.function_id == function_id, _v.version == version, _v.deleted.is_(False)
        )
    ).first()
    if row is None:
        raise NotFound(f"version {version} does not exist", code="ResourceNotFound.Version")
    return version_from_row(row)


def list_versions(conn: sa.Connection, function_id: str) -> list[FunctionVersion]:
    rows = conn.execute(
        sa.select(function_versions)
        .where(_v.function_id == function_id, _v.deleted.is_(False))
        .order_by(_v.version)
    )
    return [version_from_row(row) for row in rows]


def _check_no_trigger_uses(conn: sa.Connection, function_id: str, qualifier: str) -> None:
    used = conn.scalar(
        sa.select(_t.name).where(_t.function_id == function_id, _t.qualifier == qualifier).limit(1)
    )
    if used is not None:
        raise Conflict(
            f"{qualifier} is invoked by trigger {used!r}; change or delete the trigger first",
            code="ResourceInUse.Trigger",
        )


def _check_versions_exist(conn: sa.Connection, alias: Alias) -> None:
    """Inside the alias's write: every version it routes to is still there (another node may
    have deleted one since the engine checked)."""
    wanted = {
        int(v)
        for v in (alias.function_version, *alias.additional_weights)
        if v.isascii() and v.isdigit()
    }
    if not wanted:
        return
    present = set(
        conn.scalars(
            sa.select(_v.version).where(
                _v.function_id == alias.function_id,
                _v.version.in_(sorted(wanted)),
                _v.deleted.is_(False),
            )
        )
    )
    missing = sorted(wanted - present)
    if missing:
        raise NotFound(f"version {missing[0]} does not exist", code="ResourceNotFound.Version")


def delete_version(conn: sa.Connection, function_id: str, version: int) -> None:
    """Raises ``NotFound``; ``Conflict`` while an alias routes to it or a trigger invokes
    it."""
    _check_no_trigger_uses(conn, function_id, str(version))
    for alias in list_aliases(conn, function_id):
        if str(version) == alias.function_version or str(version) in alias.additional_weights:
            raise Conflict(
                f"version {version} is used by alias {alias.name!r}; change or delete the "
                "alias first",
                code="ResourceInUse.Alias",
            )
    updated = conn.execute(
        sa.update(function_versions)
        .where(_v.function_id == function_id, _v.version == version, _v.deleted.is_(False))
        .values(deleted=True, config="{}")
    )
    if updated.rowcount == 0:
        raise NotFound(f"version {version} does not exist", code="ResourceNotFound.Version")


# --- aliases ----------------------------------------------------------------------------


def create_alias(conn: sa.Connection, alias: Alias) -> Alias:
    """Raises ``Conflict`` (``ResourceInUse.Alias``) when the name is taken; ``NotFound``
    when a version it routes to is gone."""
    _check_versions_exist(conn, alias)
    try:
        conn.execute(sa.insert(aliases).values(alias_values(alias)))
    except sa.exc.IntegrityError as exc:
        if is_unique_violation(exc):
            raise Conflict(
                f"alias {alias.name!r} already exists", code="ResourceInUse.Alias"
            ) from exc
        raise
    return alias


def get_alias(conn: sa.Connection, function_id: str, name: str) -> Alias:
    """Raises ``NotFound`` (``ResourceNotFound.Alias``)."""
    row = conn.execute(sa.select(aliases).where(_a.function_id == function_id, _a.name == name))
    found = row.first()
    if found is None:
        raise NotFound(f"alias {name!r} does not exist", code="ResourceNotFound.Alias")
    return alias_from_row(found)


def list_aliases(conn: sa.Connection, function_id: str) -> list[Alias]:
    rows = conn.execute(sa.select(aliases).where(_a.function_id == function_id).order_by(_a.name))
    return [alias_from_row(row) for row in rows]


def update_alias(conn: sa.Connection, alias: Alias) -> Alias:
    """Replace the alias's target and weights. Raises ``NotFound`` (the alias, or a version
    it routes to)."""
    _check_versions_exist(conn, alias)
    values = alias_values(alias)
    del values["created_at"]
    updated = conn.execute(
        sa.update(aliases)
        .where(_a.function_id == alias.function_id, _a.name == alias.name)
        .values(values)
    )
    if updated.rowcount == 0:
        raise NotFound(f"alias {alias.name!r} does not exist", code="ResourceNotFound.Alias")
    return get_alias(conn, alias.function_id, alias.name)


def delete_alias(conn: sa.Connection, function_id: str, name: str) -> None:
    """Raises ``NotFound``; ``Conflict`` while a trigger invokes it."""
    _check_no_trigger_uses(conn, function_id, name)
    deleted = conn.execute(sa.delete(aliases).where(_a.function_id == function_id, _a.name == name))
    if deleted.rowcount == 0:
        raise NotFound(f"alias {name!r} does not exist", code="ResourceNotFound.Alias")


def delete_function_catalog(conn: sa.Connection, function_id: str) -> None:
    """What goes with a deleted function: its versions, aliases and triggers."""
    for table in (function_versions, aliases, triggers):
        conn.execute(sa.delete(table).where(table.c.function_id == function_id))


# --- API keys ---------------------------------------------------------------------------


def create_key(conn: sa.Connection, key: ApiKey) -> ApiKey:
    conn.execute(sa.insert(api_keys).values(key_values(key)))
    return key


def get_key(conn: sa.Connection, secret_id: str) -> ApiKey | None:
    row = conn.execute(sa.select(api_keys).where(_k.secret_id == secret_id)).first()
    return None if row is None else key_from_row(row)


def list_keys(conn: sa.Connection) -> list[ApiKey]:
    return [key_from_row(row) for row in conn.execute(sa.select(api_keys).order_by(_k.created_at))]


def revoke_key(conn: sa.Connection, secret_id: str, now: float) -> ApiKey:
    """Idempotent; raises ``NotFound`` for an unknown key."""
    conn.execute(
        sa.update(api_keys)
        .where(_k.secret_id == secret_id, _k.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    key = get_key(conn, secret_id)
    if key is None:
        raise NotFound(f"no API key {secret_id!r}", code="ResourceNotFound.SecretId")
    return key


# --- triggers ---------------------------------------------------------------------------


def create_trigger(conn: sa.Connection, trigger: Trigger) -> Trigger:
    """Raises ``Conflict`` (``ResourceInUse.Trigger``) when the function has one by that
    name."""
    try:
        conn.execute(sa.insert(triggers).values(trigger_values(trigger)))
    except sa.exc.IntegrityError as exc:
        if is_unique_violation(exc):
            raise Conflict(
                f"function {trigger.function_name!r} already has a trigger {trigger.name!r}",
                code="ResourceInUse.Trigger",
            ) from exc
        raise
    return trigger


def list_triggers(
    conn: sa.Connection, function_id: str | None = None, type_: str | None = None
) -> list[Trigger]:
    query = sa.select(triggers)
    if function_id is not None:
        query = query.where(_t.function_id == function_id)
    if type_ is not None:
        query = query.where(_t.type == type_)
    return [trigger_from_row(row) for row in conn.execute(query.order_by(_t.created_at))]


def update_trigger(
    conn: sa.Connection, function_id: str, name: str, changes: Mapping[str, Any]
) -> Trigger:
    """Raises ``NotFound`` (``ResourceNotFound.Trigger``)."""
    mine = sa.and_(_t.function_id == function_id, _t.name == name)
    updated = conn.execute(sa.update(triggers).where(mine).values(dict(changes)))
    if updated.rowcount == 0:
        raise NotFound(f"trigger {name!r} does not exist", code="ResourceNotFound.Trigger")
    return trigger_from_row(conn.execute(sa.select(triggers).where(mine)).one())


def delete_trigger(conn: sa.Connection, function_id: str, name: str) -> None:
    deleted = conn.execute(
        sa.delete(triggers).where(_t.function_id == function_id, _t.name == name)
    )
    if deleted.rowcount == 0:
        raise NotFound(f"trigger {name!r} does not exist", code="ResourceNotFound.Trigger")
