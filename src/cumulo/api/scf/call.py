"""One SCF API call as the actions see it: who made it, its parameters read with SCF's
error codes, and the shapes SCF answers in (times, environment lists, statuses).

Parameters are read by name with their SDK types: a missing required one raises
``MissingParameter``; one of the wrong type or out of range raises
``InvalidParameterValue.<Name>`` with the SDK's own name, so an SCF user reads the error
in the terms of the request they sent.
"""

from __future__ import annotations

import calendar
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from cumulo.engine.keys import Principal
from cumulo.errors import (
    InvalidParameter,
    MissingParameter,
    UnauthorizedOperation,
    UnsupportedOperation,
)
from cumulo.models import Function

if TYPE_CHECKING:
    from cumulo.app import Cumulo

DEFAULT_NAMESPACE = "default"
#: How SCF writes a time: UTC here, to the second (``AddTime``, ``StartTime``, ...).
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"


@dataclass(frozen=True, slots=True)
class ScfCall:
    core: Cumulo
    principal: Principal
    params: Mapping[str, Any]
    region: str
    request_id: str
    #: ``scheme://host`` as the caller reached this node (for links in answers).
    base_url: str = ""

    # --- reading parameters ---------------------------------------------------------

    def has(self, name: str) -> bool:
        return self.params.get(name) is not None

    def text(self, name: str, default: str | None = None) -> str:
        value = self.params.get(name)
        if value is None:
            if default is None:
                raise MissingParameter(f"the parameter {name} is required")
            return default
        if not isinstance(value, str):
            raise InvalidParameter(f"{name} must be a string", code=_code(name))
        return value

    def optional_text(self, name: str) -> str | None:
        return self.text(name) if self.has(name) else None

    def integer(
        self, name: str, default: int | None = None, low: int = 0, high: int = 2**31
    ) -> int:
        value = self.params.get(name)
        if value is None:
            if default is None:
                raise MissingParameter(f"the parameter {name} is required")
            return default
        if isinstance(value, bool) or not isinstance(value, int):
            raise InvalidParameter(f"{name} must be an integer", code=_code(name))
        if not low <= value <= high:
            raise InvalidParameter(f"{name} {value} is out of range {low}-{high}", code=_code(name))
        return value

    def flag(self, name: str, default: bool = False) -> bool:
        """An SCF switch: the strings ``TRUE`` / ``FALSE`` (any case)."""
        value = self.params.get(name)
        if value is None:
            return default
        if isinstance(value, str) and value.upper() in ("TRUE", "FALSE"):
            return value.upper() == "TRUE"
        raise InvalidParameter(f"{name} must be TRUE or FALSE", code=_code(name))

    def obj(self, name: str) -> Mapping[str, Any] | None:
        value = self.params.get(name)
        if value is None:
            return None
        if not isinstance(value, Mapping):
            raise InvalidParameter(f"{name} must be an object", code=_code(name))
        return value

    def array(self, name: str) -> list[Any]:
        value = self.params.get(name)
        if value is None:
            return []
        if not isinstance(value, list):
            raise InvalidParameter(f"{name} must be a list", code=_code(name))
        return value

    def time(self, value: object, name: str) -> float:
        """Unix seconds of an SCF time text (``%Y-%m-%d %H:%M:%S``, UTC)."""
        if not isinstance(value, str):
            raise InvalidParameter(f"{name} must be a time text like 2024-05-16 20:00:00",
                                   code=_code(name))  # fmt: skip
        try:
            return float(calendar.timegm(time.strptime(value.strip(), TIME_FORMAT)))
        except ValueError:
            raise InvalidParameter(
                f"{name} {value!r} is not a time like 2024-05-16 20:00:00", code=_code(name)
            ) from None

    # --- where the call applies -----------------------------------------------------

    def namespace(self) -> str:
        """The ``Namespace`` parameter (``default`` when absent), checked against the key."""
        namespace = self.text("Namespace", DEFAULT_NAMESPACE) or DEFAULT_NAMESPACE
        self.check_namespace(namespace)
        return namespace

    def check_namespace(self, namespace: str) -> None:
        if not self.principal.may_use(namespace):
            raise UnauthorizedOperation(
                f"the key {self.principal.secret_id} may only act in namespace "
                f"{self.principal.namespace!r}, not {namespace!r}"
            )

    async def function(self) -> Function:
        """The function named by ``FunctionName`` in ``Namespace``."""
        return await self.core.functions.get(self.namespace(), self.text("FunctionName"))


