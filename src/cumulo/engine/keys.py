"""API keys: SecretId/SecretKey pairs that sign SCF API calls (TC3-HMAC-SHA256).

A key acts as the admin (``namespace`` None) or only inside one namespace. The secret is
shown once, when the key is made; the store keeps it encrypted with the server's key
(``cumulo.secretbox``): TC3 needs the secret itself to check a signature, so a hash would
not do. Revoking is immediate on this node and reaches the others within ``CACHE_TTL_S``.
"""

from __future__ import annotations

import secrets
import string
import time
from dataclasses import dataclass

from cumulo.errors import InvalidParameter, NamespaceNotFound
from cumulo.models import ApiKey
from cumulo.secretbox import SecretBox
from cumulo.store.base import KeyStore, NamespaceStore

SECRET_ID_PREFIX = "AKID"
_ALPHABET = string.ascii_letters + string.digits
#: Seconds a key read from the store is trusted before it is read again.
CACHE_TTL_S = 5.0
#: Keys (known or not) remembered at most: a caller sending made-up SecretIds must not be
#: able to grow the cache without end.
CACHE_MAX_ENTRIES = 10_000


@dataclass(frozen=True, slots=True)
class NewKey:
    key: ApiKey
    #: The plain secret: shown once, never stored.
    secret_key: str


@dataclass(frozen=True, slots=True)
class Principal:
    """Who signed a request: the admin, or a key confined to one namespace."""

    secret_id: str
    namespace: str | None

    def may_use(self, namespace: str) -> bool:
        return self.namespace is None or self.namespace == namespace


#: A live key: who it acts as, and its plain secret.
Found = tuple[Principal, str]


class Keys:
    def __init__(self, store: KeyStore, namespaces: NamespaceStore, box: SecretBox) -> None:
        self._store = store
        self._namespaces = namespaces
        self._box = box
        self._cache: dict[str, tuple[float, Found | None]] = {}

    async def create(self, namespace: str | None = None, description: str = "") -> NewKey:
        """A new key, for the admin or for ``namespace`` (which must exist). Raises
        ``NamespaceNotFound``, ``InvalidParameter``."""
        if namespace is not None:
            known = {ns.name for ns in await self._namespaces.list_namespaces()}
            if namespace not in known:
                raise NamespaceNotFound(f"namespace {namespace!r} does not exist")
        if not isinstance(description, str) or len(description) > 1000:
            raise InvalidParameter(
                "description must be text of at most 1000 characters", field="description"
            )
        secret_id = SECRET_ID_PREFIX + _random(32)
        secret_key = _random(40)
        key = ApiKey(
            secret_id=secret_id,
            secret_enc=self._box.encrypt(secret_key),
            namespace=namespace,
            description=description,
            created_at=time.time(),
        )
        await self._store.create_key(key)
        return NewKey(key, secret_key)

    async def list(self) -> list[ApiKey]:
        return await self._store.list_keys()

    async def revoke(self, secret_id: str) -> ApiKey:
        """Idempotent. Raises ``NotFound``."""
        key = await self._store.revoke_key(secret_id, time.time())
        self._cache.pop(secret_id, None)
        return key

    def cached(self, secret_id: str) -> tuple[bool, Found | None]:
        """``(True, what lookup would answer)`` from memory alone, or ``(False, None)`` when
        :meth:`lookup` would have to ask the store."""
        hit = self._cache.get(secret_id)
        if hit is None or time.monotonic() - hit[0] >= CACHE_TTL_S:
            return False, None
        return True, hit[1]

    async def lookup(self, secret_id: str) -> Found | None:
        """The principal and plain secret of a live key; None for an unknown or revoked one.
        A key read from the store is decrypted once and kept (in memory only) for
        ``CACHE_TTL_S``."""
        hit, known = self.cached(secret_id)
        if hit:
            return known
        key = await self._store.get_key(secret_id)
        found: Found | None = None
        if key is not None and key.revoked_at is None:
            found = Principal(key.secret_id, key.namespace), self._box.decrypt(key.secret_enc)
        self._remember(secret_id, found)
        return found

    def _remember(self, secret_id: str, found: Found | None) -> None:
        now = time.monotonic()
        if len(self._cache) >= CACHE_MAX_ENTRIES:
            self._cache = {
                known: hit for known, hit in self._cache.items() if now - hit[0] < CACHE_TTL_S
            }
            if len(self._cache) >= CACHE_MAX_ENTRIES:
                self._cache.clear()
        self._cache[secret_id] = (now, found)


def _random(length: int) -> str:
    return "".join(secrets.choice(_ALPHABET) for _ in range(length))
