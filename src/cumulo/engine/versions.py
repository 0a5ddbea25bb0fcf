"""Versions and aliases: publishing immutable snapshots of a function, naming them, and
turning a ``qualifier`` (``$LATEST``, a version number, an alias) into what runs.

A version freezes the function's *code and runtime configuration*: handler, code, timeout,
memory, environment. What governs traffic stays with the function and applies to every
version: ``async_run`` (fixed anyway), ``max_qps``, ``max_concurrency``, retries and event
age. An alias names one version and may send a share of the calls to others
(``additional_weights``, version → fraction): the choice is made per call, at admission,
and the invocation records the version that was chosen.
"""

from __future__ import annotations

import random
import re
import time
from collections.abc import Mapping
from dataclasses import replace
from typing import Any, Protocol

from cumulo.engine.functions import Functions
from cumulo.errors import FunctionUnavailable, InvalidParameter, NotFound
from cumulo.models import LATEST, Alias, Function, FunctionState, FunctionVersion
from cumulo.store.base import AliasStore, VersionStore

ALIAS_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,58}[A-Za-z0-9]$")
#: Seconds an alias read from the store serves the hot path before it is read again.
ALIAS_TTL_S = 2.0
#: Seconds a version read from the store serves before it is read again (a version deleted
#: on another node stops running here within this time).
SNAPSHOT_TTL_S = 10.0
#: The largest version number (the store's column is a 32-bit integer).
MAX_VERSION = 2**31 - 1
MAX_DESCRIPTION = 1000


class VersionAndAliasStore(VersionStore, AliasStore, Protocol):
    """What this module needs from the store."""


