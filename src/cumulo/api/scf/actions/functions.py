"""SCF actions on functions: CreateFunction, GetFunction, ListFunctions, UpdateFunctionCode,
UpdateFunctionConfiguration, DeleteFunction, GetFunctionAddress.

A package's ``requirements.txt`` is installed in the background (``InstallDependency``,
``TRUE`` unless sent ``FALSE``, which serves a vendored package as it is): meanwhile
``Status`` is ``Creating`` (nothing can run yet) or ``Updating`` (the last good code keeps
serving); a failed install is ``CreateFailed`` / ``UpdateFailed`` with the installer's words
in ``StatusReasons``. ``Layers`` (``[{LayerName, LayerVersion}]``, at most five, in order)
go on the import path after the function's own code and environment.
"""

from __future__ import annotations

import re
import sys
from typing import Any

from cumulo.api.code import signed_code_url
from cumulo.api.scf.actions import action
from cumulo.api.scf.actions.layers import layer_info
from cumulo.api.scf.actions.triggers import trigger_info
from cumulo.api.scf.call import ScfCall, check_params, env_dict, env_list, scf_time, zip_file
from cumulo.engine import validation as v
from cumulo.errors import AsyncRunLocked, InvalidParameter, UnsupportedOperation
from cumulo.models import LATEST, Function, FunctionState

#: What every function reports as its runtime: the interpreter the server runs them with.
RUNTIME = f"Python{sys.version_info.major}.{sys.version_info.minor}"
_PYTHON3 = re.compile(r"^python3(\.\d+)?$", re.IGNORECASE)

#: ``StatusReasons[].ErrorCode`` of a function whose requirements failed to install.
INSTALL_FAILED = "InstallDependencyFailed"

#: Fields that mean nothing on cumulo (logs are its own, there are no roles or tags).
_IGNORED = frozenset(
    {
        "Role", "ClsLogsetId", "ClsTopicId", "Tags", "InitTimeout",
        "AutoDeployClsTopicIndex", "AutoCreateClsTopic", "DnsCache", "PublicNetConfig",
        "L5Enable", "IgnoreSysLog",
    }
)  # fmt: skip
_UNSUPPORTED = frozenset(
    {
        "VpcConfig", "DeadLetterConfig", "CfsConfig", "ProtocolType",
        "ProtocolParams", "InstanceConcurrencyConfig", "IntranetConfig", "EnvId",
        "CosBucketName", "CosObjectName", "CosBucketRegion", "ImageConfig",
    }
)  # fmt: skip


def function_info(fn: Function) -> dict[str, Any]:
    """The fields of SCF's ``Function`` (list entries)."""
    failed = fn.state is FunctionState.FAILED
    return {
        "FunctionName": fn.name,
        "FunctionId": fn.id,
        "Namespace": fn.namespace,
        "Runtime": RUNTIME,
        "AddTime": scf_time(fn.created_at),
        "ModTime": scf_time(fn.updated_at),
        "Status": fn.scf_status,
        "StatusDesc": fn.state_reason if failed else "",
        "StatusReasons": (
            [{"ErrorCode": INSTALL_FAILED, "ErrorMessage": fn.state_reason}] if failed else []
        ),
        "Description": fn.description,
        "Tags": [],
        "Type": "Event",
        "ReservedConcurrencyMem": (fn.max_concurrency or 0) * fn.memory_mb,
        "TotalProvisionedConcurrencyMem": 0,
        "AsyncRunEnable": _switch(fn.async_run),
        "TraceEnable": _switch(fn.async_run),
    }


def function_detail(fn: Function) -> dict[str, Any]:
    """The fields of ``GetFunction``'s answer (``Layers`` and ``Triggers`` are filled by
    the action, which reads them)."""
    failed = fn.state is FunctionState.FAILED
    return {
        **function_info(fn),
        "Handler": fn.handler,
        "CodeSize": fn.code_size_bytes,
        "CodeInfo": "",
        "CodeResult": "failed" if failed else "success",
        "CodeError": fn.state_reason if failed else "",
        "ErrNo": 0,
        "Timeout": _whole_s(fn.timeout_s),
        "MemorySize": fn.memory_mb,
        "Environment": env_list(fn.environment),
        "FunctionVersion": fn.version,
        "Qualifier": fn.version,
        "Triggers": [],
        "Role": "",
        "InstallDependency": _switch(fn.install_dependency),
        "UseGpu": "FALSE",
        "L5Enable": "FALSE",
        "OnsEnable": "FALSE",
        "DnsCache": "FALSE",
        "Layers": [],
        "AvailableStatus": "Available",
        "InitTimeout": 0,
        "ClsLogsetId": "",
        "ClsTopicId": "",
    }


