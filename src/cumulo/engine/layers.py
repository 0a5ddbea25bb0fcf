"""Layers: versioned zips shared by functions (SCF's and Lambda's layers).

A layer version is immutable once published. Its ``python/`` folder (else its root) goes on
the import path of every function that lists it, after the function's own code and
environment, in the order the function lists its layers (the first one wins when two hold
the same module). A ``requirements.txt`` at its root is installed like a function's, into a
shared environment that follows the layer's folder on the path; the version is
``pending`` (SCF's ``Publishing``) until that is done. At most :data:`MAX_LAYERS` per
function; a version that a function or published version uses cannot be deleted.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from cumulo.deps.environments import Environments
from cumulo.engine import validation as v
from cumulo.errors import FunctionUnavailable, InvalidParameter
from cumulo.models import BuildTarget, Environment, FunctionState, LayerRef, LayerVersion
from cumulo.runtime.codecache import CodeCache
from cumulo.settings import Settings
from cumulo.store.base import EnvironmentStore, FunctionStore, LayerStore

MAX_LAYERS = 5
PUBLISH_FIELDS = frozenset({"code", "description", "compatible_runtimes", "license_info"})

#: Starts the build of a layer version that has a ``requirements.txt``.
StartBuild = Callable[[LayerVersion, BuildTarget], Awaitable[LayerVersion]]


class Layers:
    def __init__(
        self,
        store: LayerStore,
        code_store: FunctionStore,
        env_store: EnvironmentStore,
        codes: CodeCache,
        environments: Environments,
        settings: Settings,
    ) -> None:
        self._store = store
        self._code_store = code_store
        self._env_store = env_store
        self._codes = codes
        self._environments = environments
        self._settings = settings
        self._start_build: StartBuild | None = None
        #: Versions are immutable: what a run needs of one is read once.
        self._versions: dict[tuple[str, int], LayerVersion] = {}

    def on_publish(self, start_build: StartBuild) -> None:
        self._start_build = start_build

    async def publish(self, name: str, body: Mapping[str, Any]) -> LayerVersion:
        """Publish the next version of layer ``name`` from ``body`` (``code`` as for a
        function, ``description``, ``compatible_runtimes``, ``license_info``). Raises
        ``InvalidParameter``, ``LimitExceeded``."""
        name = v.check_name(name, "layer_name")
        unknown = sorted(set(body) - PUBLISH_FIELDS)
        if unknown:
            raise InvalidParameter(
                f"unknown field(s) {', '.join(unknown)}; allowed: "
                f"{', '.join(sorted(PUBLISH_FIELDS))}",
                code="UnknownParameter",
            )
        if "code" not in body:
            raise InvalidParameter(
                'code is required: {"zip_base64": "..."} or {"files": {...}}', field="code"
            )
        package = v.package_code(body["code"], self._settings)
        runtimes = body.get("compatible_runtimes", [])
        if not isinstance(runtimes, list) or not all(isinstance(r, str) for r in runtimes):
            raise InvalidParameter(
                "compatible_runtimes must be a list of strings", field="compatible_runtimes"
            )
        license_info = body.get("license_info", "")
        if not isinstance(license_info, str) or len(license_info) > v.DESCRIPTION_MAX:
            raise InvalidParameter("license_info must be a short string", field="license_info")
        await self._code_store.save_code(package.sha256, package.zip_bytes)
        layer = await self._store.publish_layer(
            LayerVersion(
                name=name,
                version=0,
                code_sha256=package.sha256,
                code_size_bytes=package.size_bytes,
                unpacked_bytes=package.unpacked_bytes,
                created_at=time.time(),
                description=v.check_description(body.get("description", "")),
                compatible_runtimes=tuple(runtimes),
                license_info=license_info,
                state=FunctionState.PENDING if package.has_requirements else FunctionState.ACTIVE,
            )
        )
        if package.has_requirements and self._start_build is not None:
            target = BuildTarget(package.sha256, package.size_bytes)
            layer = await self._start_build(layer, target)
        return layer

    async def get(self, name: str, version: int) -> LayerVersion:
        """Raises ``NotFound`` (``ResourceNotFound.LayerVersion``)."""
        return await self._store.get_layer_version(name, version)

    async def list_versions(self, name: str | None = None) -> list[LayerVersion]:
        return await self._store.list_layer_versions(name)

    async def latest(self) -> list[LayerVersion]:
        """The newest live version of each layer, by name."""
        newest: dict[str, LayerVersion] = {}
        for layer in await self._store.list_layer_versions():
            newest[layer.name] = layer
        return list(newest.values())

    async def delete(self, name: str, version: int) -> None:
        """Raises ``NotFound``; ``Conflict`` (``ResourceInUse.Layer``) while in use."""
        await self._store.delete_layer_version(name, version)
        self._versions.pop((name, version), None)

    async def check_refs(self, raw: object) -> tuple[LayerRef, ...]:
        """A function's ``layers`` field (``[{"name", "version"}]``, at most five, each
        version published and active). Raises ``InvalidParameter``, ``NotFound``,
        ``FunctionUnavailable`` (a version still installing or failed)."""
        if not isinstance(raw, list) or len(raw) > MAX_LAYERS:
            raise InvalidParameter(
                f'layers must be a list of at most {MAX_LAYERS} {{"name", "version"}}',
                field="layers",
            )
        refs: list[LayerRef] = []
        for item in raw:
            if (
                not isinstance(item, Mapping)
                or set(item) != {"name", "version"}
                or not isinstance(item["name"], str)
                or isinstance(item["version"], bool)
                or not isinstance(item["version"], int)
            ):
                raise InvalidParameter(
                    'each layer is {"name": "...", "version": N}', field="layers"
                )
            ref = LayerRef(item["name"], item["version"])
            if ref in refs:
                raise InvalidParameter(
                    f"layer {ref.name} {ref.version} is listed twice", field="layers"
                )
            layer = await self._store.get_layer_version(ref.name, ref.version)
            if layer.state is not FunctionState.ACTIVE:
                why = (
                    "is still installing its requirements; retry"
                    if layer.state is FunctionState.PENDING
                    else f"failed to build: {layer.state_reason}"
                )
                raise FunctionUnavailable(
                    f"layer {ref.name} version {ref.version} {why}",
                    code="ResourceUnavailable.Layer",
                )
            refs.append(ref)
        return tuple(refs)

    async def sizes(self, refs: Sequence[LayerRef]) -> dict[str, int]:
        """What each layer takes unpacked (its files, and its environment), by label."""
        parts: dict[str, int] = {}
        for ref in refs:
            layer = await self._version(ref)
            parts[f"layer {ref.name}:{ref.version}"] = layer.unpacked_bytes
            if layer.deps_key:
                env = await self._env_store.get_environment(layer.deps_key)
                parts[f"layer {ref.name}:{ref.version} environment"] = env.size_bytes if env else 0
        return parts

    async def site_dirs(self, refs: Sequence[LayerRef]) -> tuple[Path, ...]:
        """The import-path folders of these layers, in order: each one's ``python/`` (else
        its root), then its environment. Unpacks (and installs, on a node that lacks it)
        what this node has not yet."""
        dirs: list[Path] = []
        for ref in refs:
            layer = await self._version(ref)
            root = await self._codes.path(layer.code_sha256)
            python = root / "python"
            dirs.append(python if python.is_dir() else root)
            if layer.deps_key:
                dirs.append(await self._environments.path(layer.deps_key))
        return tuple(dirs)

    async def environment(self, key: str) -> Environment | None:
        return await self._env_store.get_environment(key)

    def forget(self, name: str, version: int) -> None:
        """A version's state changed (its build ended): read it again."""
        self._versions.pop((name, version), None)

    async def _version(self, ref: LayerRef) -> LayerVersion:
        key = (ref.name, ref.version)
        layer = self._versions.get(key)
        if layer is None:
            layer = await self._store.get_layer_version(ref.name, ref.version)
            if layer.state is FunctionState.ACTIVE:
                self._versions[key] = layer
        return layer
