"""Builds: a function's (or layer version's) ``requirements.txt`` made ready to run, in the
background, with a log that can be followed live.

A build checks the package's requirements (:mod:`cumulo.deps.requirements`), resolves them
into a lock, gets the environment of that lock (installed once, shared: see
:mod:`cumulo.deps.environments`), checks the function's size against the server's limit and
then, in one fenced write, makes the new code the function's serving code (``active``). A
failure records the installer's own words as the function's ``state_reason``, and a
function that already had code keeps serving it. Only the function's latest build may apply
(a newer upload supersedes a running build).

A running build is leased to its node like a running invocation: renewed while it runs,
taken over by another node (or by the next start, on SQLite) when its node stopped. Its log
lines are stored and published under the build's id, like an invocation's.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import replace

import orjson

from cumulo.bus.base import Bus
from cumulo.deps import requirements
from cumulo.deps.environments import Environments
from cumulo.deps.installer import InstallError
from cumulo.engine import validation as v
from cumulo.engine.layers import Layers
from cumulo.engine.logs import LogCollector, LogWriter, last_seq, subject
from cumulo.errors import CumuloError
from cumulo.models import (
    Build,
    BuildStatus,
    BuildTarget,
    Function,
    FunctionState,
    LayerVersion,
    LogStream,
)
from cumulo.runtime.codecache import CodeCache
from cumulo.settings import Settings
from cumulo.store.base import Store

log = logging.getLogger(__name__)

#: Called with a function whose build applied (it may have become active, or failed).
OnApplied = Callable[[Function], Awaitable[None]]


class BuildFailed(Exception):
    """Why a build failed, in words for the function's ``state_reason``."""


