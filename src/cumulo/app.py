"""Builds everything from one ``Settings`` and wires it: store, bus, pool, engine, HTTP.
No globals: the one ``Cumulo`` object lives on the Starlette app's state."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import fcntl
import gc
import logging
import os
import secrets
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import IO

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Mount, Route

from cumulo.api import builds as build_routes
from cumulo.api import code as code_routes
from cumulo.api import functions as function_routes
from cumulo.api import invocations as invocation_routes
from cumulo.api import keys as key_routes
from cumulo.api import layers as layer_routes
from cumulo.api import ops as ops_routes
from cumulo.api import triggers as trigger_routes
from cumulo.api import versions as version_routes
from cumulo.api.fastpath import InvokeFastPath
from cumulo.api.http import check_token, error_response
from cumulo.api.scf import endpoint as scf_routes
from cumulo.bus.base import Bus
from cumulo.bus.local import LocalBus
from cumulo.bus.nats import NatsBus
from cumulo.console import console_app
from cumulo.deps import indexes
from cumulo.deps.environments import Environments
from cumulo.deps.installer import UvInstaller, find_uv
from cumulo.engine.admission import Admission, GroupCommit
from cumulo.engine.builds import Builder
from cumulo.engine.dispatcher import Dispatcher
from cumulo.engine.functions import Functions
from cumulo.engine.keys import Keys
from cumulo.engine.layers import Layers
from cumulo.engine.limits import QpsLimiter
from cumulo.engine.logs import LogCollector, last_seq
from cumulo.engine.recovery import Recovery
from cumulo.engine.triggers import Triggers
from cumulo.engine.versions import Versions
from cumulo.errors import CumuloError, InvalidParameter, NotFound
from cumulo.metrics import Metrics
from cumulo.models import Function, Invocation, Status, TerminateMode
from cumulo.runtime import interpreter as clean
from cumulo.runtime.codecache import CodeCache
from cumulo.runtime.pool import ProcessPool
from cumulo.secretbox import SecretBox
from cumulo.settings import Settings
from cumulo.store.sql import SqlStore
from cumulo.triggers.scheduler import TimerScheduler

log = logging.getLogger(__name__)

MIN_ADMIN_TOKEN = 16


class Cumulo:
    """The node: every component, built from settings, started and stopped together."""

    def __init__(self, settings: Settings, token: str) -> None:
        # Instances chdir into their own folders: every path handed down must be absolute.
        settings = settings.with_changes(data_dir=settings.data_dir.resolve())
        self.settings = settings
        self.token = token
        self.store = SqlStore(settings.resolved_store_url)
        self.bus: Bus = make_bus(settings.bus_url)
        self.metrics = Metrics()
        self.interpreter = clean.locate(settings.data_dir / "runtime" / "python")
        self.pool = ProcessPool(
            work_dir=settings.data_dir / "instances",
            max_instances=settings.max_instances,
            instance_idle_s=settings.instance_idle_s,
            interpreter=self.interpreter,
        )
        self.codes = CodeCache(settings.data_dir / "code", self.store.load_code)
        self.installer = UvInstaller(
            uv=find_uv(),
            python=self.interpreter.python,
            indexes=indexes.IndexConfig(),
            cache_dir=settings.deps_cache_dir or default_uv_cache(),
            timeout_s=settings.install_timeout_s,
            home=settings.data_dir / "cache" / "installer-home",
        )
        self.environments = Environments(
            root=settings.data_dir / "envs",
            store=self.store,
            installer=self.installer,
            interpreter_tag=self.interpreter.tag,
            node_id=settings.node_id,
            lease_s=settings.lease_s,
        )
        self.box = secret_box(settings)
        self.keys = Keys(self.store, self.store, self.box)
        self.logs = LogCollector(
            self.store,
            self.bus,
            flush_interval_s=settings.log_flush_interval_s,
            cap_bytes=settings.max_log_bytes_per_invocation,
        )
        self.layers = Layers(
            self.store, self.store, self.store, self.codes, self.environments, settings
        )
        self.builder = Builder(
            store=self.store,
            bus=self.bus,
            codes=self.codes,
            environments=self.environments,
            layers=self.layers,
            logs=self.logs,
            settings=settings,
        )
        self.layers.on_publish(self.builder.start_layer_build)
        self.functions = Functions(self.store, settings, self.layers, self.builder)
        self.builder.on_applied(self.functions.changed)
        self.versions = Versions(self.store, self.functions)
        self.dispatcher = Dispatcher(
            settings=settings,
            store=self.store,
            bus=self.bus,
            pool=self.pool,
            functions=self.functions,
            versions=self.versions,
            codes=self.codes,
            environments=self.environments,
            layers=self.layers,
            logs=self.logs,
            metrics=self.metrics,
        )
        self.commits = GroupCommit(self.store)
        self.admission = Admission(
            settings=settings,
            functions=self.functions,
            limiter=QpsLimiter(),
            commits=self.commits,
            dispatcher=self.dispatcher,
            metrics=self.metrics,
        )
        self.recovery = Recovery(self.store, self.logs, settings)
        self.triggers = Triggers(self.store, self.functions, self.versions)
        self.timers = TimerScheduler(self.triggers, self.admission)
        self.functions.on_change(self._function_changed)
        self._lock: IO[str] | None = None

    def authorize(self, request: Request) -> None:
        check_token(request, self.token)

    async def start(self) -> None:
        self.settings.data_dir.mkdir(parents=True, exist_ok=True)
        if self.settings.store_url is None:
            self._lock = lock_data_dir(self.settings.data_dir)
        await asyncio.to_thread(clean.ensure, self.interpreter)
        self.installer.indexes = await asyncio.to_thread(index_settings, self.settings)
        log.info("dependencies: uv, %s", self.installer.indexes.describe())
        if isinstance(self.bus, NatsBus):
            await self.bus.connect()  # before anything publishes or subscribes
        await self.store.open()
        self.logs.start()
        settled = await self.recovery.recover_once(at_start=True)
        if settled:
            log.warning("settled %d invocations lost by the previous run", len(settled))
        self.commits.start()
        await self.builder.start()
        await self.dispatcher.start()
        self.timers.start()
        self.recovery.start()
        if self.settings.examples_dir is not None:
            await self.deploy_examples(self.settings.examples_dir)

    async def stop(self) -> None:
        await self.timers.stop()
        await self.builder.stop()
        await self.recovery.stop()
        await self.dispatcher.stop()
        await self.commits.stop()
        await self.pool.close()
        await self.logs.close()
        await self.bus.close()
        await self.store.close()
        if self._lock is not None:
            self._lock.close()

    async def terminate(self, namespace: str, request_id: str, mode: TerminateMode) -> Invocation:
        now = time.time()
        inv = await self.store.request_terminate(namespace, request_id, mode, now)
        if inv.status is Status.RUNNING:
            await self.dispatcher.terminate(inv, mode)
        elif inv.status is Status.TERMINATED and inv.finished_at == now:
            # This call ended it while queued (first run, or waiting for a retry).
            writer = self.logs.open(request_id, await last_seq(self.store, request_id))
            writer.platform("terminated by request before it started")
            await writer.flushed()
            self.logs.forget(request_id)
            await self.bus.publish(
                f"invocation.{request_id}", b'{"kind":"status","status":"terminated"}'
            )
        return inv

    async def deploy_examples(self, folder: Path) -> None:
        from cumulo.bundle import load_function_dir

        # A handful of small local folders, read once at start.
        folders = sorted(p for p in folder.iterdir() if (p / "cumulo.json").is_file())  # noqa: ASYNC240
        for path in folders:
            config, zip_bytes = load_function_dir(path)
            name = str(config["name"])
            body = {**config, "code": {"zip_base64": _b64(zip_bytes)}}
            try:
                await self.functions.get("default", name)
            except NotFound:
                await self.functions.create("default", body)
                log.info("deployed example %s", name)

    async def _function_changed(self, fn: Function) -> None:
        self.dispatcher.know(fn)
        await self.pool.forget(fn.id)


def default_uv_cache() -> Path:
    """uv's own default cache of the server's user (the installer runs with a ``HOME`` of
    its own, so it is named explicitly): shared with the host's uv, warm across data dirs."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "uv"


