"""SCF actions on namespaces: CreateNamespace, ListNamespaces, UpdateNamespace,
DeleteNamespace.

A key confined to one namespace sees and may describe only that namespace; making and
removing namespaces is the admin's (``UnauthorizedOperation`` otherwise). ``default``
exists from the start and can be neither made nor removed
(``InvalidParameterValue.DefaultNamespace``); a namespace that still holds functions
cannot be removed (``FailedOperation.DeleteNamespace``). cumulo keeps no change time for a
namespace, so ``ModTime`` is its ``AddTime``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from cumulo.api.scf.actions import action
from cumulo.api.scf.call import DEFAULT_NAMESPACE, ScfCall, admin_only, check_params, scf_time
from cumulo.engine import validation as v
from cumulo.errors import Conflict, InvalidParameter
from cumulo.models import Namespace

#: SCF's ``Namespace.Type``: ``default`` for every namespace (``TCB`` marks ones made by
#: Tencent's mini-program cloud, which cumulo has none of).
NAMESPACE_TYPE = "default"

_ORDER_KEYS: dict[str, Callable[[Namespace], tuple[float, str]]] = {
    "Name": lambda ns: (0.0, ns.name),
    "Updatetime": lambda ns: (ns.created_at, ns.name),
    "AddTime": lambda ns: (ns.created_at, ns.name),
    "ModTime": lambda ns: (ns.created_at, ns.name),
}
_SEARCH_FIELDS: dict[str, Callable[[Namespace], str]] = {
    "Namespace": lambda ns: ns.name,
    "Description": lambda ns: ns.description,
}


def namespace_info(ns: Namespace) -> dict[str, Any]:
    """The fields of SCF's ``Namespace``."""
    return {
        "Name": ns.name,
        "Description": ns.description,
        "AddTime": scf_time(ns.created_at),
        "ModTime": scf_time(ns.created_at),
        "Type": NAMESPACE_TYPE,
    }


@action("CreateNamespace")
async def create_namespace(call: ScfCall) -> dict[str, Any]:
    check_params(call, "CreateNamespace", frozenset({"Namespace", "Description"}),
                 unsupported=frozenset({"ResourceEnv"}))  # fmt: skip
    admin_only(call, "create namespaces")
    name = call.text("Namespace")
    if name == DEFAULT_NAMESPACE:
        raise InvalidParameter(
            "the namespace default always exists and cannot be created; choose another name",
            code="InvalidParameterValue.DefaultNamespace",
        )
    v.check_name(name, field="namespace")
    description = v.check_description(call.text("Description", ""))
    await call.core.store.create_namespace(Namespace(name, description, time.time()))
    return {}


@action("ListNamespaces")
async def list_namespaces(call: ScfCall) -> dict[str, Any]:
    check_params(call, "ListNamespaces", frozenset({"Limit", "Offset", "Orderby", "Order",
                                                     "SearchKey"}))  # fmt: skip
    limit = call.integer("Limit", 20, low=1, high=1000)
    offset = call.integer("Offset", 0)
    orderby = call.text("Orderby", "Name")
    if orderby not in _ORDER_KEYS:
        raise InvalidParameter(
            f"Orderby must be one of {', '.join(_ORDER_KEYS)}", code="InvalidParameterValue.Orderby"
        )
    order = call.text("Order", "ASC").upper()
    if order not in ("ASC", "DESC"):
        raise InvalidParameter("Order must be ASC or DESC", code="InvalidParameterValue.Order")
    searches = _search_keys(call)
    namespaces = [
        ns
        for ns in await call.core.store.list_namespaces()
        if call.principal.may_use(ns.name)
        and all(text in _SEARCH_FIELDS[key](ns).lower() for key, text in searches)
    ]
    namespaces.sort(key=_ORDER_KEYS[orderby], reverse=order == "DESC")
    page = namespaces[offset : offset + limit]
    return {"Namespaces": [namespace_info(ns) for ns in page], "TotalCount": len(namespaces)}


@action("UpdateNamespace")
async def update_namespace(call: ScfCall) -> dict[str, Any]:
    check_params(call, "UpdateNamespace", frozenset({"Namespace", "Description"}))
    name = call.text("Namespace")
    call.check_namespace(name)
    description = v.check_description(call.text("Description"))
    await call.core.store.update_namespace(name, description)
    return {}


@action("DeleteNamespace")
async def delete_namespace(call: ScfCall) -> dict[str, Any]:
    check_params(call, "DeleteNamespace", frozenset({"Namespace"}))
    admin_only(call, "delete namespaces")
    name = call.text("Namespace")
    if name == DEFAULT_NAMESPACE:
        raise InvalidParameter(
            "the namespace default cannot be deleted", code="InvalidParameterValue.DefaultNamespace"
        )
    try:
        await call.core.store.delete_namespace(name)
    except InvalidParameter as exc:
        # The only refusal left once ``default`` is ruled out: the namespace holds functions.
        raise Conflict(exc.message, code="FailedOperation.DeleteNamespace") from exc
    return {}


def _search_keys(call: ScfCall) -> list[tuple[str, str]]:
    """``SearchKey``: ``[{Key: Namespace|Description, Value}]``, all must match (substring,
    any case)."""
    searches: list[tuple[str, str]] = []
    for item in call.array("SearchKey"):
        key = item.get("Key") if isinstance(item, dict) else None
        value = item.get("Value") if isinstance(item, dict) else None
        if key not in _SEARCH_FIELDS or not isinstance(value, str):
            raise InvalidParameter(
                "each SearchKey needs Key (Namespace or Description) and a text Value",
                code="InvalidParameterValue.SearchKey",
            )
        searches.append((key, value.lower()))
    return searches
