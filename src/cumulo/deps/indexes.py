"""Where packages come from: the host's pip index settings, so that an operator behind a
mirror, or air-gapped with a wheelhouse, needs nothing more for cumulo.

:func:`from_pip` asks pip itself (``python -m pip config list``: every ``pip.conf`` pip
reads and its ``PIP_*`` variables, with pip's precedence) for ``index-url``,
``extra-index-url``, ``find-links``, ``no-index`` and ``trusted-host``; the server's own
flags (``--index-url`` and friends) win over it. The installer is given them as options,
never through its own configuration files.
"""

from __future__ import annotations

import ast
import logging
import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

logger = logging.getLogger(__name__)

#: ``pip config list`` sections, the most specific first.
_SECTIONS = (":env:", "install", "global")
_PIP_CONFIG_TIMEOUT_S = 20.0


@dataclass(frozen=True, slots=True)
class IndexConfig:
    #: The main index (PyPI when ``None``).
    index_url: str | None = None
    extra_index_urls: tuple[str, ...] = ()
    #: Folders or pages of wheels and sdists (an offline wheelhouse).
    find_links: tuple[str, ...] = ()
    #: Use no index at all: only ``find_links``.
    no_index: bool = False
    trusted_hosts: tuple[str, ...] = ()
    #: A CA bundle to trust (pip's ``cert``), for a mirror with a private certificate.
    cert: str | None = None
    #: Where this came from, for the start-up report (``pip config``, ``--index-url``...).
    sources: tuple[str, ...] = field(default=(), compare=False)

    def installer_args(self) -> list[str]:
        """The installer's options for these settings, but the index URLs (which may carry
        credentials, and go in :meth:`installer_env` so that no process list shows them)."""
        args: list[str] = []
        if self.no_index:
            args.append("--no-index")
        for link in self.find_links:
            args += ["--find-links", link]
        for host in self.trusted_hosts:
            args += ["--allow-insecure-host", host]
        return args

    def installer_env(self) -> dict[str, str]:
        """The index URLs, as the installer's (uv's) environment variables."""
        env: dict[str, str] = {}
        if self.index_url and not self.no_index:
            env["UV_INDEX_URL"] = self.index_url
        if self.extra_index_urls and not self.no_index:
            env["UV_EXTRA_INDEX_URL"] = " ".join(self.extra_index_urls)
        return env

    def fingerprint(self) -> list[str]:
        """Everything that decides where packages come from (part of an environment's
        key)."""
        env = self.installer_env()
        return [*self.installer_args(), *(f"{k}={v}" for k, v in sorted(env.items()))]

    def describe(self) -> str:
        """One line for the server's start-up report (no credentials)."""
        parts = []
        if self.no_index:
            parts.append("no index")
        else:
            parts.append(f"index {_redact(self.index_url or 'https://pypi.org/simple')}")
        parts += [f"extra index {_redact(url)}" for url in self.extra_index_urls]
        parts += [f"find-links {_redact(link)}" for link in self.find_links]
        origin = f" (from {', '.join(self.sources)})" if self.sources else ""
        return ", ".join(parts) + origin


def parse_pip_config(text: str) -> dict[str, str]:
    """``pip config list`` output (``section.key='value'`` lines) as ``{key: value}``, each
    key taken from its most specific section (``:env:`` over ``install`` over
    ``global``)."""
    found: dict[tuple[str, str], str] = {}
    for line in text.splitlines():
        name, sep, raw = line.partition("=")
        section, dot, key = name.rpartition(".")
        if not sep or not dot:
            continue
        try:
            value = ast.literal_eval(raw.strip())
        except (ValueError, SyntaxError):
            value = raw.strip().strip("'\"")
        found[(section, key)] = str(value)
    merged: dict[str, str] = {}
    for section in reversed(_SECTIONS):
        for (where, key), value in found.items():
            if where == section:
                merged[key] = value
    return merged


def from_pip_values(values: Mapping[str, str]) -> IndexConfig:
    """An :class:`IndexConfig` from pip's settings (``{key: value}`` as pip spells them)."""
    return IndexConfig(
        index_url=values.get("index-url") or None,
        extra_index_urls=tuple(values.get("extra-index-url", "").split()),
        find_links=tuple(values.get("find-links", "").split()),
        no_index=_truthy(values.get("no-index", "")),
        trusted_hosts=tuple(values.get("trusted-host", "").split()),
        cert=values.get("cert") or None,
        sources=("pip config",) if values else (),
    )


def from_pip(python: str = sys.executable) -> IndexConfig:
    """The host's pip index settings, as pip reads them for ``python``. Without pip there,
    only the ``PIP_*`` variables count."""
    env = {k: v for k, v in os.environ.items() if k.startswith("PIP_") or k in _PIP_ENV}
    try:
        done = subprocess.run(
            [python, "-m", "pip", "config", "list"],
            capture_output=True,
            text=True,
            timeout=_PIP_CONFIG_TIMEOUT_S,
            env={**env, "PIP_DISABLE_PIP_VERSION_CHECK": "1"},
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        logger.warning("could not ask pip for its index settings: %s", exc)
        done = None
    if done is not None and done.returncode == 0:
        return from_pip_values(parse_pip_config(done.stdout))
    if done is not None:
        logger.info("pip config list failed (%s); using PIP_* variables", done.stderr.strip())
    return from_pip_values(
        {
            key[4:].lower().replace("_", "-"): value
            for key, value in env.items()
            if key.startswith("PIP_")
        }
    )


def with_overrides(
    base: IndexConfig,
    *,
    index_url: str | None = None,
    extra_index_urls: Sequence[str] = (),
    find_links: Sequence[str] = (),
    no_index: bool = False,
) -> IndexConfig:
    """``base`` with the server's own flags winning (lists given replace pip's)."""
    if not (index_url or extra_index_urls or find_links or no_index):
        return base
    return IndexConfig(
        index_url=index_url or base.index_url,
        extra_index_urls=tuple(extra_index_urls) or base.extra_index_urls,
        find_links=tuple(find_links) or base.find_links,
        no_index=no_index or base.no_index,
        trusted_hosts=base.trusted_hosts,
        cert=base.cert,
        sources=(*base.sources, "server flags"),
    )


_PIP_ENV = frozenset({"HOME", "PATH", "XDG_CONFIG_HOME", "VIRTUAL_ENV"})


def _truthy(value: str) -> bool:
    return value.strip().lower() in ("1", "true", "yes", "on")


def _redact(url: str) -> str:
    """``https://user:secret@host/…`` → ``https://***@host/…``."""
    scheme, sep, rest = url.partition("://")
    if sep and "@" in rest.split("/", 1)[0]:
        return f"{scheme}://***@{rest.split('@', 1)[1]}"
    return url