class Versions:
    def __init__(self, store: VersionAndAliasStore, functions: Functions) -> None:
        self._store = store
        self._functions = functions
        # Versions never change, but another node may delete one: a snapshot read from the
        # store serves for ``SNAPSHOT_TTL_S``, then the store is asked again.
        self._snapshots: dict[tuple[str, int], tuple[float, FunctionVersion]] = {}
        self._aliases: dict[tuple[str, str], tuple[float, Alias]] = {}
        self._random = random.Random()

    # --- versions -------------------------------------------------------------------

    async def publish(self, namespace: str, name: str, description: str = "") -> FunctionVersion:
        """Snapshot the function's serving code and configuration (with its installed
        environment and layers) as its next version. Raises ``FunctionUnavailable`` while
        the function has no code that runs yet, or while new code builds (which would be
        ambiguous: the version would hold the old code)."""
        fn = await self._functions.get(namespace, name)
        if not fn.ready or fn.state is FunctionState.PENDING:
            raise FunctionUnavailable(
                f"function {name} is {fn.state.value}: "
                + ("its new code is still building" if fn.ready else "it has no code that runs")
                + "; publish a version once it is active"
            )
        fn = replace(fn, state=FunctionState.ACTIVE, state_reason="", build_id=None)
        published = await self._store.publish_version(fn, _description(description), time.time())
        self._snapshots[(fn.id, published.version)] = (time.monotonic(), published)
        return published

    async def list_versions(
        self, namespace: str, name: str
    ) -> tuple[Function, list[FunctionVersion]]:
        fn = await self._functions.get(namespace, name)
        return fn, await self._store.list_versions(fn.id)

    async def delete(self, namespace: str, name: str, version: str) -> None:
        """Raises ``NotFound``; ``Conflict`` while an alias routes to it; ``InvalidParameter``
        for ``$LATEST`` (delete the function instead)."""
        fn = await self._functions.get(namespace, name)
        if version == LATEST:
            raise InvalidParameter(
                "$LATEST is the function itself; delete the function to remove it",
                field="function_version",
            )
        number = _version_number(version)
        await self._store.delete_version(fn.id, number)
        self._snapshots.pop((fn.id, number), None)

    async def snapshot(self, fn: Function, version: str) -> FunctionVersion:
        number = _version_number(version)
        hit = self._snapshots.get((fn.id, number))
        if hit is not None and time.monotonic() - hit[0] < SNAPSHOT_TTL_S:
            return hit[1]
        snapshot = await self._store.get_version(fn.id, number)
        self._snapshots[(fn.id, number)] = (time.monotonic(), snapshot)
        return snapshot

    # --- aliases --------------------------------------------------------------------

    async def create_alias(self, namespace: str, name: str, body: Mapping[str, Any]) -> Alias:
        fn = await self._functions.get(namespace, name)
        alias_name = _alias_name(body.get("name"))
        target, weights = await self._routing(fn, body)
        now = time.time()
        alias = Alias(
            function_id=fn.id,
            name=alias_name,
            function_version=target,
            additional_weights=weights,
            description=_description(body.get("description", "")),
            created_at=now,
            updated_at=now,
        )
        return await self._store.create_alias(alias)

    async def get_alias(self, namespace: str, name: str, alias: str) -> Alias:
        fn = await self._functions.get(namespace, name)
        return await self._store.get_alias(fn.id, alias)

    async def list_aliases(self, namespace: str, name: str) -> list[Alias]:
        fn = await self._functions.get(namespace, name)
        return await self._store.list_aliases(fn.id)

    async def update_alias(
        self, namespace: str, name: str, alias: str, body: Mapping[str, Any]
    ) -> Alias:
        fn = await self._functions.get(namespace, name)
        current = await self._store.get_alias(fn.id, alias)
        merged = {
            "function_version": current.function_version,
            "additional_weights": current.additional_weights,
            **body,
        }
        target, weights = await self._routing(fn, merged)
        changed = replace(
            current,
            function_version=target,
            additional_weights=weights,
            description=_description(body.get("description", current.description)),
            updated_at=time.time(),
        )
        updated = await self._store.update_alias(changed)
        self._aliases.pop((fn.id, alias), None)
        return updated

    async def delete_alias(self, namespace: str, name: str, alias: str) -> None:
        fn = await self._functions.get(namespace, name)
        await self._store.delete_alias(fn.id, alias)
        self._aliases.pop((fn.id, alias), None)

    # --- resolving a qualifier ------------------------------------------------------

    async def resolve(self, fn: Function, qualifier: str | None) -> Function:
        """The function as it runs for ``qualifier``: ``fn`` itself for ``None`` or
        ``$LATEST``, a version's snapshot (with the function's traffic settings), or what
        an alias picks for this call. Raises ``NotFound`` (``ResourceNotFound.Qualifier``)
        for a qualifier that names nothing."""
        if qualifier is None or qualifier == LATEST:
            return fn
        if _is_number(qualifier):
            return await self._at_version(fn, qualifier)
        alias = await self._alias_cached(fn, qualifier)
        return await self._at_version(fn, self._pick(alias))

    async def describe(self, fn: Function, qualifier: str | None) -> Function:
        """As :meth:`resolve`, for reading rather than running: an alias gives its main
        version, never a weighted draw."""
        if qualifier is None or qualifier == LATEST:
            return fn
        if _is_number(qualifier):
            return await self._at_version(fn, qualifier)
        alias = await self._alias_cached(fn, qualifier)
        return await self._at_version(fn, alias.function_version)

    async def at_version(self, fn: Function, version: str) -> Function:
        """``fn`` as it runs at ``version`` (``$LATEST`` or a number). Raises ``NotFound``."""
        if version == LATEST:
            return fn
        return await self._at_version(fn, version)

    async def _at_version(self, fn: Function, version: str) -> Function:
        if version == LATEST:
            return fn
        try:
            snap = (await self.snapshot(fn, version)).function
        except (NotFound, InvalidParameter):
            # A number no version can have (0, one past the column's range) names nothing.
            raise NotFound(
                f"function {fn.name!r} has no version {version}",
                code="ResourceNotFound.Qualifier",
            ) from None
        return replace(
            fn,
            handler=snap.handler,
            code_sha256=snap.code_sha256,
            code_size_bytes=snap.code_size_bytes,
            timeout_s=snap.timeout_s,
            memory_mb=snap.memory_mb,
            environment=snap.environment,
            description=snap.description,
            revision=snap.revision,
            version=snap.version,
        )

    async def _alias_cached(self, fn: Function, name: str) -> Alias:
        hit = self._aliases.get((fn.id, name))
        if hit is not None and time.monotonic() - hit[0] < ALIAS_TTL_S:
            return hit[1]
        try:
            alias = await self._store.get_alias(fn.id, name)
        except NotFound:
            raise NotFound(
                f"function {fn.name!r} has no version or alias {name!r}",
                code="ResourceNotFound.Qualifier",
            ) from None
        self._aliases[(fn.id, name)] = (time.monotonic(), alias)
        return alias

    def _pick(self, alias: Alias) -> str:
        draw = self._random.random()
        for version, weight in sorted(alias.additional_weights.items()):
            if draw < weight:
                return version
            draw -= weight
        return alias.function_version

    async def _routing(self, fn: Function, body: Mapping[str, Any]) -> tuple[str, dict[str, float]]:
        """Validate an alias's target and weights; every version named must exist."""
        target = body.get("function_version")
        if not isinstance(target, str) or not target:
            raise InvalidParameter(
                "function_version is required: a published version number or $LATEST",
                field="function_version",
            )
        raw = body.get("additional_weights") or {}
        if not isinstance(raw, Mapping):
            raise InvalidParameter(
                "additional_weights must map version numbers to fractions",
                field="additional_weights",
            )
        target = _canonical(target, "function_version")
        weights: dict[str, float] = {}
        for raw_version, weight in raw.items():
            version = _canonical(str(raw_version), "additional_weights")
            if isinstance(weight, bool) or not isinstance(weight, int | float):
                raise InvalidParameter(
                    f"the weight of version {version} must be a number between 0 and 1",
                    field="additional_weights",
                )
            if not 0 < weight < 1:
                raise InvalidParameter(
                    f"the weight of version {version} is {weight}; it must be above 0 and below 1",
                    field="additional_weights",
                )
            if version == target:
                raise InvalidParameter(
                    f"version {version} is already the alias's main version",
                    field="additional_weights",
                )
            if version in weights:
                raise InvalidParameter(
                    f"version {version} is given two weights", field="additional_weights"
                )
            weights[version] = float(weight)
        if sum(weights.values()) >= 1:
            raise InvalidParameter(
                "additional weights add up to 1 or more; the main version must keep a share",
                field="additional_weights",
            )
        for version in (target, *weights):
            if version != LATEST:
                try:
                    await self.snapshot(fn, version)
                except NotFound:
                    raise NotFound(
                        f"function {fn.name!r} has no version {version}",
                        code="ResourceNotFound.Version",
                    ) from None
        return target, weights


