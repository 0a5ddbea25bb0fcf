"""The async facade of the store's builds, environments and layer versions: the part of
``SqlStore`` for ``store.base.BuildStore``, ``EnvironmentStore`` and ``LayerStore`` (a mixin,
so that ``store.sql`` stays one screenful per seam). Every call runs a named query of
``store.builds``."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Concatenate, ParamSpec, TypeVar

import sqlalchemy as sa

from cumulo.models import Build, Environment, Function, FunctionState, LayerVersion
from cumulo.store import builds as q

P = ParamSpec("P")
T = TypeVar("T")


class BuildsFacade:
    """Needs ``_read``, ``_write`` and ``exclusive`` from ``SqlStore``."""

    @property
    def exclusive(self) -> bool:
        raise NotImplementedError

    async def _read(
        self, query: Callable[Concatenate[sa.Connection, P], T], *args: P.args, **kw: P.kwargs
    ) -> T:
        raise NotImplementedError

    async def _write(
        self, query: Callable[Concatenate[sa.Connection, P], T], *args: P.args, **kw: P.kwargs
    ) -> T:
        raise NotImplementedError

    # --- builds ---------------------------------------------------------------------

    async def create_build(self, build: Build) -> Build:
        return await self._write(q.create_build, build)

    async def get_build(self, build_id: str) -> Build:
        """Raises ``NotFound`` (``ResourceNotFound.Build``)."""
        return await self._read(q.get_build, build_id)

    async def finish_build(self, build: Build, node_id: str) -> bool:
        return await self._write(q.finish_build, build, node_id)

    async def renew_builds(self, node_id: str, build_ids: Sequence[str], until: float) -> set[str]:
        if not build_ids:
            return set()
        return await self._write(q.renew_builds, node_id, list(build_ids), until)

    async def take_orphaned_builds(self, node_id: str, now: float, until: float) -> list[Build]:
        return await self._write(q.take_orphaned_builds, node_id, now, until, self.exclusive)

    async def apply_build(
        self, function_id: str, build_id: str, node_id: str, changes: Mapping[str, Any]
    ) -> Function | None:
        return await self._write(q.apply_build, function_id, build_id, node_id, dict(changes))

    async def settle_queued(
        self, function_id: str, error: Mapping[str, Any], now: float
    ) -> list[str]:
        return await self._write(q.settle_queued, function_id, dict(error), now)

    async def get_function_by_id(self, function_id: str) -> Function:
        """Raises ``FunctionNotFound``."""
        return await self._read(q.function_by_id, function_id)

    # --- environments ---------------------------------------------------------------

    async def claim_environment(
        self, env: Environment, node_id: str, now: float, until: float
    ) -> Environment:
        return await self._write(q.claim_environment, env, node_id, now, until)

    async def get_environment(self, key: str) -> Environment | None:
        return await self._read(q.get_environment, key)

    async def finish_environment(self, env: Environment, node_id: str) -> bool:
        return await self._write(q.finish_environment, env, node_id)

    async def renew_environment(self, key: str, node_id: str, until: float) -> bool:
        return await self._write(q.renew_environment, key, node_id, until)

    async def list_environments(self) -> list[Environment]:
        return await self._read(q.list_environments)

    async def sweep_environments(self, now: float, grace_s: float) -> list[str]:
        return await self._write(q.sweep_environments, now, grace_s)

    # --- layer versions -------------------------------------------------------------

    async def publish_layer(self, layer: LayerVersion) -> LayerVersion:
        return await self._write(q.publish_layer, layer)

    async def get_layer_version(self, name: str, version: int) -> LayerVersion:
        return await self._read(q.get_layer_version, name, version)

    async def list_layer_versions(self, name: str | None = None) -> list[LayerVersion]:
        return await self._read(q.list_layer_versions, name)

    async def update_layer_state(
        self, name: str, version: int, state: FunctionState, reason: str, deps_key: str | None
    ) -> None:
        await self._write(q.update_layer_state, name, version, state, reason, deps_key)

    async def delete_layer_version(self, name: str, version: int) -> None:
        await self._write(q.delete_layer_version, name, version)