@action("CreateFunction")
async def create_function(call: ScfCall) -> dict[str, Any]:
    check_params(
        call,
        "CreateFunction",
        frozenset({"FunctionName", "Code", "Handler", "Description", "MemorySize", "Timeout",
                   "Environment", "Runtime", "Namespace", "Type", "CodeSource",
                   "AsyncRunEnable", "TraceEnable", "InstallDependency", "Layers"}),
        _IGNORED,
        _UNSUPPORTED,
    )  # fmt: skip
    namespace = call.namespace()
    _check_runtime(call)
    if call.text("Type", "Event") != "Event":
        raise UnsupportedOperation(
            "only Event functions are served (Type=Event); web functions (Type=HTTP) are not"
        )
    async_run = call.flag("AsyncRunEnable")
    if call.flag("TraceEnable") and not async_run:
        raise InvalidParameter(
            "TraceEnable applies to async-run functions (AsyncRunEnable=TRUE)",
            code="InvalidParameterValue.TraceEnable",
        )
    code = call.obj("Code")
    if code is None:
        raise InvalidParameter("Code is required", code="MissingParameter.Code")
    body: dict[str, Any] = {
        "name": call.text("FunctionName"),
        "code": {"zip_base64": zip_file(code)},
        "async_run": async_run,
        "environment": env_dict(call.obj("Environment")),
        "install_dependency": call.flag("InstallDependency", default=True),
    }
    if call.has("Layers"):
        body["layers"] = _layer_refs(call)
    if call.has("Handler"):
        body["handler"] = call.text("Handler")
    if call.has("Description"):
        body["description"] = call.text("Description")
    if call.has("MemorySize"):
        body["memory_mb"] = call.integer("MemorySize")
    if call.has("Timeout"):
        body["timeout_s"] = call.integer("Timeout")
    await call.core.functions.create(namespace, body)
    return {}


@action("GetFunction")
async def get_function(call: ScfCall) -> dict[str, Any]:
    check_params(call, "GetFunction", frozenset({"FunctionName", "Namespace", "Qualifier",
                                                  "ShowCode", "ShowTriggers"}))  # fmt: skip
    fn = await call.function()
    qualifier = call.text("Qualifier", LATEST)
    fn = await call.core.versions.describe(fn, qualifier)
    detail = function_detail(fn)
    triggers = await call.core.store.list_triggers(fn.id)
    detail["Triggers"] = [trigger_info(t) for t in triggers]
    detail["Layers"] = [
        layer_info(await call.core.layers.get(ref.name, ref.version)) for ref in fn.layers
    ]
    return detail


@action("ListFunctions")
async def list_functions(call: ScfCall) -> dict[str, Any]:
    check_params(call, "ListFunctions", frozenset({"Order", "Orderby", "Offset", "Limit",
                                                    "SearchKey", "Namespace", "Description",
                                                    "Filters"}))  # fmt: skip
    namespace = call.namespace()
    order = call.text("Order", "DESC").upper()
    if order not in ("ASC", "DESC"):
        raise InvalidParameter("Order must be ASC or DESC", code="InvalidParameterValue.Order")
    key_of = {
        "AddTime": lambda f: (f.created_at, f.name),
        "ModTime": lambda f: (f.updated_at, f.name),
        "FunctionName": lambda f: (0.0, f.name),
    }
    orderby = call.text("Orderby", "AddTime")
    if orderby not in key_of:
        raise InvalidParameter(
            "Orderby must be AddTime, ModTime or FunctionName",
            code="InvalidParameterValue.Orderby",
        )
    offset = call.integer("Offset", 0)
    limit = call.integer("Limit", 20, low=1, high=1000)
    search = call.text("SearchKey", "").lower()
    described = call.text("Description", "").lower()
    if call.array("Filters"):
        raise UnsupportedOperation("ListFunctions: Filters (VPC, CLS, tags) do not apply here")
    functions = [
        f
        for f in await call.core.functions.list(namespace)
        if search in f.name.lower() and described in f.description.lower()
    ]
    functions.sort(key=key_of[orderby], reverse=order == "DESC")
    page = functions[offset : offset + limit]
    return {"Functions": [function_info(f) for f in page], "TotalCount": len(functions)}


@action("UpdateFunctionCode")
async def update_function_code(call: ScfCall) -> dict[str, Any]:
    check_params(
        call,
        "UpdateFunctionCode",
        frozenset({"FunctionName", "Handler", "ZipFile", "Namespace", "Publish", "Code",
                   "CodeSource", "InstallDependency"}),
        _IGNORED,
        _UNSUPPORTED,
    )  # fmt: skip
    namespace = call.namespace()
    name = call.text("FunctionName")
    code = call.obj("Code")
    if call.has("ZipFile"):
        zip_b64 = call.text("ZipFile")
    elif code is not None:
        zip_b64 = zip_file(code)
    else:
        raise InvalidParameter("send the code as ZipFile (base64)", code="MissingParameter.Code")
    package = v.package_code({"zip_base64": zip_b64}, call.core.settings)
    handler = call.optional_text("Handler")
    install = call.flag("InstallDependency", default=True)
    if call.flag("Publish") and install and package.has_requirements:
        raise InvalidParameter(
            "Publish with a requirements.txt to install: the code builds first; call "
            "PublishVersion once GetFunction's Status is Active",
            code="InvalidParameterValue.Publish",
        )
    await call.core.functions.put_code(namespace, name, package, handler, install)
    if call.flag("Publish"):
        await call.core.versions.publish(namespace, name)
    return {}