def _is_number(text: str) -> bool:
    """ASCII digits only: ``str.isdigit`` also accepts "²" and "٣", which ``int`` refuses
    or reads as another number."""
    return text.isascii() and text.isdigit()


def _version_number(version: str, field: str = "function_version") -> int:
    """The number ``version`` spells (1 to ``MAX_VERSION``). Raises ``InvalidParameter``."""
    if not _is_number(version) or not 1 <= int(version) <= MAX_VERSION:
        raise InvalidParameter(
            f"{version!r} is not a version: use a published version's number",
            field=field,
        )
    return int(version)


def _canonical(version: str, field: str) -> str:
    """``$LATEST``, or the number without leading zeros, as aliases store it: "007" and "7"
    must name the same version when a delete checks which aliases use it."""
    return version if version == LATEST else str(_version_number(version, field))


def _alias_name(value: object) -> str:
    if not isinstance(value, str) or not ALIAS_NAME.fullmatch(value) or value == LATEST:
        raise InvalidParameter(
            f"alias name {value!r} is invalid: 2-60 letters, digits, '_' or '-', starting with "
            "a letter and ending with a letter or digit",
            field="alias",
        )
    return value


def _description(value: object) -> str:
    if not isinstance(value, str) or len(value) > MAX_DESCRIPTION:
        raise InvalidParameter(
            f"description must be text of at most {MAX_DESCRIPTION} characters",
            field="description",
        )
    return value
