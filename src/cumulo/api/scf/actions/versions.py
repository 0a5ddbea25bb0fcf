"""SCF actions on versions and aliases: PublishVersion, ListVersionByFunction,
DeleteFunctionVersion, CreateAlias, GetAlias, ListAliases, UpdateAlias, DeleteAlias.

A version is an immutable snapshot of the function's code and runtime configuration; an
alias names one (``FunctionVersion``) and may send a share of the calls to others
(``RoutingConfig.AdditionalVersionWeights``, each ``Weight`` a fraction between 0 and 1,
together below 1). Calls choose one with ``Qualifier`` (see ``invoke.py``). Rule-based
routing (``RoutingConfig.AddtionVersionMatchs``) is not served: ``UnsupportedOperation``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from cumulo.api.scf.actions import action
from cumulo.api.scf.actions.functions import RUNTIME
from cumulo.api.scf.call import ScfCall, check_params, scf_time
from cumulo.errors import InvalidParameter, UnsupportedOperation
from cumulo.models import LATEST, Alias, Function, FunctionVersion

#: Every version cumulo keeps is ready to run.
VERSION_STATUS = "Active"

_ROUTING_FIELDS = frozenset({"AdditionalVersionWeights", "AddtionVersionMatchs"})


# --- versions ---------------------------------------------------------------------------


@action("PublishVersion")
async def publish_version(call: ScfCall) -> dict[str, Any]:
    check_params(call, "PublishVersion", frozenset({"FunctionName", "Description", "Namespace"}))
    namespace = call.namespace()
    published = await call.core.versions.publish(
        namespace, call.text("FunctionName"), call.text("Description", "")
    )
    snap = published.function
    return {
        "FunctionVersion": str(published.version),
        "CodeSize": snap.code_size_bytes,
        "MemorySize": snap.memory_mb,
        "Description": published.description,
        "Handler": snap.handler,
        "Timeout": math.ceil(snap.timeout_s),
        "Runtime": RUNTIME,
        "Namespace": namespace,
    }


@action("ListVersionByFunction")
async def list_version_by_function(call: ScfCall) -> dict[str, Any]:
    served = frozenset({"FunctionName", "Namespace", "Offset", "Limit", "Order", "OrderBy"})
    check_params(call, "ListVersionByFunction", served)
    namespace = call.namespace()
    offset = call.integer("Offset", 0)
    limit = call.integer("Limit", 20, low=1, high=1000)
    order = call.text("Order", "ASC").upper()
    if order not in ("ASC", "DESC"):
        raise InvalidParameter("Order must be ASC or DESC", code="InvalidParameterValue.Order")
    order_by = call.text("OrderBy", "AddTime")
    if order_by not in ("AddTime", "ModTime"):
        raise InvalidParameter(
            "OrderBy must be AddTime or ModTime", code="InvalidParameterValue.OrderBy"
        )
    fn, published = await call.core.versions.list_versions(namespace, call.text("FunctionName"))
    # (AddTime, ModTime, rank): $LATEST ranks first among equal times.
    rows = [((fn.created_at, fn.updated_at, 0), _latest_info(fn))]
    rows += [((p.created_at, p.created_at, p.version), _version_info(p)) for p in published]
    position = 0 if order_by == "AddTime" else 1
    rows.sort(key=lambda row: (row[0][position], row[0][2]), reverse=order == "DESC")
    page = [info for _, info in rows[offset : offset + limit]]
    return {
        "FunctionVersion": [info["Version"] for info in page],
        "Versions": page,
        "TotalCount": len(rows),
    }


@action("DeleteFunctionVersion")
async def delete_function_version(call: ScfCall) -> dict[str, Any]:
    # ForceDelete asks SCF to kill the version's running calls; cumulo lets them finish
    # either way (they run from their own snapshot), so it changes nothing here.
    check_params(call, "DeleteFunctionVersion", frozenset({"FunctionName", "Qualifier",
                                                            "Namespace"}),
                 ignored=frozenset({"ForceDelete"}))  # fmt: skip
    namespace = call.namespace()
    await call.core.versions.delete(namespace, call.text("FunctionName"), call.text("Qualifier"))
    return {}


def _latest_info(fn: Function) -> dict[str, Any]:
    return {
        "Version": LATEST,
        "Description": fn.description,
        "AddTime": scf_time(fn.created_at),
        "ModTime": scf_time(fn.updated_at),
        "Status": VERSION_STATUS,
    }


def _version_info(published: FunctionVersion) -> dict[str, Any]:
    return {
        "Version": str(published.version),
        "Description": published.description,
        "AddTime": scf_time(published.created_at),
        "ModTime": scf_time(published.created_at),
        "Status": VERSION_STATUS,
    }


# --- aliases ----------------------------------------------------------------------------


def alias_info(alias: Alias) -> dict[str, Any]:
    """The fields of SCF's ``Alias`` (and of ``GetAlias``'s answer)."""
    return {
        "Name": alias.name,
        "FunctionVersion": alias.function_version,
        "RoutingConfig": {
            "AdditionalVersionWeights": [
                {"Version": version, "Weight": weight}
                for version, weight in sorted(alias.additional_weights.items())
            ],
            "AddtionVersionMatchs": [],
        },
        "Description": alias.description,
        "AddTime": scf_time(alias.created_at),
        "ModTime": scf_time(alias.updated_at),
    }


_ALIAS_FIELDS = frozenset(
    {"Name", "FunctionName", "FunctionVersion", "Namespace", "RoutingConfig", "Description"}
)


@action("CreateAlias")
async def create_alias(call: ScfCall) -> dict[str, Any]:
    check_params(call, "CreateAlias", _ALIAS_FIELDS)
    namespace = call.namespace()
    body: dict[str, Any] = {
        "name": call.text("Name"),
        "function_version": call.text("FunctionVersion"),
        "additional_weights": _weights(call) or {},
        "description": call.text("Description", ""),
    }
    await call.core.versions.create_alias(namespace, call.text("FunctionName"), body)
    return {}


@action("GetAlias")
async def get_alias(call: ScfCall) -> dict[str, Any]:
    check_params(call, "GetAlias", frozenset({"FunctionName", "Name", "Namespace"}))
    namespace = call.namespace()
    alias = await call.core.versions.get_alias(
        namespace, call.text("FunctionName"), call.text("Name")
    )
    return alias_info(alias)


@action("ListAliases")
async def list_aliases(call: ScfCall) -> dict[str, Any]:
    check_params(call, "ListAliases", frozenset({"FunctionName", "Namespace", "FunctionVersion",
                                                  "Offset", "Limit"}))  # fmt: skip
    namespace = call.namespace()
    offset = _count(call, "Offset", 0, low=0)
    limit = _count(call, "Limit", 20, low=1)
    version = call.optional_text("FunctionVersion")
    aliases = await call.core.versions.list_aliases(namespace, call.text("FunctionName"))
    if version is not None:
        aliases = [
            a for a in aliases if a.function_version == version or version in a.additional_weights
        ]
    page = aliases[offset : offset + limit]
    return {"Aliases": [alias_info(a) for a in page], "TotalCount": len(aliases)}


@action("UpdateAlias")
async def update_alias(call: ScfCall) -> dict[str, Any]:
    """Changes only what is sent: without ``RoutingConfig`` the alias keeps its weights;
    an empty ``AdditionalVersionWeights`` list sends all calls to ``FunctionVersion``."""
    check_params(call, "UpdateAlias", _ALIAS_FIELDS)
    namespace = call.namespace()
    body: dict[str, Any] = {}
    if call.has("FunctionVersion"):
        body["function_version"] = call.text("FunctionVersion")
    weights = _weights(call)
    if weights is not None:
        body["additional_weights"] = weights
    if call.has("Description"):
        body["description"] = call.text("Description")
    await call.core.versions.update_alias(
        namespace, call.text("FunctionName"), call.text("Name"), body
    )
    return {}


@action("DeleteAlias")
async def delete_alias(call: ScfCall) -> dict[str, Any]:
    check_params(call, "DeleteAlias", frozenset({"FunctionName", "Name", "Namespace"}))
    namespace = call.namespace()
    await call.core.versions.delete_alias(namespace, call.text("FunctionName"), call.text("Name"))
    return {}


def _weights(call: ScfCall) -> dict[str, float] | None:
    """``RoutingConfig.AdditionalVersionWeights`` as version → fraction; ``None`` when no
    ``RoutingConfig`` was sent. The fractions themselves are checked by the engine."""
    routing = call.obj("RoutingConfig")
    if routing is None:
        return None
    unknown = sorted(set(routing) - _ROUTING_FIELDS)
    if unknown:
        raise InvalidParameter(
            f"RoutingConfig has no field {', '.join(unknown)}; it takes AdditionalVersionWeights",
            code="InvalidParameterValue.RoutingConfig",
        )
    if routing.get("AddtionVersionMatchs"):
        raise UnsupportedOperation(
            "RoutingConfig.AddtionVersionMatchs: aliases route by weight only; use "
            "AdditionalVersionWeights"
        )
    items = routing.get("AdditionalVersionWeights") or []
    if not isinstance(items, list):
        raise InvalidParameter(
            "RoutingConfig.AdditionalVersionWeights must be a list of {Version, Weight}",
            code="InvalidParameterValue.AdditionalVersionWeights",
        )
    weights: dict[str, float] = {}
    for item in items:
        version = item.get("Version") if isinstance(item, Mapping) else None
        weight = item.get("Weight") if isinstance(item, Mapping) else None
        if (
            not isinstance(version, str)
            or isinstance(weight, bool)
            or not isinstance(weight, int | float)
        ):
            raise InvalidParameter(
                "each of RoutingConfig.AdditionalVersionWeights needs a Version (text) and a "
                "Weight (a fraction between 0 and 1, e.g. 0.1 for a tenth of the calls)",
                code="InvalidParameterValue.AdditionalVersionWeights",
            )
        if version in weights:
            raise InvalidParameter(
                f"version {version} appears twice in RoutingConfig.AdditionalVersionWeights",
                code="InvalidParameterValue.AdditionalVersionWeights",
            )
        weights[version] = float(weight)
    return weights


def _count(call: ScfCall, name: str, default: int, low: int) -> int:
    """A count SCF types as text here (``ListAliases``'s ``Offset`` and ``Limit``); an
    integer is taken too."""
    value = call.params.get(name)
    if value is None or value == "":
        return default
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise InvalidParameter(
            f"{name} must be a whole number of at least {low}",
            code=f"InvalidParameterValue.{name}",
        )
    return value
