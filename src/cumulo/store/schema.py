"""The store's tables as SQLAlchemy Core objects, and the mapping between rows and records.

The tables here describe the schema *at head*; the migrations under ``migrations/versions``
are what create it (they never import this module, so that an old migration keeps meaning
what it meant). Timestamps are Unix seconds as double precision; JSON is stored as text.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from types import SimpleNamespace
from typing import Any

import orjson
import sqlalchemy as sa

from cumulo.models import (
    Alias,
    ApiKey,
    Function,
    FunctionState,
    FunctionVersion,
    Invocation,
    InvocationType,
    LayerRef,
    LogLine,
    LogStream,
    Namespace,
    Status,
    TerminateMode,
    Trigger,
)

metadata = sa.MetaData()

namespaces = sa.Table(
    "namespaces",
    metadata,
    sa.Column("name", sa.String, primary_key=True),
    sa.Column("description", sa.Text, nullable=False),
    sa.Column("created_at", sa.Double, nullable=False),
)

code_packages = sa.Table(
    "code_packages",
    metadata,
    sa.Column("sha256", sa.String, primary_key=True),
    sa.Column("data", sa.LargeBinary, nullable=False),
    sa.Column("size_bytes", sa.BigInteger, nullable=False),
    sa.Column("created_at", sa.Double, nullable=False),
)

functions = sa.Table(
    "functions",
    metadata,
    sa.Column("id", sa.String, primary_key=True),
    sa.Column("namespace", sa.String, sa.ForeignKey("namespaces.name"), nullable=False),
    sa.Column("name", sa.String, nullable=False),
    sa.Column("handler", sa.String, nullable=False),
    sa.Column("code_sha256", sa.String, nullable=False),
    sa.Column("code_size_bytes", sa.BigInteger, nullable=False),
    sa.Column("timeout_s", sa.Double, nullable=False),
    sa.Column("memory_mb", sa.Integer, nullable=False),
    sa.Column("async_run", sa.Boolean, nullable=False),
    sa.Column("max_qps", sa.Integer, nullable=False),
    sa.Column("max_concurrency", sa.Integer, nullable=True),
    sa.Column("retry_attempts", sa.Integer, nullable=False),
    sa.Column("max_event_age_s", sa.Double, nullable=False),
    sa.Column("environment", sa.Text, nullable=False),
    sa.Column("description", sa.Text, nullable=False),
    sa.Column("revision", sa.Integer, nullable=False),
    sa.Column("created_at", sa.Double, nullable=False),
    sa.Column("updated_at", sa.Double, nullable=False),
    sa.Column("state", sa.String, nullable=False, server_default="active"),
    sa.Column("state_reason", sa.Text, nullable=False, server_default=""),
    sa.Column("ready", sa.Boolean, nullable=False, server_default=sa.true()),
    sa.Column("deps_key", sa.String, nullable=True),
    sa.Column("layers", sa.Text, nullable=False, server_default="[]"),
    sa.Column("install_dependency", sa.Boolean, nullable=False, server_default=sa.true()),
    sa.Column("build_id", sa.String, nullable=True),
    sa.UniqueConstraint("namespace", "name", name="uq_functions_namespace_name"),
)

invocations = sa.Table(
    "invocations",
    metadata,
    sa.Column("request_id", sa.String, primary_key=True),
    sa.Column("namespace", sa.String, nullable=False),
    sa.Column("function_name", sa.String, nullable=False),
    sa.Column("function_id", sa.String, nullable=False),
    sa.Column("function_revision", sa.Integer, nullable=False),
    sa.Column("type", sa.String, nullable=False),
    sa.Column("async_run", sa.Boolean, nullable=False),
    sa.Column("status", sa.String, nullable=False),
    sa.Column("event", sa.Text, nullable=False),
    sa.Column("result", sa.Text, nullable=True),
    sa.Column("error", sa.Text, nullable=True),
    sa.Column("attempt", sa.Integer, nullable=False),
    sa.Column("max_attempts", sa.Integer, nullable=False),
    sa.Column("created_at", sa.Double, nullable=False),
    sa.Column("run_after", sa.Double, nullable=False),
    sa.Column("expires_at", sa.Double, nullable=False),
    sa.Column("started_at", sa.Double, nullable=True),
    sa.Column("finished_at", sa.Double, nullable=True),
    sa.Column("duration_ms", sa.Double, nullable=True),
    sa.Column("billed_duration_ms", sa.BigInteger, nullable=True),
    sa.Column("peak_memory_mb", sa.Double, nullable=True),
    sa.Column("idempotency_key", sa.String, nullable=True),
    sa.Column("lease_owner", sa.String, nullable=True),
    sa.Column("lease_expires_at", sa.Double, nullable=True),
    sa.Column("dead_lettered", sa.Boolean, nullable=False),
    sa.Column("terminate_mode", sa.String, nullable=True),
    sa.Column("function_version", sa.String, nullable=False, server_default="$LATEST"),
)

# Indexes (named as in the migration that creates them).
sa.Index(
    "ix_invocations_claim",
    invocations.c.status,
    invocations.c.run_after,
    invocations.c.created_at,
)
sa.Index(
    "ix_invocations_list",
    invocations.c.namespace,
    invocations.c.created_at.desc(),
    invocations.c.request_id,
)
sa.Index(
    "ix_invocations_function",
    invocations.c.namespace,
    invocations.c.function_name,
    invocations.c.created_at,
)
sa.Index(
    "ix_invocations_function_claim",
    invocations.c.function_id,
    invocations.c.status,
    invocations.c.run_after,
    invocations.c.created_at,
    invocations.c.request_id,
)
sa.Index("ix_invocations_lease", invocations.c.status, invocations.c.lease_expires_at)
sa.Index(
    "uq_invocations_idempotency",
    invocations.c.function_id,
    invocations.c.idempotency_key,
    unique=True,
    sqlite_where=invocations.c.idempotency_key.is_not(None),
    postgresql_where=invocations.c.idempotency_key.is_not(None),
)

function_versions = sa.Table(
    "function_versions",
    metadata,
    sa.Column("function_id", sa.String, primary_key=True),
    sa.Column("version", sa.Integer, primary_key=True),
    # The snapshot: ``function_values`` of the function at publish time, as JSON text.
    sa.Column("config", sa.Text, nullable=False),
    sa.Column("description", sa.Text, nullable=False),
    sa.Column("created_at", sa.Double, nullable=False),
    # Deleted versions keep their row, so that a number is never given out twice.
    sa.Column("deleted", sa.Boolean, nullable=False),
)

aliases = sa.Table(
    "aliases",
    metadata,
    sa.Column("function_id", sa.String, primary_key=True),
    sa.Column("name", sa.String, primary_key=True),
    sa.Column("function_version", sa.String, nullable=False),
    sa.Column("additional_weights", sa.Text, nullable=False),
    sa.Column("description", sa.Text, nullable=False),
    sa.Column("created_at", sa.Double, nullable=False),
    sa.Column("updated_at", sa.Double, nullable=False),
)

api_keys = sa.Table(
    "api_keys",
    metadata,
    sa.Column("secret_id", sa.String, primary_key=True),
    sa.Column("secret_enc", sa.Text, nullable=False),
    sa.Column("namespace", sa.String, nullable=True),
    sa.Column("description", sa.Text, nullable=False),
    sa.Column("created_at", sa.Double, nullable=False),
    sa.Column("revoked_at", sa.Double, nullable=True),
)

triggers = sa.Table(
    "triggers",
    metadata,
    sa.Column("function_id", sa.String, primary_key=True),
    sa.Column("name", sa.String, primary_key=True),
    sa.Column("namespace", sa.String, nullable=False),
    sa.Column("function_name", sa.String, nullable=False),
    sa.Column("type", sa.String, nullable=False),
    sa.Column("description", sa.Text, nullable=False),
    sa.Column("qualifier", sa.String, nullable=False),
    sa.Column("enabled", sa.Boolean, nullable=False),
    sa.Column("custom_argument", sa.Text, nullable=False),
    sa.Column("created_at", sa.Double, nullable=False),
    sa.Column("updated_at", sa.Double, nullable=False),
    sa.Column("note", sa.Text, nullable=False, server_default=""),
)

sa.Index("ix_triggers_type", triggers.c.type, triggers.c.enabled)

log_lines = sa.Table(
    "log_lines",
    metadata,
    sa.Column("request_id", sa.String, primary_key=True),
    sa.Column("seq", sa.BigInteger, primary_key=True),
    sa.Column("ts", sa.Double, nullable=False),
    sa.Column("stream", sa.String, nullable=False),
    sa.Column("text", sa.Text, nullable=False),
)


def _dumps(value: Mapping[str, Any]) -> str:
    return orjson.dumps(dict(value)).decode()


# --- namespaces -------------------------------------------------------------------------


def namespace_values(namespace: Namespace) -> dict[str, Any]:
    return {
        "name": namespace.name,
        "description": namespace.description,
        "created_at": namespace.created_at,
    }


def namespace_from_row(row: sa.Row[Any]) -> Namespace:
    return Namespace(name=row.name, description=row.description, created_at=row.created_at)


# --- functions --------------------------------------------------------------------------


def function_values(function: Function) -> dict[str, Any]:
    return {
        "id": function.id,
        "namespace": function.namespace,
        "name": function.name,
        "handler": function.handler,
        "code_sha256": function.code_sha256,
        "code_size_bytes": function.code_size_bytes,
        "timeout_s": function.timeout_s,
        "memory_mb": function.memory_mb,
        "async_run": function.async_run,
        "max_qps": function.max_qps,
        "max_concurrency": function.max_concurrency,
        "retry_attempts": function.retry_attempts,
        "max_event_age_s": function.max_event_age_s,
        "environment": _dumps(function.environment),
        "description": function.description,
        "revision": function.revision,
        "created_at": function.created_at,
        "updated_at": function.updated_at,
        "state": function.state.value,
        "state_reason": function.state_reason,
        "ready": function.ready,
        "deps_key": function.deps_key,
        "layers": layers_text(function.layers),
        "install_dependency": function.install_dependency,
        "build_id": function.build_id,
    }


def layers_text(layers: Sequence[LayerRef]) -> str:
    return orjson.dumps([{"name": ref.name, "version": ref.version} for ref in layers]).decode()


def layers_from_text(text: str) -> tuple[LayerRef, ...]:
    return tuple(LayerRef(item["name"], int(item["version"])) for item in orjson.loads(text))


def function_from_row(row: Any) -> Function:
    """From a ``functions`` row, or anything with its columns as attributes (a version's
    snapshot made before a column existed has the column's default)."""
    return Function(
        id=row.id,
        namespace=row.namespace,
        name=row.name,
        handler=row.handler,
        code_sha256=row.code_sha256,
        code_size_bytes=row.code_size_bytes,
        timeout_s=row.timeout_s,
        memory_mb=row.memory_mb,
        async_run=bool(row.async_run),
        max_qps=row.max_qps,
        max_concurrency=row.max_concurrency,
        retry_attempts=row.retry_attempts,
        max_event_age_s=row.max_event_age_s,
        environment=orjson.loads(row.environment),
        description=row.description,
        revision=row.revision,
        created_at=row.created_at,
        updated_at=row.updated_at,
        state=FunctionState(getattr(row, "state", "active")),
        state_reason=getattr(row, "state_reason", ""),
        ready=bool(getattr(row, "ready", True)),
        deps_key=getattr(row, "deps_key", None),
        layers=layers_from_text(getattr(row, "layers", "[]")),
        install_dependency=bool(getattr(row, "install_dependency", True)),
        build_id=getattr(row, "build_id", None),
    )


# --- versions, aliases, keys, triggers --------------------------------------------------


def version_values(version: FunctionVersion) -> dict[str, Any]:
    return {
        "function_id": version.function_id,
        "version": version.version,
        "config": _dumps(function_values(version.function)),
        "description": version.description,
        "created_at": version.created_at,
        "deleted": False,
    }


def version_from_row(row: sa.Row[Any]) -> FunctionVersion:
    config = orjson.loads(row.config)
    function = function_from_row(SimpleNamespace(**config))
    return FunctionVersion(
        function_id=row.function_id,
        version=row.version,
        function=replace(function, version=str(row.version)),
        description=row.description,
        created_at=row.created_at,
    )


def alias_values(alias: Alias) -> dict[str, Any]:
    return {
        "function_id": alias.function_id,
        "name": alias.name,
        "function_version": alias.function_version,
        "additional_weights": _dumps(alias.additional_weights),
        "description": alias.description,
        "created_at": alias.created_at,
        "updated_at": alias.updated_at,
    }


def alias_from_row(row: sa.Row[Any]) -> Alias:
    return Alias(
        function_id=row.function_id,
        name=row.name,
        function_version=row.function_version,
        additional_weights=orjson.loads(row.additional_weights),
        description=row.description,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def key_values(key: ApiKey) -> dict[str, Any]:
    return {
        "secret_id": key.secret_id,
        "secret_enc": key.secret_enc,
        "namespace": key.namespace,
        "description": key.description,
        "created_at": key.created_at,
        "revoked_at": key.revoked_at,
    }


def key_from_row(row: sa.Row[Any]) -> ApiKey:
    return ApiKey(
        secret_id=row.secret_id,
        secret_enc=row.secret_enc,
        namespace=row.namespace,
        description=row.description,
        created_at=row.created_at,
        revoked_at=row.revoked_at,
    )


def trigger_values(trigger: Trigger) -> dict[str, Any]:
    return {
        "function_id": trigger.function_id,
        "name": trigger.name,
        "namespace": trigger.namespace,
        "function_name": trigger.function_name,
        "type": trigger.type,
        "description": trigger.description,
        "qualifier": trigger.qualifier,
        "enabled": trigger.enabled,
        "custom_argument": trigger.custom_argument,
        "created_at": trigger.created_at,
        "updated_at": trigger.updated_at,
        "note": trigger.note,
    }


def trigger_from_row(row: sa.Row[Any]) -> Trigger:
    return Trigger(
        function_id=row.function_id,
        name=row.name,
        namespace=row.namespace,
        function_name=row.function_name,
        type=row.type,
        description=row.description,
        qualifier=row.qualifier,
        enabled=bool(row.enabled),
        custom_argument=row.custom_argument,
        created_at=row.created_at,
        updated_at=row.updated_at,
        note=row.note,
    )


# --- invocations ------------------------------------------------------------------------


def invocation_values(inv: Invocation) -> dict[str, Any]:
    """Column values for an INSERT. This runs once per accepted invocation, so it stays a
    flat literal with no per-field dispatch."""
    error = inv.error
    mode = inv.terminate_mode
    return {
        "request_id": inv.request_id,
        "namespace": inv.namespace,
        "function_name": inv.function_name,
        "function_id": inv.function_id,
        "function_revision": inv.function_revision,
        "type": inv.type.value,
        "async_run": inv.async_run,
        "status": inv.status.value,
        "event": inv.event,
        "result": inv.result,
        "error": None if error is None else _dumps(error),
        "attempt": inv.attempt,
        "max_attempts": inv.max_attempts,
        "created_at": inv.created_at,
        "run_after": inv.run_after,
        "expires_at": inv.expires_at,
        "started_at": inv.started_at,
        "finished_at": inv.finished_at,
        "duration_ms": inv.duration_ms,
        "billed_duration_ms": inv.billed_duration_ms,
        "peak_memory_mb": inv.peak_memory_mb,
        "idempotency_key": inv.idempotency_key,
        "lease_owner": inv.lease_owner,
        "lease_expires_at": inv.lease_expires_at,
        "dead_lettered": inv.dead_lettered,
        "terminate_mode": None if mode is None else mode.value,
        "function_version": inv.function_version,
    }


def outcome_values(inv: Invocation) -> dict[str, Any]:
    """The columns a dispatcher (or recovery) owns when it writes the outcome of a run.

    ``terminate_mode`` is left out on purpose: it belongs to whoever asks for a terminate,
    and a dispatcher's copy of the row may predate that request.
    """
    error = inv.error
    values = {
        "status": inv.status.value,
        "result": inv.result,
        "error": None if error is None else _dumps(error),
        "attempt": inv.attempt,
        "run_after": inv.run_after,
        "started_at": inv.started_at,
        "finished_at": inv.finished_at,
        "duration_ms": inv.duration_ms,
        "billed_duration_ms": inv.billed_duration_ms,
        "peak_memory_mb": inv.peak_memory_mb,
        "dead_lettered": inv.dead_lettered,
    }
    if inv.status is Status.QUEUED:
        values["lease_owner"] = None
        values["lease_expires_at"] = None
    return values


def invocation_from_row(row: Sequence[Any]) -> Invocation:
    """The record of a row holding every column of ``invocations`` in table order: a
    ``sa.Row`` of ``select(invocations)`` or ``returning(*invocations.c)``, or a plain
    ``sqlite3`` tuple of the same columns. Positional, so that a plain tuple costs no more
    than a ``Row``."""
    (
        request_id,
        namespace,
        function_name,
        function_id,
        function_revision,
        type_,
        async_run,
        status,
        event,
        result,
        error,
        attempt,
        max_attempts,
        created_at,
        run_after,
        expires_at,
        started_at,
        finished_at,
        duration_ms,
        billed_duration_ms,
        peak_memory_mb,
        idempotency_key,
        lease_owner,
        lease_expires_at,
        dead_lettered,
        mode,
        function_version,
    ) = row
    return Invocation(
        request_id=request_id,
        namespace=namespace,
        function_name=function_name,
        function_id=function_id,
        function_revision=function_revision,
        type=InvocationType(type_),
        async_run=bool(async_run),
        status=Status(status),
        event=event,
        created_at=created_at,
        run_after=run_after,
        max_attempts=max_attempts,
        expires_at=expires_at,
        attempt=attempt,
        result=result,
        error=None if error is None else orjson.loads(error),
        started_at=started_at,
        finished_at=finished_at,
        duration_ms=duration_ms,
        billed_duration_ms=billed_duration_ms,
        peak_memory_mb=peak_memory_mb,
        idempotency_key=idempotency_key,
        lease_owner=lease_owner,
        lease_expires_at=lease_expires_at,
        dead_lettered=bool(dead_lettered),
        terminate_mode=None if mode is None else TerminateMode(mode),
        function_version=function_version,
    )


# --- log lines --------------------------------------------------------------------------


def log_line_values(line: LogLine) -> dict[str, Any]:
    return {
        "request_id": line.request_id,
        "seq": line.seq,
        "ts": line.ts,
        "stream": line.stream.value,
        "text": line.text,
    }


def log_line_from_row(row: sa.Row[Any]) -> LogLine:
    return LogLine(
        request_id=row.request_id,
        seq=row.seq,
        ts=row.ts,
        stream=LogStream(row.stream),
        text=row.text,
    )
