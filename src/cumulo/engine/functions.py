"""Functions: create, read, change, replace code, delete, with validation; and the cache the
admission hot path reads them from.

Code with a ``requirements.txt`` (unless ``install_dependency`` is false) is not served
until its build succeeded (:mod:`cumulo.engine.builds`): a new function is ``pending`` and
has no code to run yet; a function whose code is replaced keeps serving the old code while
the new one builds. Code without one is served at once. Every write of a function's row is
fenced on its revision and retried when another write came first, so a change of config
never undoes a build that applied meanwhile.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import replace
from typing import Any

from cumulo.engine import validation as v
from cumulo.engine.builds import Builder
from cumulo.engine.layers import Layers
from cumulo.errors import AsyncRunLocked, FunctionChanged, FunctionUnavailable, InvalidParameter
from cumulo.models import Build, BuildTarget, Function, FunctionState, LayerRef
from cumulo.settings import Settings
from cumulo.store.base import FunctionStore

DEFAULT_HANDLER = "index.main_handler"
DEFAULT_TIMEOUT_S = 3.0
DEFAULT_ASYNC_RUN_TIMEOUT_S = 86_400.0
DEFAULT_MEMORY_MB = 128
DEFAULT_RETRY_ATTEMPTS = 2
DEFAULT_MAX_EVENT_AGE_S = 6 * 3600.0

CREATE_FIELDS = frozenset(
    {
        "name", "handler", "code", "timeout_s", "memory_mb", "environment", "async_run",
        "max_qps", "max_concurrency", "retry_attempts", "max_event_age_s", "description",
        "layers", "install_dependency",
    }
)  # fmt: skip
PATCH_FIELDS = CREATE_FIELDS - {"name", "code", "install_dependency"}
#: Attempts at a write that keeps losing to concurrent writes of the same function.
_WRITE_ATTEMPTS = 20

#: Seconds a cached function may be stale when another node changed it.
CACHE_TTL_S = 2.0

#: Called after a function was created, changed or went away (the dispatcher learns its
#: limits, the runtime drops stale instances).
OnChange = Callable[[Function], Awaitable[None]]


class Functions:
    def __init__(
        self, store: FunctionStore, settings: Settings, layers: Layers, builder: Builder
    ) -> None:
        self._store = store
        self._settings = settings
        self._layers = layers
        self._builder = builder
        self._cache: dict[tuple[str, str], tuple[float, Function]] = {}
        self._listeners: list[OnChange] = []

    def on_change(self, listener: OnChange) -> None:
        self._listeners.append(listener)

    async def changed(self, fn: Function) -> None:
        """Tell the listeners (and the cache) that ``fn`` is as given now (a build applied)."""
        self._remember(fn)
        for listener in self._listeners:
            await listener(fn)

    async def create(self, namespace: str, body: Mapping[str, Any]) -> Function:
        _reject_unknown(body, CREATE_FIELDS)
        name = v.check_name(body.get("name"))
        async_run = body.get("async_run", False)
        if not isinstance(async_run, bool):
            raise InvalidParameter("async_run must be true or false", field="async_run")
        if "code" not in body:
            raise InvalidParameter(
                'code is required: {"files": {"index.py": "..."}} or {"zip_base64": "..."}',
                field="code",
            )
        package = v.package_code(body["code"], self._settings)
        install = body.get("install_dependency", True)
        if not isinstance(install, bool):
            raise InvalidParameter(
                "install_dependency must be true or false", field="install_dependency"
            )
        default_timeout = DEFAULT_ASYNC_RUN_TIMEOUT_S if async_run else DEFAULT_TIMEOUT_S
        default_timeout = min(default_timeout, self._settings.max_async_timeout_s)
        now = time.time()
        fn = Function(
            id=str(uuid.uuid4()),
            namespace=namespace,
            name=name,
            handler=DEFAULT_HANDLER,
            code_sha256=package.sha256,
            code_size_bytes=package.size_bytes,
            timeout_s=default_timeout,
            memory_mb=DEFAULT_MEMORY_MB,
            async_run=async_run,
            max_qps=self._settings.default_max_qps,
            max_concurrency=None,
            retry_attempts=DEFAULT_RETRY_ATTEMPTS,
            max_event_age_s=DEFAULT_MAX_EVENT_AGE_S,
            environment={},
            created_at=now,
            updated_at=now,
        )
        fn = replace(
            await self._apply_layers(self._apply(fn, body), body, package),
            install_dependency=install,
        )
        v.check_handler_in_package(fn.handler, package)
        build = None
        if package.has_requirements and install:
            target = BuildTarget(package.sha256, package.size_bytes, fn.handler, install)
            build = self._builder.new_function_build(fn, target)
            fn = replace(fn, state=FunctionState.PENDING, ready=False, build_id=build.id)
        await self._store.save_code(package.sha256, package.zip_bytes)
        if build is not None:
            await self._builder.record(build)
        try:
            created = await self._store.create_function(fn)
        except BaseException:
            if build is not None:
                await self._builder.drop(build)
            raise
        if build is not None:
            self._builder.launch(build)
        self._remember(created)
        for listener in self._listeners:
            await listener(created)
        return created

    async def get(self, namespace: str, name: str) -> Function:
        fn = await self._store.get_function(namespace, name)
        self._remember(fn)
        return fn

    async def get_cached(self, namespace: str, name: str) -> Function:
        """The hot path's read: from memory when fresh (at most ``CACHE_TTL_S`` old)."""
        hit = self._cache.get((namespace, name))
        if hit is not None and time.monotonic() - hit[0] < CACHE_TTL_S:
            return hit[1]
        return await self.get(namespace, name)

    async def list(self, namespace: str) -> list[Function]:
        return await self._store.list_functions(namespace)

    async def patch(self, namespace: str, name: str, body: Mapping[str, Any]) -> Function:
        _reject_unknown(body, PATCH_FIELDS, hint="name and code cannot be changed here")

        async def change(current: Function) -> Function:
            if "async_run" in body and body["async_run"] != current.async_run:
                raise AsyncRunLocked(
                    "async_run is chosen when a function is created and can never change; "
                    "create a new function to switch async execution "
                    + ("off" if current.async_run else "on")
                )
            if "handler" in body and current.state is FunctionState.PENDING:
                raise FunctionUnavailable(
                    f"function {name} is building new code; change the handler with that "
                    "code's upload (PUT .../code?handler=), or once the build ended"
                )
            changed = self._apply(current, body)
            if "handler" in body or "layers" in body:
                zip_bytes = await self._store.load_code(current.code_sha256)
                package = v.check_zip(zip_bytes, self._settings)
                v.check_handler_in_package(changed.handler, package)
                changed = await self._apply_layers(changed, body, package)
            return changed

        return await self._save(namespace, name, change)

    async def put_code(
        self,
        namespace: str,
        name: str,
        package: v.CodePackage,
        handler: str | None,
        install_dependency: bool = True,
    ) -> Function:
        """Replace the code. With a ``requirements.txt`` to install, the new code is built
        first (the answer is ``pending``, the old code serving meanwhile); otherwise it
        serves at once."""
        await self._store.save_code(package.sha256, package.zip_bytes)
        launched: list[Build] = []

        async def change(current: Function) -> Function:
            new_handler = v.check_handler(handler) if handler else current.handler
            v.check_handler_in_package(new_handler, package)
            await self._check_size(package, current.layers)
            if package.has_requirements and install_dependency:
                target = BuildTarget(
                    package.sha256, package.size_bytes, new_handler, install_dependency
                )
                build = self._builder.new_function_build(current, target)
                await self._builder.record(build)
                launched[:] = [build]
                return replace(current, state=FunctionState.PENDING, state_reason="",
                               build_id=build.id)  # fmt: skip
            launched.clear()
            return replace(
                current,
                handler=new_handler,
                code_sha256=package.sha256,
                code_size_bytes=package.size_bytes,
                install_dependency=install_dependency,
                deps_key=None,
                state=FunctionState.ACTIVE,
                state_reason="",
                ready=True,
                build_id=None,
            )

        try:
            saved = await self._save(
                namespace, name, change, on_lost=_dropping(self._builder, launched)
            )
        except BaseException:
            for build in launched:
                await self._builder.drop(build)
            raise
        for build in launched:
            self._builder.launch(build)
        return saved

    async def delete(self, namespace: str, name: str) -> None:
        fn = await self._store.get_function(namespace, name)
        await self._store.delete_function(namespace, name)
        self._cache.pop((namespace, name), None)
        for listener in self._listeners:
            await listener(fn)

    async def _save(
        self,
        namespace: str,
        name: str,
        change: Callable[[Function], Awaitable[Function]],
        on_lost: Callable[[], Awaitable[None]] | None = None,
    ) -> Function:
        """Read the function, ``change`` it, write it fenced on its revision; again from the
        read when another write came first (after ``on_lost``)."""
        for _ in range(_WRITE_ATTEMPTS):
            current = await self._store.get_function(namespace, name)
            changed = await change(current)
            try:
                saved = await self._store.update_function(
                    replace(changed, revision=current.revision + 1, updated_at=time.time()),
                    current.revision,
                )
            except FunctionChanged:
                if on_lost is not None:
                    await on_lost()
                continue
            self._remember(saved)
            for listener in self._listeners:
                await listener(saved)
            return saved
        raise FunctionChanged(f"function {name!r} keeps changing under this write; retry")

    async def _apply_layers(
        self, fn: Function, body: Mapping[str, Any], package: v.CodePackage
    ) -> Function:
        """``fn`` with the body's ``layers`` (if any), checked, and its size checked."""
        layers = await self._layers.check_refs(body["layers"]) if "layers" in body else fn.layers
        await self._check_size(package, layers, fn.deps_key)
        return replace(fn, layers=layers)

    async def _check_size(
        self, package: v.CodePackage, layers: tuple[LayerRef, ...], deps_key: str | None = None
    ) -> None:
        """Raise ``LimitExceeded`` when code and layers (and a known environment) together
        pass the limit; an environment still to be installed is checked by its build."""
        parts = {"code": package.unpacked_bytes, **await self._layers.sizes(layers)}
        if deps_key:
            env = await self._layers.environment(deps_key)
            if env is not None:
                parts["environment"] = env.size_bytes
        v.check_function_size(parts, self._settings)

    def _remember(self, fn: Function) -> None:
        self._cache[(fn.namespace, fn.name)] = (time.monotonic(), fn)

    def _apply(self, fn: Function, body: Mapping[str, Any]) -> Function:
        """Validate the config fields present in ``body`` and return ``fn`` with them."""
        s = self._settings
        changes: dict[str, Any] = {}
        if "handler" in body:
            changes["handler"] = v.check_handler(body["handler"])
        if "timeout_s" in body:
            changes["timeout_s"] = v.check_timeout(
                body["timeout_s"], async_run=fn.async_run, settings=s
            )
        if "memory_mb" in body:
            changes["memory_mb"] = v.check_int(
                body["memory_mb"], "memory_mb", v.MEMORY_MIN_MB, v.MEMORY_MAX_MB
            )
        if "environment" in body:
            changes["environment"] = v.check_environment(body["environment"], s)
        if "max_qps" in body:
            changes["max_qps"] = v.check_int(body["max_qps"], "max_qps", *v.MAX_QPS_RANGE)
        if "max_concurrency" in body:
            value = body["max_concurrency"]
            changes["max_concurrency"] = (
                None if value is None else v.check_int(value, "max_concurrency", 1, s.max_instances)
            )
        if "retry_attempts" in body:
            changes["retry_attempts"] = v.check_int(
                body["retry_attempts"], "retry_attempts", 0, v.RETRY_MAX
            )
        if "max_event_age_s" in body:
            value = body["max_event_age_s"]
            low, high = v.MAX_EVENT_AGE_RANGE_S
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise InvalidParameter("max_event_age_s must be a number", field="max_event_age_s")
            if not low <= value <= high:
                raise InvalidParameter(
                    f"max_event_age_s {value} is out of range: {low:g} to {high:g} seconds",
                    field="max_event_age_s",
                )
            changes["max_event_age_s"] = float(value)
        if "description" in body:
            changes["description"] = v.check_description(body["description"])
        return replace(fn, **changes)


def _dropping(builder: Builder, builds: list[Build]) -> Callable[[], Awaitable[None]]:
    """What to do when a write that recorded ``builds`` lost to another: end them."""

    async def drop() -> None:
        for build in builds:
            await builder.drop(build)
        builds.clear()

    return drop


def _reject_unknown(body: Mapping[str, Any], allowed: frozenset[str], hint: str = "") -> None:
    unknown = sorted(set(body) - allowed)
    if unknown:
        extra = f" ({hint})" if hint else ""
        raise InvalidParameter(
            f"unknown field(s) {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}{extra}",
            code="UnknownParameter",
        )
