"""One frozen, typed settings object, built once (from flags and ``CUMULO_*`` variables).

Every tunable of the server lives here with its unit in its name; nothing else reads the
environment.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path

DEFAULT_PORT = 8900


@dataclass(frozen=True, slots=True)
class Settings:
    data_dir: Path = Path(".cumulo")
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    #: SQLAlchemy URL of the store; ``None`` means SQLite in WAL mode under ``data_dir``.
    store_url: str | None = None
    #: ``memory://`` (in-process) or ``nats://host:port``.
    bus_url: str = "memory://"

    # Limits of the three invocation modes (DESIGN.md, "The three invocation modes").
    max_sync_timeout_s: float = 900.0
    max_async_timeout_s: float = 86_400.0
    max_sync_payload_bytes: int = 6 * 1024 * 1024
    max_async_payload_bytes: int = 128 * 1024
    max_zip_bytes: int = 50 * 1024 * 1024
    max_environment_bytes: int = 4 * 1024
    default_max_qps: int = 1_000
    #: A function's code, layers and installed environment together, unpacked.
    max_function_bytes: int = 500 * 1000 * 1000

    # Dependencies (requirements.txt and layers).
    #: One resolve or install may take this long.
    install_timeout_s: float = 600.0
    #: An environment nothing uses any more is removed after this long.
    env_gc_grace_s: float = 3600.0
    #: Whether requirements files may name indexes (--index-url, --find-links, ...).
    allow_index_options: bool = True
    #: Index settings that win over the host's pip configuration.
    index_url: str | None = None
    extra_index_urls: tuple[str, ...] = ()
    find_links: tuple[str, ...] = ()
    no_index: bool = False
    #: The installer's cache; ``None`` is uv's own default (shared with the host's uv).
    deps_cache_dir: Path | None = None

    # Dispatching.
    max_instances: int = 256
    instance_idle_s: float = 300.0
    lease_s: float = 30.0
    poll_interval_s: float = 0.5
    retention_s: float = 72 * 3600.0
    graceful_terminate_s: float = 10.0
    retry_base_delay_s: float = 1.0
    retry_max_delay_s: float = 300.0

    # Logs.
    max_log_bytes_per_invocation: int = 10 * 1024 * 1024
    log_flush_interval_s: float = 0.01

    # Security and operations.
    metrics_public: bool = False
    #: The key that encrypts API-key secrets in the store; ``None`` reads (or makes) the
    #: data dir's ``secret.key``. Every node of a cluster needs the same one.
    secret_key: str | None = None
    #: The admin token; ``None`` reads (or makes) the data dir's ``admin.token``. Every node
    #: of a cluster needs the same one.
    admin_token: str | None = None
    #: How far the ``X-TC-Timestamp`` of an SCF API call may be from this node's clock.
    scf_max_skew_s: float = 300.0
    #: Accept SCF calls whose body is not signed (``X-TC-Content-SHA256: UNSIGNED-PAYLOAD``,
    #: the SDKs' ``unsignedPayload``). Off: such a body could be swapped in transit.
    scf_allow_unsigned_payload: bool = False
    #: Serve HTTPS with this certificate chain and private key (PEM files).
    tls_certfile: Path | None = None
    tls_keyfile: Path | None = None
    #: A folder whose sub-folders (each with a ``cumulo.json``) are deployed at start.
    examples_dir: Path | None = None
    node_id: str = field(default_factory=lambda: os.urandom(6).hex())

    @property
    def resolved_store_url(self) -> str:
        if self.store_url:
            return self.store_url
        return f"sqlite:///{(self.data_dir / 'cumulo.db').resolve()}"

    @property
    def token_path(self) -> Path:
        return self.data_dir / "admin.token"

    @property
    def secret_key_path(self) -> Path:
        return self.data_dir / "secret.key"

    def with_changes(self, **changes: object) -> Settings:
        return replace(self, **changes)  # type: ignore[arg-type]