def _code(name: str) -> str:
    return f"InvalidParameterValue.{name}"


def scf_time(ts: float | None) -> str:
    if ts is None:
        return ""
    return time.strftime(TIME_FORMAT, time.gmtime(ts))


def scf_time_ms(ts: float | None) -> str:
    """``%Y-%m-%d %H:%M:%S.%f`` as async events carry it."""
    if ts is None:
        return ""
    whole = int(ts)
    return f"{scf_time(whole)}.{int((ts - whole) * 1_000_000):06d}"


def env_list(environment: Mapping[str, str]) -> dict[str, Any]:
    """``Environment`` as SCF writes it: ``{"Variables": [{"Key", "Value"}]}``."""
    return {"Variables": [{"Key": k, "Value": v} for k, v in sorted(environment.items())]}


def env_dict(value: Mapping[str, Any] | None) -> dict[str, str]:
    """Parse ``Environment.Variables`` into a plain mapping."""
    if value is None:
        return {}
    variables = value.get("Variables") or []
    if not isinstance(variables, list):
        raise InvalidParameter(
            "Environment.Variables must be a list of {Key, Value}",
            code="InvalidParameterValue.Environment",
        )
    env: dict[str, str] = {}
    for item in variables:
        if not isinstance(item, Mapping) or not isinstance(item.get("Key"), str):
            raise InvalidParameter(
                "each of Environment.Variables needs a Key and a Value",
                code="InvalidParameterValue.Environment",
            )
        value_ = item.get("Value", "")
        env[item["Key"]] = "" if value_ is None else str(value_)
    return env


def check_params(
    call: ScfCall,
    action: str,
    served: frozenset[str],
    ignored: frozenset[str] = frozenset(),
    unsupported: frozenset[str] = frozenset(),
) -> None:
    """Refuse what cumulo cannot honour: an SDK field it does not serve answers
    ``UnsupportedOperation`` (naming it), a name nobody knows ``UnknownParameter``.
    ``ignored`` fields have no meaning on cumulo (CLS log topics, roles, tags) and pass."""
    for name, value in call.params.items():
        if name in served or name in ignored or value is None:
            continue
        if name in unsupported:
            raise UnsupportedOperation(
                f"{action}: cumulo does not support {name}; leave it out "
                "(see docs/how-to/moving-from-scf.md)"
            )
        raise InvalidParameter(
            f"{action} has no parameter {name}; it takes: {', '.join(sorted(served))}",
            code="UnknownParameter",
        )


def zip_file(code: Any, field: str = "Code") -> str:
    """The base64 zip of an SCF ``Code`` object (``field`` names it in errors)."""
    for name in ("CosBucketName", "CosObjectName", "DemoId", "TempCosObjectName", "GitUrl",
                 "ImageConfig"):  # fmt: skip
        if code.get(name):
            raise UnsupportedOperation(
                f"{field}.{name}: cumulo takes code only as {field}.ZipFile (a base64 zip)"
            )
    zip_b64 = code.get("ZipFile")
    if not isinstance(zip_b64, str) or not zip_b64:
        raise InvalidParameter(
            f"{field}.ZipFile is required: the zip, base64-encoded",
            code=f"MissingParameter.{field}",
        )
    return zip_b64


def admin_only(call: ScfCall, what: str) -> None:
    """Raise ``UnauthorizedOperation`` for a key confined to a namespace: ``what`` (e.g.
    "create namespaces", "publish layers") is the whole server's business."""
    if call.principal.namespace is not None:
        raise UnauthorizedOperation(
            f"the key {call.principal.secret_id} is confined to namespace "
            f"{call.principal.namespace!r} and may not {what}; use an admin key"
        )