@action("UpdateFunctionConfiguration")
async def update_function_configuration(call: ScfCall) -> dict[str, Any]:
    check_params(
        call,
        "UpdateFunctionConfiguration",
        frozenset({"FunctionName", "Description", "MemorySize", "Timeout", "Runtime",
                   "Environment", "Namespace", "Publish", "AsyncRunEnable", "TraceEnable",
                   "Layers", "InstallDependency"}),
        _IGNORED,
        _UNSUPPORTED,
    )  # fmt: skip
    namespace = call.namespace()
    name = call.text("FunctionName")
    current = await call.core.functions.get(namespace, name)
    if call.has("AsyncRunEnable") and call.flag("AsyncRunEnable") != current.async_run:
        raise AsyncRunLocked(
            "AsyncRunEnable is chosen when a function is created and can never change; "
            "create a new function to switch async execution "
            + ("off" if current.async_run else "on")
        )
    _check_runtime(call)
    body: dict[str, Any] = {}
    if call.has("Description"):
        body["description"] = call.text("Description")
    if call.has("MemorySize"):
        body["memory_mb"] = call.integer("MemorySize")
    if call.has("Timeout"):
        body["timeout_s"] = call.integer("Timeout")
    if call.has("Environment"):
        body["environment"] = env_dict(call.obj("Environment"))
    if call.has("Layers"):
        body["layers"] = _layer_refs(call)
    if body:
        current = await call.core.functions.patch(namespace, name, body)
    install = call.flag("InstallDependency", default=current.install_dependency)
    if install != current.install_dependency:
        # The switch is the code's: take the serving code again, installed (or not) anew.
        zip_bytes = await call.core.store.load_code(current.code_sha256)
        package = v.check_zip(zip_bytes, call.core.settings)
        await call.core.functions.put_code(namespace, name, package, None, install)
    if call.flag("Publish"):
        await call.core.versions.publish(namespace, name)
    return {}


@action("DeleteFunction")
async def delete_function(call: ScfCall) -> dict[str, Any]:
    check_params(call, "DeleteFunction", frozenset({"FunctionName", "Namespace", "Qualifier"}))
    namespace = call.namespace()
    name = call.text("FunctionName")
    qualifier = call.text("Qualifier", LATEST)
    if qualifier == LATEST:
        await call.core.functions.delete(namespace, name)
    else:
        await call.core.versions.delete(namespace, name, qualifier)
    return {}


@action("GetFunctionAddress")
async def get_function_address(call: ScfCall) -> dict[str, Any]:
    check_params(call, "GetFunctionAddress", frozenset({"FunctionName", "Namespace",
                                                         "Qualifier"}))  # fmt: skip
    fn = await call.function()
    fn = await call.core.versions.describe(fn, call.text("Qualifier", LATEST))
    url = signed_code_url(call.core, call.base_url, fn.code_sha256)
    return {"Url": url, "CodeSha256": fn.code_sha256}


def _check_runtime(call: ScfCall) -> None:
    runtime = call.optional_text("Runtime")
    if runtime is not None and not _PYTHON3.fullmatch(runtime):
        raise InvalidParameter(
            f"Runtime {runtime!r} is not served: cumulo runs Python 3 functions "
            f"(it runs them on {RUNTIME}); use Python3.x",
            code="InvalidParameterValue.Runtime",
        )


def _layer_refs(call: ScfCall) -> list[dict[str, Any]]:
    """``Layers`` (``[{LayerName, LayerVersion}]``) as the engine's ``layers``. An entry
    with an empty ``LayerName`` is SCF's way to detach: it is left out."""
    refs: list[dict[str, Any]] = []
    for item in call.array("Layers"):
        name = item.get("LayerName") if isinstance(item, dict) else None
        version = item.get("LayerVersion") if isinstance(item, dict) else None
        if name == "":
            continue
        if not isinstance(name, str) or isinstance(version, bool) or not isinstance(version, int):
            raise InvalidParameter(
                "each of Layers needs a LayerName and a LayerVersion (a number)",
                code="InvalidParameterValue.Layers",
            )
        refs.append({"name": name, "version": version})
    return refs


def _switch(on: bool) -> str:
    return "TRUE" if on else "FALSE"


def _whole_s(seconds: float) -> int:
    return int(seconds) if seconds == int(seconds) else int(seconds) + 1
