"""The store's tables for builds, installed environments and layer versions, and the
mapping between their rows and records (see ``store.schema`` for the conventions)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson
import sqlalchemy as sa

from cumulo.models import (
    Build,
    BuildStatus,
    BuildTarget,
    Environment,
    EnvironmentStatus,
    FunctionState,
    LayerVersion,
)
from cumulo.store.schema import metadata

builds = sa.Table(
    "builds",
    metadata,
    sa.Column("id", sa.String, primary_key=True),
    sa.Column("function_id", sa.String, nullable=True),
    sa.Column("namespace", sa.String, nullable=False),
    sa.Column("function_name", sa.String, nullable=False),
    sa.Column("layer_name", sa.String, nullable=True),
    sa.Column("layer_version", sa.Integer, nullable=True),
    sa.Column("status", sa.String, nullable=False),
    sa.Column("target", sa.Text, nullable=False),
    sa.Column("created_at", sa.Double, nullable=False),
    sa.Column("node_id", sa.String, nullable=True),
    sa.Column("lease_expires_at", sa.Double, nullable=True),
    sa.Column("finished_at", sa.Double, nullable=True),
    sa.Column("duration_ms", sa.Double, nullable=True),
    sa.Column("deps_key", sa.String, nullable=True),
    sa.Column("reused", sa.Boolean, nullable=False),
    sa.Column("installed_bytes", sa.BigInteger, nullable=True),
    sa.Column("packages", sa.Text, nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
)

sa.Index("ix_builds_status", builds.c.status, builds.c.lease_expires_at)
sa.Index("ix_builds_function", builds.c.function_id)

environments = sa.Table(
    "environments",
    metadata,
    sa.Column("key", sa.String, primary_key=True),
    sa.Column("requirements", sa.Text, nullable=False),
    sa.Column("interpreter", sa.String, nullable=False),
    sa.Column("status", sa.String, nullable=False),
    sa.Column("created_at", sa.Double, nullable=False),
    sa.Column("builder", sa.String, nullable=True),
    sa.Column("lease_expires_at", sa.Double, nullable=True),
    sa.Column("size_bytes", sa.BigInteger, nullable=False),
    sa.Column("packages", sa.Text, nullable=False),
    sa.Column("build_ms", sa.Double, nullable=False),
    sa.Column("unused_since", sa.Double, nullable=True),
    sa.Column("error", sa.Text, nullable=False),
)

layer_versions = sa.Table(
    "layer_versions",
    metadata,
    sa.Column("name", sa.String, primary_key=True),
    sa.Column("version", sa.Integer, primary_key=True),
    sa.Column("description", sa.Text, nullable=False),
    sa.Column("code_sha256", sa.String, nullable=False),
    sa.Column("code_size_bytes", sa.BigInteger, nullable=False),
    sa.Column("unpacked_bytes", sa.BigInteger, nullable=False),
    sa.Column("compatible_runtimes", sa.Text, nullable=False),
    sa.Column("license_info", sa.Text, nullable=False),
    sa.Column("state", sa.String, nullable=False),
    sa.Column("state_reason", sa.Text, nullable=False),
    sa.Column("deps_key", sa.String, nullable=True),
    sa.Column("build_id", sa.String, nullable=True),
    sa.Column("created_at", sa.Double, nullable=False),
    # Deleted versions keep their row, so that a number is never given out twice.
    sa.Column("deleted", sa.Boolean, nullable=False),
)


def _packages_text(packages: Sequence[tuple[str, str]]) -> str:
    return orjson.dumps([list(p) for p in packages]).decode()


def _packages(text: str) -> tuple[tuple[str, str], ...]:
    return tuple((str(name), str(version)) for name, version in orjson.loads(text))


def build_values(build: Build) -> dict[str, Any]:
    target = build.target
    return {
        "id": build.id,
        "function_id": build.function_id,
        "namespace": build.namespace,
        "function_name": build.function_name,
        "layer_name": build.layer_name,
        "layer_version": build.layer_version,
        "status": build.status.value,
        "target": orjson.dumps(
            {
                "code_sha256": target.code_sha256,
                "code_size_bytes": target.code_size_bytes,
                "handler": target.handler,
                "install_dependency": target.install_dependency,
            }
        ).decode(),
        "created_at": build.created_at,
        "node_id": build.node_id,
        "lease_expires_at": build.lease_expires_at,
        "finished_at": build.finished_at,
        "duration_ms": build.duration_ms,
        "deps_key": build.deps_key,
        "reused": build.reused,
        "installed_bytes": build.installed_bytes,
        "packages": _packages_text(build.packages),
        "reason": build.reason,
    }


def build_from_row(row: Any) -> Build:
    target = orjson.loads(row.target)
    return Build(
        id=row.id,
        status=BuildStatus(row.status),
        target=BuildTarget(
            code_sha256=target["code_sha256"],
            code_size_bytes=target["code_size_bytes"],
            handler=target.get("handler", ""),
            install_dependency=bool(target.get("install_dependency", True)),
        ),
        created_at=row.created_at,
        function_id=row.function_id,
        namespace=row.namespace,
        function_name=row.function_name,
        layer_name=row.layer_name,
        layer_version=row.layer_version,
        node_id=row.node_id,
        lease_expires_at=row.lease_expires_at,
        finished_at=row.finished_at,
        duration_ms=row.duration_ms,
        deps_key=row.deps_key,
        reused=bool(row.reused),
        installed_bytes=row.installed_bytes,
        packages=_packages(row.packages),
        reason=row.reason,
    )


def environment_values(env: Environment) -> dict[str, Any]:
    return {
        "key": env.key,
        "requirements": env.requirements,
        "interpreter": env.interpreter,
        "status": env.status.value,
        "created_at": env.created_at,
        "builder": env.builder,
        "lease_expires_at": env.lease_expires_at,
        "size_bytes": env.size_bytes,
        "packages": _packages_text(env.packages),
        "build_ms": env.build_ms,
        "unused_since": env.unused_since,
        "error": env.error,
    }


def environment_from_row(row: Any) -> Environment:
    return Environment(
        key=row.key,
        requirements=row.requirements,
        interpreter=row.interpreter,
        status=EnvironmentStatus(row.status),
        created_at=row.created_at,
        builder=row.builder,
        lease_expires_at=row.lease_expires_at,
        size_bytes=row.size_bytes,
        packages=_packages(row.packages),
        build_ms=row.build_ms,
        unused_since=row.unused_since,
        error=row.error,
    )


def layer_values(layer: LayerVersion) -> dict[str, Any]:
    return {
        "name": layer.name,
        "version": layer.version,
        "description": layer.description,
        "code_sha256": layer.code_sha256,
        "code_size_bytes": layer.code_size_bytes,
        "unpacked_bytes": layer.unpacked_bytes,
        "compatible_runtimes": orjson.dumps(list(layer.compatible_runtimes)).decode(),
        "license_info": layer.license_info,
        "state": layer.state.value,
        "state_reason": layer.state_reason,
        "deps_key": layer.deps_key,
        "build_id": layer.build_id,
        "created_at": layer.created_at,
        "deleted": False,
    }


def layer_from_row(row: Any) -> LayerVersion:
    return LayerVersion(
        name=row.name,
        version=row.version,
        code_sha256=row.code_sha256,
        code_size_bytes=row.code_size_bytes,
        unpacked_bytes=row.unpacked_bytes,
        created_at=row.created_at,
        description=row.description,
        compatible_runtimes=tuple(orjson.loads(row.compatible_runtimes)),
        license_info=row.license_info,
        state=FunctionState(row.state),
        state_reason=row.state_reason,
        deps_key=row.deps_key,
        build_id=row.build_id,
    )
