"""Function code packages, unpacked once per content hash under a cache directory."""

from __future__ import annotations

import asyncio
import io
import logging
import os
import re
import shutil
import stat
import tempfile
import zipfile
from collections.abc import Awaitable, Callable
from pathlib import Path, PurePosixPath

from cumulo.errors import InvalidParameter

logger = logging.getLogger(__name__)

_SHA256 = re.compile(r"[0-9a-f]{64}")

#: Unpacked size allowed for one package (a guard against zip bombs).
DEFAULT_MAX_UNPACKED_BYTES = 1024 * 1024 * 1024


class CodeCache:
    """``root/<sha256>/`` holds the unpacked zip whose bytes ``load(sha256)`` returns.

    :meth:`path` unpacks on first use only, atomically (into a temporary directory that is
    then renamed), so concurrent callers, in this process or another, never see a partial
    tree. Entries are never changed once there: a different package has a different hash.
    """

    def __init__(
        self,
        root: Path,
        load: Callable[[str], Awaitable[bytes]],
        *,
        max_unpacked_bytes: int = DEFAULT_MAX_UNPACKED_BYTES,
    ) -> None:
        self._root = root
        self._load = load
        self._max_unpacked_bytes = max_unpacked_bytes
        self._locks: dict[str, asyncio.Lock] = {}

    async def path(self, sha256: str) -> Path:
        """The directory holding package ``sha256``, unpacked. Raises
        :class:`~cumulo.errors.InvalidParameter` for a malformed hash, a bad zip, an entry
        with an absolute path or ``..``, or one too large; and whatever ``load`` raises."""
        if not _SHA256.fullmatch(sha256):
            raise InvalidParameter(f"{sha256!r} is not a SHA-256 hex digest", field="code_sha256")
        target = self._root / sha256
        if target.is_dir():
            return target
        async with self._locks.setdefault(sha256, asyncio.Lock()):
            if not target.is_dir():
                data = await self._load(sha256)
                await asyncio.to_thread(self._unpack, data, target)
        self._locks.pop(sha256, None)
        return target

    def _unpack(self, data: bytes, target: Path) -> None:
        self._root.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=self._root))
        try:
            self._extract(data, staging)
            try:
                os.rename(staging, target)
            except OSError:
                if not target.is_dir():
                    raise
                # Another process unpacked the same package first; theirs is as good.
                shutil.rmtree(staging, ignore_errors=True)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        logger.info("unpacked code package %s (%d bytes)", target.name, len(data))

    def _extract(self, data: bytes, into: Path) -> None:
        try:
            archive = zipfile.ZipFile(io.BytesIO(data))
        except zipfile.BadZipFile as exc:
            raise InvalidParameter(
                f"the code package is not a zip file: {exc}", field="code"
            ) from exc
        with archive:
            entries = archive.infolist()
            for entry in entries:
                check_entry_name(entry.filename)
            total = sum(entry.file_size for entry in entries)
            if total > self._max_unpacked_bytes:
                raise InvalidParameter(
                    f"the code package unpacks to {total} bytes, over the limit of "
                    f"{self._max_unpacked_bytes}",
                    field="code",
                )
            try:
                archive.extractall(into)
            except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError) as exc:
                raise InvalidParameter(f"the code package is corrupt: {exc}", field="code") from exc
            for entry in entries:
                _restore_mode(entry, into)


def check_entry_name(name: str) -> None:
    """Raise :class:`~cumulo.errors.InvalidParameter` unless ``name`` is a relative path
    that stays inside the package."""
    posix = name.replace("\\", "/")
    path = PurePosixPath(posix)
    if (
        not posix
        or path.is_absolute()
        or ".." in path.parts
        or re.match(r"[A-Za-z]:", posix)
        or "\x00" in posix
    ):
        raise InvalidParameter(
            f"the code package has an entry with an unsafe path: {name!r} "
            "(paths must be relative and must not contain '..')",
            field="code",
        )


def _restore_mode(entry: zipfile.ZipInfo, into: Path) -> None:
    """Keep the execute bits a Unix zip recorded (a bundled binary must stay runnable);
    zipfile does not."""
    unix_mode = entry.external_attr >> 16
    mode = unix_mode & 0o777
    if entry.is_dir() or not mode or stat.S_ISLNK(unix_mode):
        return
    (into / entry.filename).chmod(mode | stat.S_IRUSR)
