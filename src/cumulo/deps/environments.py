"""Installed environments, shared by content.

An environment is the folder a lock (a resolved ``requirements.txt``) was installed into for
cumulo's clean interpreter; its key is the SHA-256 of the interpreter's tag, where its
packages come from (the indexes, and the package itself when it installs its own files) and
the lock, so
every function, version and layer asking for the same set shares one read-only tree
(``<root>/<key>/``, a ``--target`` folder: packages at its top, scripts in ``bin/``), and two
functions that pin different versions of a package get different ones.

Across a cluster, the ``environments`` row in the store is the lock: the node that claims it
installs while the others wait for it to be ``ready`` (a claim whose builder stopped
renewing its lease is taken over). Each node keeps its own tree: a node that needs an
environment it has not built installs the stored lock itself (:meth:`Environments.path`),
which the installer's cache makes quick. Trees are installed into a staging folder and
renamed into place, so a tree that exists is complete, and are kept across restarts.

:meth:`Environments.sweep` removes what nothing uses: the store marks an unused environment,
deletes it after the grace period, and each node then removes its tree.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import shutil
import stat
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from cumulo.deps.installer import Installer, InstallError, LineSink, tree_size
from cumulo.errors import NotFound
from cumulo.models import Environment, EnvironmentStatus
from cumulo.store.base import EnvironmentStore

logger = logging.getLogger(__name__)

#: How often a node waiting for another node's install looks again.
_WAIT_POLL_S = 0.5


def environment_key(interpreter_tag: str, lock: str, sources: str = "") -> str:
    """The key of an environment: the interpreter, the resolved set and where its packages
    come from (``sources``), so that two sets pinned alike but fetched from different places
    never share a tree."""
    return hashlib.sha256(f"{interpreter_tag}\n{sources}\n{lock}".encode()).hexdigest()


class Environments:
    """See the module docstring. ``lease_s``: how long a claim holds without renewal."""

    def __init__(
        self,
        *,
        root: Path,
        store: EnvironmentStore,
        installer: Installer,
        interpreter_tag: str,
        node_id: str,
        lease_s: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._root = root
        self._store = store
        self._installer = installer
        self._tag = interpreter_tag
        self._node = node_id
        self._lease_s = lease_s
        self._clock = clock
        self._locks: dict[str, asyncio.Lock] = {}

    @property
    def installer(self) -> Installer:
        return self._installer

    def key_for(self, lock: str, sources: str = "") -> str:
        return environment_key(self._tag, lock, sources)

    def local_path(self, key: str) -> Path:
        return self._root / key

    async def ensure(
        self, lock: str, *, sources: str = "", cwd: Path, on_line: LineSink
    ) -> tuple[Environment, bool]:
        """The ready environment of ``lock`` fetched from ``sources`` (see
        :func:`environment_key`), installed here (and recorded) unless some node did it
        already. Returns it and whether it was reused (the set was installed before; this
        node may still have installed the stored lock for itself). ``cwd`` is the unpacked
        package (for paths inside it). Raises :class:`InstallError`."""
        key = self.key_for(lock, sources)
        blank = Environment(
            key=key,
            requirements=lock,
            interpreter=self._tag,
            status=EnvironmentStatus.BUILDING,
            created_at=self._clock(),
        )
        said_waiting = False
        while True:
            now = self._clock()
            env = await self._store.claim_environment(blank, self._node, now, now + self._lease_s)
            if env.status is EnvironmentStatus.READY:
                if self.local_path(key).is_dir():
                    return env, True
                on_line(f"environment {key[:12]} is installed on another node; installing it here")
                await self._install(env, cwd=cwd, on_line=on_line)
                return env, True
            if env.builder == self._node and env.status is EnvironmentStatus.BUILDING:
                return await self._build(env, cwd=cwd, on_line=on_line), False
            if not said_waiting:
                on_line(f"environment {key[:12]} is being installed by node {env.builder}; waiting")
                said_waiting = True
            await asyncio.sleep(_WAIT_POLL_S)

    async def path(self, key: str) -> Path:
        """This node's tree of environment ``key``, installed from the stored lock when this
        node has none yet. Raises ``NotFound`` for an environment the store does not know
        (or that is not ready), :class:`InstallError` when installing it here fails."""
        local = self.local_path(key)
        if local.is_dir():
            return local
        env = await self._store.get_environment(key)
        if env is None or env.status is not EnvironmentStatus.READY:
            raise NotFound(
                f"environment {key} is not installed", code="ResourceNotFound.Environment"
            )
        await self._install(env, cwd=self._root, on_line=lambda line: None)
        return local

    async def sweep(self, grace_s: float) -> list[str]:
        """Delete what nothing has used for ``grace_s`` (see the module docstring), and this
        node's trees of environments the store no longer has. The keys removed here."""
        gone = set(await self._store.sweep_environments(self._clock(), grace_s))
        known = {env.key for env in await self._store.list_environments()}
        removed = []
        for child in await asyncio.to_thread(_children, self._root):
            if child.name.startswith("."):
                continue
            if child.name in gone or child.name not in known:
                lock = self._locks.get(child.name)
                if lock is not None and lock.locked():
                    continue  # being installed here right now
                await asyncio.to_thread(remove_tree, child)
                removed.append(child.name)
                logger.info("removed unused environment %s", child.name)
        return removed

    async def _build(self, env: Environment, *, cwd: Path, on_line: LineSink) -> Environment:
        started = time.monotonic()
        renewing = asyncio.create_task(self._renew(env.key))
        try:
            installed = await self._install(env, cwd=cwd, on_line=on_line)
        except BaseException as exc:
            renewing.cancel()
            failed = replace(env, status=EnvironmentStatus.FAILED, error=str(exc)[:2000])
            with contextlib.suppress(Exception):
                await self._store.finish_environment(failed, self._node)
            raise
        renewing.cancel()
        ready = replace(
            env,
            status=EnvironmentStatus.READY,
            size_bytes=installed[0],
            packages=installed[1],
            build_ms=round((time.monotonic() - started) * 1000, 1),
        )
        if not await self._store.finish_environment(ready, self._node):
            logger.warning("environment %s: another node took over its install", env.key)
        return ready

    async def _install(
        self, env: Environment, *, cwd: Path, on_line: LineSink
    ) -> tuple[int, tuple[tuple[str, str], ...]]:
        """Install ``env``'s lock into this node's tree (once per key at a time)."""
        target = self.local_path(env.key)
        async with self._locks.setdefault(env.key, asyncio.Lock()):
            if target.is_dir():
                return await asyncio.to_thread(tree_size, target), env.packages
            self._root.mkdir(parents=True, exist_ok=True)
            staging = self._root / f".staging-{env.key[:16]}-{os.urandom(4).hex()}"
            try:
                installed = await self._installer.install(
                    env.requirements, staging, cwd=cwd, on_line=on_line
                )
                await asyncio.to_thread(_seal, staging)
                os.rename(staging, target)
            except BaseException:
                await asyncio.to_thread(remove_tree, staging)
                raise
            return installed.size_bytes, installed.packages

    async def _renew(self, key: str) -> None:
        while True:
            await asyncio.sleep(self._lease_s / 3)
            try:
                await self._store.renew_environment(key, self._node, self._clock() + self._lease_s)
            except Exception:
                logger.exception("could not renew the install lease of environment %s", key)


def _children(root: Path) -> list[Path]:
    return list(root.iterdir()) if root.is_dir() else []


def _seal(root: Path) -> None:
    """Make a finished tree read-only (its owner may still remove it: see
    :func:`remove_tree`)."""
    for folder, dirs, files in os.walk(root):
        for name in files:
            path = os.path.join(folder, name)
            with contextlib.suppress(OSError):
                mode = os.lstat(path).st_mode
                if stat.S_ISREG(mode):
                    os.chmod(path, mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
        for name in dirs:
            with contextlib.suppress(OSError):
                os.chmod(os.path.join(folder, name), 0o555)
    os.chmod(root, 0o555)


def remove_tree(root: Path) -> None:
    """Remove a tree :func:`_seal` made read-only."""
    if not root.exists():
        return
    for folder, dirs, _ in os.walk(root):
        with contextlib.suppress(OSError):
            os.chmod(folder, 0o755)
        for name in dirs:
            with contextlib.suppress(OSError):
                os.chmod(os.path.join(folder, name), 0o755)
    shutil.rmtree(root, ignore_errors=True)


__all__ = ["Environments", "InstallError", "environment_key", "remove_tree"]
