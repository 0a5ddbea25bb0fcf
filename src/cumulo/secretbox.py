"""Encryption at rest for API-key secrets.

A TC3-HMAC-SHA256 signature is an HMAC keyed with the client's SecretKey, so the server
needs the plain secret to check one: a one-way hash, as used for passwords, would not do.
The secrets are therefore stored encrypted with a server key (Fernet: AES-128-CBC with an
HMAC-SHA256 tag), so that a copy of the database alone does not yield usable credentials.

The server key lives in a key file in the data directory, created with mode 0600 on first
start. Every node of a cluster must use the same key, either by sharing that file or by
being handed the key another way (an environment variable, read by the server wiring and
passed to :meth:`SecretBox.from_key`); a node with a different key cannot decrypt the
secrets the others stored, and says so.
"""

from __future__ import annotations

import binascii
import contextlib
import hashlib
import hmac
import logging
import os
import pathlib
import secrets
import stat

from cryptography.fernet import Fernet, InvalidToken

from cumulo.errors import CumuloError

log = logging.getLogger(__name__)

ERROR_CODE = "InternalError.SecretKey"


class SecretBox:
    """Encrypts and decrypts short strings with one server key. Thread-safe, no I/O after
    construction."""

    def __init__(self, fernet: Fernet, key: str) -> None:
        self._fernet = fernet
        self._key = key

    def derive(self, purpose: str) -> str:
        """A key for another use (e.g. signing console sessions), derived from this one:
        hex HMAC-SHA256 of ``purpose``. The same on every node that shares the key."""
        return hmac.new(self._key.encode(), purpose.encode(), hashlib.sha256).hexdigest()

    @classmethod
    def from_key(cls, key: str) -> SecretBox:
        """Build from a key as :meth:`generate_key` makes it (44 characters of url-safe
        base64). Raises :class:`CumuloError` (``InternalError.SecretKey``) on a bad key."""
        return cls(_fernet(key, source="the secret key given"), key)

    @classmethod
    def load_or_create(cls, path: pathlib.Path) -> SecretBox:
        """Read the key file at ``path``, creating it (mode 0600, new random key) if absent.

        Idempotent, and safe when several processes start at once on the same directory:
        the key is written to a private temporary file and linked into place, so a reader
        never sees a half-written file and exactly one key wins. Raises
        :class:`CumuloError` (``InternalError.SecretKey``) when the file cannot be read or
        does not hold a key.
        """
        try:
            if not path.exists():
                _create(path, generate_key())
            text = path.read_text(encoding="ascii")
            mode = path.stat().st_mode
        except (OSError, UnicodeDecodeError) as exc:
            raise CumuloError(
                f"cannot read or create the secret key file {path}: {exc}; let the server "
                "read and write its data directory, or restore the file from the other "
                "nodes or a backup",
                code=ERROR_CODE,
            ) from exc
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            log.warning(
                "secret key file is readable by other users; run chmod 600 on it",
                extra={"path": str(path)},
            )
        return cls(_fernet(text.strip(), source=f"the secret key file {path}"), text.strip())

    def encrypt(self, plain: str) -> str:
        """Return an ASCII token for ``plain``; a fresh random IV makes each token differ."""
        return self._fernet.encrypt(plain.encode("utf-8")).decode("ascii")

    def decrypt(self, token: str) -> str:
        """Return the plain text of a token made by :meth:`encrypt` with the same key.

        Raises :class:`CumuloError` (``InternalError.SecretKey``) when the token was made
        with another key or is damaged.
        """
        try:
            return self._fernet.decrypt(token.encode("ascii")).decode("utf-8")
        except (InvalidToken, UnicodeError) as exc:
            raise CumuloError(
                "cannot decrypt a stored API-key secret: the secret key of this data "
                "directory does not match the database (for instance nodes of a cluster "
                "that do not share the key file), or the stored value is damaged; give "
                "every node the key file the secrets were stored with",
                code=ERROR_CODE,
            ) from exc


def generate_key() -> str:
    """Return a new random key (url-safe base64 of 32 random bytes)."""
    return Fernet.generate_key().decode("ascii")


def _fernet(key: str, *, source: str) -> Fernet:
    try:
        return Fernet(key.encode("ascii"))
    except (ValueError, binascii.Error) as exc:  # UnicodeEncodeError is a ValueError
        raise CumuloError(
            f"{source} does not hold a valid key (44 characters of url-safe base64); "
            "restore the right key from the other nodes or a backup. Only if no secret "
            "was stored with it yet, delete the file and a new key is made on start",
            code=ERROR_CODE,
        ) from exc


def _create(path: pathlib.Path, key: str) -> None:
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="ascii") as file:
            file.write(key + "\n")
            file.flush()
            os.fsync(file.fileno())
        # link() fails if the name exists: a concurrent starter's key wins, ours is dropped.
        with contextlib.suppress(FileExistsError):
            os.link(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