def index_settings(settings: Settings) -> indexes.IndexConfig:
    """The host's pip index settings, with the server's own flags winning."""
    return indexes.with_overrides(
        indexes.from_pip(),
        index_url=settings.index_url,
        extra_index_urls=settings.extra_index_urls,
        find_links=settings.find_links,
        no_index=settings.no_index,
    )


def secret_box(settings: Settings) -> SecretBox:
    if settings.secret_key is not None:
        return SecretBox.from_key(settings.secret_key)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    return SecretBox.load_or_create(settings.secret_key_path)


def make_bus(url: str) -> Bus:
    """``memory://`` (one node) or ``nats://host:port[?prefix=NAME]`` (a cluster; connected
    in ``Cumulo.start()``). Raises ``InvalidParameter`` for anything else."""
    if url.startswith("memory:"):
        return LocalBus()
    if url.startswith(("nats:", "tls:")):
        return NatsBus(url)
    raise InvalidParameter(
        f"bus {url!r} is not supported; use memory:// (one node) or nats://host:port",
        field="bus",
    )


def lock_data_dir(data_dir: Path) -> IO[str]:
    """One server per embedded data dir: SQLite is not shared between nodes."""
    handle = open(data_dir / "server.lock", "w")  # noqa: SIM115 - held for the server's life
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise CumuloError(
            f"another cumulo server is using {data_dir}; stop it or pick another --data-dir",
            code="InternalError.DataDirLocked",
        ) from None
    return handle


