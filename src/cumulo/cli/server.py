"""``cumulo server``: run a cumulo server.

:mod:`cumulo.app` is imported only when the server starts: the client commands should not
pay for loading the server.
"""

from __future__ import annotations

import logging
from pathlib import Path

import click

from cumulo.bundle import BundleError, examples_in, load_function_dir
from cumulo.cli.common import ExitCode, _fail, _option
from cumulo.settings import DEFAULT_PORT, Settings


@click.command()
@_option(
    "--data-dir",
    envvar="CUMULO_DATA_DIR",
    default=Path(".cumulo"),
    show_default=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Where the database, code packages and admin token live.",
)
@_option("--host", envvar="CUMULO_HOST", default="127.0.0.1", show_default=True)
@_option(
    "--port",
    envvar="CUMULO_PORT",
    default=DEFAULT_PORT,
    show_default=True,
    type=click.IntRange(1, 65535),
)
@_option(
    "--store",
    envvar="CUMULO_STORE",
    metavar="URL",
    help="SQLAlchemy URL (postgresql://...). Default: SQLite in the data dir.",
)
@_option(
    "--bus",
    envvar="CUMULO_BUS",
    default="memory://",
    show_default=True,
    metavar="URL",
    help="memory:// (in-process, one node) or nats://host:4222[?prefix=NAME] (a cluster).",
)
@_option(
    "--max-instances",
    envvar="CUMULO_MAX_INSTANCES",
    default=256,
    show_default=True,
    type=click.IntRange(1, 100_000),
    help="Instances that may run at once on this node; more events wait queued.",
)
@_option(
    "--instance-idle",
    envvar="CUMULO_INSTANCE_IDLE",
    default=300.0,
    show_default=True,
    type=click.FloatRange(min=1),
    metavar="SECONDS",
    help="An idle (warm) instance is reclaimed after this long.",
)
@_option(
    "--retention",
    envvar="CUMULO_RETENTION",
    default=72 * 3600.0,
    show_default=True,
    type=click.FloatRange(min=60),
    metavar="SECONDS",
    help="Finished invocations and their logs are purged after this long.",
)
@_option(
    "--max-async-timeout",
    envvar="CUMULO_MAX_ASYNC_TIMEOUT",
    default=86_400.0,
    show_default=True,
    type=click.FloatRange(min=1),
    metavar="SECONDS",
    help="Longest timeout_s an async-run function may have.",
)
@_option(
    "--examples",
    envvar="CUMULO_EXAMPLES",
    metavar="DIR",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="At start, deploy every sub-folder of DIR holding a cumulo.json (unless a "
    "function of that name exists).",
)
@_option(
    "--metrics-public",
    envvar="CUMULO_METRICS_PUBLIC",
    is_flag=True,
    help="Serve /metrics without a token.",
)
@_option(
    "--tls-cert",
    envvar="CUMULO_TLS_CERT",
    metavar="PEM",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Serve HTTPS with this certificate chain (needs --tls-key).",
)
@_option(
    "--tls-key",
    envvar="CUMULO_TLS_KEY",
    metavar="PEM",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="The private key of --tls-cert.",
)
@_option(
    "--secret-key",
    envvar="CUMULO_SECRET_KEY",
    metavar="KEY",
    help="The key that encrypts API-key secrets (default: made once in DATA_DIR/secret.key). "
    "Give every node of a cluster the same one.",
)
@_option(
    "--admin-token",
    envvar="CUMULO_ADMIN_TOKEN",
    metavar="TOKEN",
    help="Use this admin token (at least 16 characters) instead of DATA_DIR/admin.token. "
    "Give every node of a cluster the same one.",
)
@_option(
    "--lease",
    envvar="CUMULO_LEASE",
    default=30.0,
    show_default=True,
    type=click.FloatRange(min=1),
    metavar="SECONDS",
    help="How long a run's claim lasts without a heartbeat: after a node dies, its runs are "
    "settled by another node within about this long.",
)
@_option(
    "--scf-max-skew",
    envvar="CUMULO_SCF_MAX_SKEW",
    default=300.0,
    show_default=True,
    type=click.FloatRange(min=1),
    metavar="SECONDS",
    help="How far an SCF API call's X-TC-Timestamp may be from this server's clock.",
)
@_option(
    "--scf-allow-unsigned-payload",
    envvar="CUMULO_SCF_ALLOW_UNSIGNED_PAYLOAD",
    is_flag=True,
    help="Accept SCF calls whose body is not signed (the SDKs' unsignedPayload).",
)
@_option(
    "--max-function-mb",
    envvar="CUMULO_MAX_FUNCTION_MB",
    default=500,
    show_default=True,
    type=click.IntRange(1, 1_000_000),
    metavar="MB",
    help="A function's code, layers and installed requirements together, unpacked "
    "(checked at upload and at build).",
)
@_option(
    "--install-timeout",
    envvar="CUMULO_INSTALL_TIMEOUT",
    default=600.0,
    show_default=True,
    type=click.FloatRange(min=1),
    metavar="SECONDS",
    help="Longest a resolve or an install of a requirements.txt may take.",
)
@_option(
    "--env-gc-grace",
    envvar="CUMULO_ENV_GC_GRACE",
    default=3600.0,
    show_default=True,
    type=click.FloatRange(min=0),
    metavar="SECONDS",
    help="An installed environment that nothing uses any more is removed after this long.",
)
@_option(
    "--index-url",
    envvar="CUMULO_INDEX_URL",
    metavar="URL",
    help="The package index for requirements.txt (default: what pip on this host uses).",
)
@_option(
    "--extra-index-url",
    envvar="CUMULO_EXTRA_INDEX_URL",
    multiple=True,
    metavar="URL",
    help="More indexes (repeat; replaces pip's extra-index-url).",
)
@_option(
    "--find-links",
    envvar="CUMULO_FIND_LINKS",
    multiple=True,
    metavar="PATH|URL",
    help="A folder or page of wheels, e.g. an offline wheelhouse (repeat; replaces pip's).",
)
@_option(
    "--no-index",
    envvar="CUMULO_NO_INDEX",
    is_flag=True,
    help="Install only from --find-links (air-gapped).",
)
@_option(
    "--deny-index-options",
    envvar="CUMULO_DENY_INDEX_OPTIONS",
    is_flag=True,
    help="Refuse --index-url, --find-links and the like inside functions' requirements files.",
)
@_option(
    "--deps-cache-dir",
    envvar="CUMULO_DEPS_CACHE_DIR",
    metavar="DIR",
    type=click.Path(file_okay=False, path_type=Path),
    help="The installer's (uv's) cache. Default: uv's own, shared with the host's uv.",
)
@_option(
    "--log-level",
    envvar="CUMULO_LOG_LEVEL",
    default="info",
    show_default=True,
    type=click.Choice(["debug", "info", "warning", "error"]),
)
def server(
    data_dir: Path,
    host: str,
    port: int,
    store: str | None,
    bus: str,
    max_async_timeout: float,
    max_instances: int,
    instance_idle: float,
    retention: float,
    examples: Path | None,
    metrics_public: bool,
    tls_cert: Path | None,
    tls_key: Path | None,
    secret_key: str | None,
    admin_token: str | None,
    lease: float,
    scf_max_skew: float,
    scf_allow_unsigned_payload: bool,
    max_function_mb: int,
    install_timeout: float,
    env_gc_grace: float,
    index_url: str | None,
    extra_index_url: tuple[str, ...],
    find_links: tuple[str, ...],
    no_index: bool,
    deny_index_options: bool,
    deps_cache_dir: Path | None,
    log_level: str,
) -> None:
    """Run a cumulo server (blocks; prints the admin token on first start)."""
    if (tls_cert is None) != (tls_key is None):
        _fail("InvalidParameter", "--tls-cert and --tls-key go together", ExitCode.USAGE)
    settings = Settings(
        data_dir=data_dir,
        host=host,
        port=port,
        store_url=store,
        bus_url=bus,
        max_async_timeout_s=max_async_timeout,
        max_instances=max_instances,
        instance_idle_s=instance_idle,
        retention_s=retention,
        metrics_public=metrics_public,
        examples_dir=examples,
        tls_certfile=tls_cert,
        tls_keyfile=tls_key,
        secret_key=secret_key,
        admin_token=admin_token,
        lease_s=lease,
        scf_max_skew_s=scf_max_skew,
        scf_allow_unsigned_payload=scf_allow_unsigned_payload,
        max_function_bytes=max_function_mb * 1000 * 1000,
        install_timeout_s=install_timeout,
        env_gc_grace_s=env_gc_grace,
        index_url=index_url,
        extra_index_urls=extra_index_url,
        find_links=find_links,
        no_index=no_index,
        allow_index_options=not deny_index_options,
        deps_cache_dir=deps_cache_dir.resolve() if deps_cache_dir else None,
    )
    logging.basicConfig(
        level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    if log_level != "debug":
        # One line per migration step at every start says nothing an operator acts on.
        logging.getLogger("alembic").setLevel(logging.WARNING)
    if examples is not None:
        try:
            # Package them now: a broken example should stop the start with a clear message.
            for folder in examples_in(examples):
                load_function_dir(folder)
        except BundleError as exc:
            _fail("InvalidBundle", str(exc), ExitCode.USAGE)
    # Imported here: the client commands should not pay for loading the server.
    from cumulo.app import serve
    from cumulo.errors import CumuloError

    try:
        serve(settings)
    except CumuloError as exc:
        _fail(exc.code, exc.message, ExitCode.USAGE)