class Builder:
    def __init__(
        self,
        *,
        store: Store,
        bus: Bus,
        codes: CodeCache,
        environments: Environments,
        layers: Layers,
        logs: LogCollector,
        settings: Settings,
    ) -> None:
        self._store = store
        self._bus = bus
        self._codes = codes
        self._environments = environments
        self._layers = layers
        self._logs = logs
        self._s = settings
        self._node = settings.node_id
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._listeners: list[OnApplied] = []
        self._loop_task: asyncio.Task[None] | None = None

    def on_applied(self, listener: OnApplied) -> None:
        self._listeners.append(listener)

    # -- starting ------------------------------------------------------------------------

    def new_function_build(self, fn: Function, target: BuildTarget) -> Build:
        """The record of a build of ``target`` for ``fn`` (not stored yet)."""
        now = time.time()
        return Build(
            id=str(uuid.uuid4()),
            status=BuildStatus.BUILDING,
            target=target,
            created_at=now,
            function_id=fn.id,
            namespace=fn.namespace,
            function_name=fn.name,
            node_id=self._node,
            lease_expires_at=now + self._s.lease_s,
        )

    async def record(self, build: Build) -> None:
        """Store ``build`` before the function points at it: a node that stops before
        :meth:`launch` leaves a build that another node (or the next start) takes over."""
        await self._store.create_build(build)

    def launch(self, build: Build) -> None:
        """Run a recorded build in the background."""
        self._run_in_background(build)

    async def drop(self, build: Build) -> None:
        """A recorded build that no function points at (its write lost a race): end it."""
        gone = replace(build, status=BuildStatus.FAILED, reason="superseded before it ran",
                       finished_at=time.time())  # fmt: skip
        await self._store.finish_build(gone, self._node)

    async def start_layer_build(self, layer: LayerVersion, target: BuildTarget) -> LayerVersion:
        now = time.time()
        build = Build(
            id=str(uuid.uuid4()),
            status=BuildStatus.BUILDING,
            target=target,
            created_at=now,
            layer_name=layer.name,
            layer_version=layer.version,
            node_id=self._node,
            lease_expires_at=now + self._s.lease_s,
        )
        await self._store.create_build(build)
        self._run_in_background(build)
        return replace(layer, build_id=build.id)

    def _run_in_background(self, build: Build) -> None:
        task = asyncio.create_task(self._run(build), name=f"build-{build.id}")
        self._tasks[build.id] = task
        task.add_done_callback(lambda _: self._tasks.pop(build.id, None))

    # -- life cycle ----------------------------------------------------------------------

    async def start(self) -> None:
        """Take over builds a stopped node left behind, and keep leases and the environment
        sweep going."""
        await self._adopt_orphans()
        self._loop_task = asyncio.create_task(self._maintain(), name="builds")

    async def stop(self) -> None:
        """Stop the builds running here (they stay ``building``: the next owner redoes
        them)."""
        tasks = [t for t in (self._loop_task, *self._tasks.values()) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _maintain(self) -> None:
        interval_s = self._s.lease_s / 3
        sweep_every_s = min(max(self._s.env_gc_grace_s / 4, 0.5), 300.0)
        next_sweep = time.monotonic() + sweep_every_s
        while True:
            await asyncio.sleep(min(interval_s, sweep_every_s))
            try:
                if self._tasks:
                    until = time.time() + self._s.lease_s
                    await self._store.renew_builds(self._node, list(self._tasks), until)
                await self._adopt_orphans()
                if time.monotonic() >= next_sweep:
                    next_sweep = time.monotonic() + sweep_every_s
                    await self._environments.sweep(self._s.env_gc_grace_s)
            except Exception:
                log.exception("build upkeep failed; trying again later")

    async def _adopt_orphans(self) -> None:
        now = time.time()
        for build in await self._store.take_orphaned_builds(self._node, now, now + self._s.lease_s):
            if build.id not in self._tasks:
                log.warning("taking over build %s left by a stopped node", build.id)
                self._run_in_background(build)

    # -- running -------------------------------------------------------------------------

    async def _run(self, build: Build) -> None:
        writer = self._logs.open(build.id, await last_seq(self._store, build.id))
        started = time.monotonic()
        try:
            done = await self._build(build, writer)
        except BuildFailed as exc:
            done = replace(build, status=BuildStatus.FAILED, reason=str(exc))
            writer.platform(f"build failed: {exc}")
        except asyncio.CancelledError:
            writer.platform("build interrupted: the node is stopping; it will be redone")
            await writer.flushed()
            raise
        except Exception as exc:
            log.exception("build %s failed inside the platform", build.id)
            done = replace(build, status=BuildStatus.FAILED, reason=f"internal error: {exc}")
            writer.platform(f"build failed: internal error: {exc}")
        done = replace(
            done,
            finished_at=time.time(),
            duration_ms=round((time.monotonic() - started) * 1000, 1),
        )
        if done.status is BuildStatus.SUCCEEDED:
            writer.platform(f"build succeeded in {(time.monotonic() - started):.1f} s")
        await writer.flushed()
        await self._record(done, writer)
        self._logs.forget(build.id)

    async def _build(self, build: Build, writer: LogWriter) -> Build:
        target = build.target
        owner = (
            f"layer {build.layer_name} version {build.layer_version}"
            if build.layer_name
            else f"{build.namespace}/{build.function_name}"
        )
        writer.platform(f"build {build.id} of {owner}: code {target.code_sha256[:12]}")
        try:
            code_dir = await self._codes.path(target.code_sha256)
        except CumuloError as exc:
            raise BuildFailed(exc.message) from exc
        try:
            checked = await asyncio.to_thread(
                requirements.check, code_dir, allow_index_options=self._s.allow_index_options
            )
        except requirements.RequirementsError as exc:
            raise BuildFailed(str(exc)) from exc
        if checked is None or not target.install_dependency:
            writer.platform("no requirements.txt to install")
            return replace(build, status=BuildStatus.SUCCEEDED)

        def out(line: str) -> None:
            writer(LogStream.STDERR, line)

        files = ", ".join(checked.files)
        writer.platform(f"resolving {checked.count} requirement(s) from {files}")
        try:
            lock = await self._environments.installer.resolve(
                checked.path, cwd=code_dir, on_line=out
            )
            pins = lock.splitlines()
            writer.platform(f"resolved {len(pins)} package(s): {', '.join(pins)}")
            # The files' own index options go with the pins, so that any node installs the
            # set from where it was resolved.
            options = "".join(f"{option}\n" for option in checked.sources)
            env, reused = await self._environments.ensure(
                options + lock, sources=self._sources(checked, target), cwd=code_dir,
                on_line=out,
            )  # fmt: skip
        except InstallError as exc:
            raise BuildFailed(str(exc)) from exc
        if reused:
            writer.platform(
                f"environment {env.key[:12]} is installed already "
                f"({v.megabytes(env.size_bytes)}): nothing to install"
            )
        else:
            writer.platform(
                f"installed {len(env.packages)} package(s), {v.megabytes(env.size_bytes)}, "
                f"in {env.build_ms / 1000:.1f} s (environment {env.key[:12]})"
            )
        return replace(
            build,
            status=BuildStatus.SUCCEEDED,
            deps_key=env.key,
            reused=reused,
            installed_bytes=env.size_bytes,
            packages=env.packages,
        )

    def _sources(self, checked: requirements.CheckedRequirements, target: BuildTarget) -> str:
        """Where the packages of this build come from, besides the files' own index options
        (which are in the lock): the server's indexes, and the package itself when it
        installs from its own files (then no other package shares its environment)."""
        parts = self._environments.installer.source_args()
        if checked.local:
            parts.append(f"package {target.code_sha256}")
        return "\n".join(parts)

    async def _record(self, done: Build, writer: LogWriter) -> None:
        """Write the build's end, and apply it to its function or layer version."""
        if done.layer_name is not None and done.layer_version is not None:
            ok = done.status is BuildStatus.SUCCEEDED
            await self._store.update_layer_state(
                done.layer_name,
                done.layer_version,
                FunctionState.ACTIVE if ok else FunctionState.FAILED,
                done.reason,
                done.deps_key,
            )
            self._layers.forget(done.layer_name, done.layer_version)
        elif done.function_id is not None:
            done = await self._apply(done, writer)
        await writer.flushed()
        if not await self._store.finish_build(done, self._node):
            log.warning("build %s: its lease was taken over; not recorded here", done.id)
        payload = orjson.dumps({"kind": "status", "status": done.status.value})
        try:
            await self._bus.publish(subject(done.id), payload)
        except Exception:
            log.exception("could not publish the end of build %s", done.id)

    async def _apply(self, done: Build, writer: LogWriter) -> Build:
        function_id = done.function_id
        assert function_id is not None
        now = time.time()
        if done.status is BuildStatus.SUCCEEDED:
            try:
                await self._check_size(done)
            except CumuloError as exc:
                writer.platform(f"build failed: {exc.code}: {exc.message}")
                done = replace(done, status=BuildStatus.FAILED, reason=exc.message)
        if done.status is BuildStatus.SUCCEEDED:
            target = done.target
            changes: dict[str, object] = {
                "code_sha256": target.code_sha256,
                "code_size_bytes": target.code_size_bytes,
                "handler": target.handler,
                "install_dependency": target.install_dependency,
                "deps_key": done.deps_key,
                "state": FunctionState.ACTIVE.value,
                "state_reason": "",
                "ready": True,
                "updated_at": now,
            }
        else:
            changes = {
                "state": FunctionState.FAILED.value,
                "state_reason": done.reason,
                "updated_at": now,
            }
        fn = await self._store.apply_build(function_id, done.id, self._node, changes)
        if fn is None:
            writer.platform("a newer upload of this function's code superseded this build")
            return done
        if fn.state is FunctionState.FAILED and fn.ready:
            writer.platform("the function keeps serving its last good code")
        elif fn.state is FunctionState.FAILED:
            await self._settle_waiting(fn, done.reason)
        for listener in self._listeners:
            await listener(fn)
        return done

    async def _settle_waiting(self, fn: Function, reason: str) -> None:
        """The first build failed: invocations that waited for it have no code to run."""
        message = f"the function's build failed, so there is no code to run this: {reason}"
        error = {"type": "FunctionBuildFailed", "message": message, "traceback": ""}
        for request_id in await self._store.settle_queued(fn.id, error, time.time()):
            writer = self._logs.open(request_id)
            writer.platform(message)
            await writer.flushed()
            self._logs.forget(request_id)
            payload = orjson.dumps({"kind": "status", "status": "failed"})
            await self._bus.publish(subject(request_id), payload)

    async def _check_size(self, done: Build) -> None:
        assert done.function_id is not None
        fn = await self._store.get_function_by_id(done.function_id)
        zip_bytes = await self._store.load_code(done.target.code_sha256)
        package = v.check_zip(zip_bytes, self._s)
        parts = {"code": package.unpacked_bytes}
        if done.installed_bytes:
            parts["environment"] = done.installed_bytes
        parts.update(await self._layers.sizes(fn.layers))
        v.check_function_size(parts, self._s)