def load_or_create_token(settings: Settings) -> tuple[str, bool]:
    """The admin token: ``settings.admin_token`` when given (at least 16 characters), else
    ``<data-dir>/admin.token`` (mode 0600), made on first start."""
    if settings.admin_token is not None:
        if len(settings.admin_token) < MIN_ADMIN_TOKEN:
            raise CumuloError(
                f"the admin token must have at least {MIN_ADMIN_TOKEN} characters",
                code="InvalidParameterValue.AdminToken",
            )
        return settings.admin_token, False
    path = settings.token_path
    if path.exists():
        return path.read_text().strip(), False
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    token = "cum_" + secrets.token_urlsafe(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(token + "\n")
    return token, True


def create_app(settings: Settings, token: str | None = None) -> InvokeFastPath:
    """The node as an ASGI app: the accept hot path in front of the Starlette app (whose
    lifespan starts and stops the node). ``token`` defaults to the data dir's admin token."""
    if token is None:
        token, _ = load_or_create_token(settings)
    core = Cumulo(settings, token)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await core.start()
        try:
            yield
        finally:
            await core.stop()

    async def on_cumulo_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, CumuloError)
        return error_response(exc)

    async def on_http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        code = {404: "ResourceNotFound.Route", 405: "UnsupportedOperation.Method"}.get(
            exc.status_code, "InvalidRequest"
        )
        err = CumuloError(f"{request.method} {request.url.path}: {exc.detail}", code=code)
        err.http_status = exc.status_code
        return error_response(err)

    async def on_crash(request: Request, exc: Exception) -> Response:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return error_response(CumuloError("internal error; see the server log"))

    app = Starlette(
        routes=[
            *ops_routes.routes,
            *function_routes.routes,
            *version_routes.routes,
            *trigger_routes.routes,
            *invocation_routes.routes,
            *key_routes.routes,
            *code_routes.routes,
            *build_routes.routes,
            *layer_routes.routes,
            *scf_routes.routes,
            Mount("/console", app=console_app(core)),
            Route("/console", lambda request: RedirectResponse("/console/"), methods=["GET"]),
        ],
        exception_handlers={
            CumuloError: on_cumulo_error,
            HTTPException: on_http_error,
            Exception: on_crash,
        },
        lifespan=lifespan,
    )
    app.state.cumulo = core
    return InvokeFastPath(app, core)


def serve(settings: Settings) -> None:
    """Run a node until interrupted (blocking). Prints the admin token on first start."""
    import uvicorn

    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    token, created = load_or_create_token(settings)
    if created:
        print(f"cumulo: admin token (saved in {settings.token_path}): {token}", flush=True)
    app = create_app(settings, token)
    # The hot path allocates many short-lived objects; the default generation-0 threshold
    # (700) then runs the collector thousands of times a second and its pauses show in the
    # accept p99. What is loaded by now lives as long as the server: keep it out of the scans.
    gc.collect()
    gc.freeze()
    gc.set_threshold(20_000, 20, 100)
    scheme = "https" if settings.tls_certfile else "http"
    print(f"cumulo: listening on {scheme}://{settings.host}:{settings.port}", flush=True)
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        loop="uvloop",
        http="httptools",
        log_level="warning",
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=5,
        ssl_certfile=None if settings.tls_certfile is None else str(settings.tls_certfile),
        ssl_keyfile=None if settings.tls_keyfile is None else str(settings.tls_keyfile),
    )


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()
