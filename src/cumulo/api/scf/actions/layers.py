"""SCF actions on layers: PublishLayerVersion, ListLayers, ListLayerVersions,
GetLayerVersion, DeleteLayerVersion.

A layer version is an immutable zip (``Content.ZipFile``) whose ``python/`` folder (else its
root) goes on the import path of the functions that list it (see
:mod:`cumulo.engine.layers`). Layers belong to the whole server, not to a namespace: any
valid key may read them, only a key not confined to a namespace may publish or delete
(``UnauthorizedOperation`` otherwise). A version with a ``requirements.txt`` is
``Publishing`` until it is installed (``Active``, or ``PublishFailed``). A version that a
function (or a published function version) uses cannot be deleted
(``ResourceInUse.LayerVersion``, SCF's code for it).
"""

from __future__ import annotations

from typing import Any

from cumulo.api.code import signed_code_url
from cumulo.api.scf.actions import action
from cumulo.api.scf.call import ScfCall, admin_only, check_params, scf_time, zip_file
from cumulo.errors import Conflict, InvalidParameter, NotFound
from cumulo.models import LayerVersion

#: The 1-based version number as SCF's ``LayerVersion`` ranges.
_VERSION_MAX = 2**31 - 1


def layer_info(layer: LayerVersion) -> dict[str, Any]:
    """The fields of SCF's ``LayerVersionInfo``."""
    return {
        "LayerName": layer.name,
        "LayerVersion": layer.version,
        "CompatibleRuntimes": list(layer.compatible_runtimes),
        "Description": layer.description,
        "LicenseInfo": layer.license_info,
        "AddTime": scf_time(layer.created_at),
        "Status": layer.scf_status,
        "Stamp": "",
        "Tags": [],
    }


@action("PublishLayerVersion")
async def publish_layer_version(call: ScfCall) -> dict[str, Any]:
    check_params(call, "PublishLayerVersion",
                 frozenset({"LayerName", "CompatibleRuntimes", "Content", "Description",
                            "LicenseInfo"}),
                 ignored=frozenset({"Tags"}))  # fmt: skip
    admin_only(call, "publish layers")
    name = call.text("LayerName")
    content = call.obj("Content")
    if content is None:
        raise InvalidParameter(
            "Content is required: {ZipFile: the layer's zip, base64-encoded}",
            code="MissingParameter.Content",
        )
    body: dict[str, Any] = {"code": {"zip_base64": zip_file(content, field="Content")}}
    if call.has("CompatibleRuntimes"):
        body["compatible_runtimes"] = call.array("CompatibleRuntimes")
    if call.has("Description"):
        body["description"] = call.text("Description")
    if call.has("LicenseInfo"):
        body["license_info"] = call.text("LicenseInfo")
    layer = await call.core.layers.publish(name, body)
    return {"LayerVersion": layer.version}


@action("ListLayers")
async def list_layers(call: ScfCall) -> dict[str, Any]:
    """The newest version of each layer, by name; ``SearchKey`` matches part of the name
    (any case), ``CompatibleRuntime`` one of the version's runtimes."""
    check_params(call, "ListLayers", frozenset({"CompatibleRuntime", "Offset", "Limit",
                                                "SearchKey"}))  # fmt: skip
    runtime = call.optional_text("CompatibleRuntime")
    search = call.text("SearchKey", "").lower()
    offset = call.integer("Offset", 0)
    limit = call.integer("Limit", 20, low=1, high=1000)
    layers = sorted(
        (
            layer
            for layer in await call.core.layers.latest()
            if search in layer.name.lower() and (runtime is None or _runs_on(layer, [runtime]))
        ),
        key=lambda layer: layer.name,
    )
    page = layers[offset : offset + limit]
    return {"Layers": [layer_info(layer) for layer in page], "TotalCount": len(layers)}


@action("ListLayerVersions")
async def list_layer_versions(call: ScfCall) -> dict[str, Any]:
    """Every live version of ``LayerName``, newest first; with ``CompatibleRuntime`` only
    those that list one of its runtimes."""
    check_params(call, "ListLayerVersions", frozenset({"LayerName", "CompatibleRuntime"}))
    name = call.text("LayerName")
    runtimes = call.array("CompatibleRuntime")
    if not all(isinstance(r, str) for r in runtimes):
        raise InvalidParameter(
            "CompatibleRuntime must be a list of runtimes such as Python3.9",
            code="InvalidParameterValue.CompatibleRuntime",
        )
    versions = await call.core.layers.list_versions(name)
    if not versions:
        raise NotFound(
            f"layer {name!r} does not exist; publish it with PublishLayerVersion",
            code="ResourceNotFound.Layer",
        )
    chosen = [layer for layer in versions if not runtimes or _runs_on(layer, runtimes)]
    chosen.sort(key=lambda layer: layer.version, reverse=True)
    return {"LayerVersions": [layer_info(layer) for layer in chosen]}


@action("GetLayerVersion")
async def get_layer_version(call: ScfCall) -> dict[str, Any]:
    """The version's fields and ``Location``, a link to its zip valid for 10 minutes."""
    check_params(call, "GetLayerVersion", frozenset({"LayerName", "LayerVersion"}))
    layer = await call.core.layers.get(
        call.text("LayerName"), call.integer("LayerVersion", low=1, high=_VERSION_MAX)
    )
    info = layer_info(layer)
    del info["Stamp"], info["Tags"]
    return {
        **info,
        "CodeSha256": layer.code_sha256,
        "Location": signed_code_url(call.core, call.base_url, layer.code_sha256),
    }


@action("DeleteLayerVersion")
async def delete_layer_version(call: ScfCall) -> dict[str, Any]:
    check_params(call, "DeleteLayerVersion", frozenset({"LayerName", "LayerVersion"}))
    admin_only(call, "delete layers")
    name = call.text("LayerName")
    version = call.integer("LayerVersion", low=1, high=_VERSION_MAX)
    try:
        await call.core.layers.delete(name, version)
    except Conflict as exc:
        # The engine's ResourceInUse.Layer; SCF names a version in use ResourceInUse.LayerVersion.
        raise Conflict(exc.message, code="ResourceInUse.LayerVersion") from exc
    return {}


def _runs_on(layer: LayerVersion, runtimes: list[str]) -> bool:
    wanted = {r.lower() for r in runtimes}
    return any(r.lower() in wanted for r in layer.compatible_runtimes)
