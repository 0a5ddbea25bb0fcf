"""Function dependencies and layers through the official SCF SDK against a real server:
``InstallDependency`` on CreateFunction and UpdateFunctionCode with the function's
``Status`` / ``StatusReasons`` as the build goes, and PublishLayerVersion, ListLayers,
ListLayerVersions, GetLayerVersion, DeleteLayerVersion with ``Layers`` on functions; each
with a success and its errors."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from cumulo_server import ServerProcess
from scf_sdk import make_key, request, sdk_client, zip_b64
from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException
from tencentcloud.scf.v20180416 import scf_client

pytestmark = pytest.mark.filterwarnings("ignore:datetime.datetime.utcfromtimestamp")

#: Long enough for a cold install of a tiny package (and a failed resolution) on a slow host.
BUILD_TIMEOUT_S = 60.0
#: A tiny pure-Python package that this host's index holds.
SIX = "six==1.17.0\n"
MISSING = "cumulo-surely-no-such-package-4f1c==9.9.9"
SIX_HANDLER = "import six\ndef main_handler(event, context):\n    return six.__version__\n"
CONFINED_NS = "team-deps"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    srv = ServerProcess(tmp_path_factory.mktemp("scf-deps") / "data")
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture(scope="module")
def scf(server: ServerProcess) -> scf_client.ScfClient:
    return sdk_client(server)


@pytest.fixture(scope="module")
def confined(server: ServerProcess, scf: scf_client.ScfClient) -> scf_client.ScfClient:
    """A client whose key may act only in namespace ``team-deps``."""
    scf.CreateNamespace(request("CreateNamespaceRequest", {"Namespace": CONFINED_NS}))
    return sdk_client(server, make_key(server, CONFINED_NS))


def unique(prefix: str) -> str:
    return f"{prefix}-{os.urandom(3).hex()}"


def error_of(call: Any, *args: Any) -> str:
    with pytest.raises(TencentCloudSDKException) as caught:
        call(*args)
    return str(caught.value.code)


def create(scf: scf_client.ScfClient, name: str, files: dict[str, str], **extra: Any) -> None:
    params = {"FunctionName": name, "Code": {"ZipFile": zip_b64(files)},
              "Handler": "index.main_handler", "Runtime": "Python3.9", **extra}  # fmt: skip
    scf.CreateFunction(request("CreateFunctionRequest", params))


def get(scf: scf_client.ScfClient, name: str) -> Any:
    return scf.GetFunction(request("GetFunctionRequest", {"FunctionName": name}))


def settled(scf: scf_client.ScfClient, name: str) -> Any:
    """GetFunction once the build ended (``Status`` no longer Creating or Updating)."""
    deadline = time.monotonic() + BUILD_TIMEOUT_S
    while True:
        got = get(scf, name)
        if got.Status not in ("Creating", "Updating") or time.monotonic() > deadline:
            return got
        time.sleep(0.2)


def invoke(scf: scf_client.ScfClient, name: str, event: dict[str, Any] | None = None) -> Any:
    ran = scf.Invoke(
        request("InvokeRequest", {"FunctionName": name, "ClientContext": json.dumps(event or {})})
    )
    assert ran.Result.InvokeResult == 0, ran.Result.ErrMsg
    return json.loads(ran.Result.RetMsg)


def publish(scf: scf_client.ScfClient, name: str, files: dict[str, str], **extra: Any) -> int:
    params = {"LayerName": name, "Content": {"ZipFile": zip_b64(files)}, **extra}
    answer = scf.PublishLayerVersion(request("PublishLayerVersionRequest", params))
    return int(answer.LayerVersion)


# -- InstallDependency -------------------------------------------------------------------------


@pytest.mark.slow
def test_install_dependency_builds_then_the_function_runs(scf: scf_client.ScfClient) -> None:
    name = unique("six")
    create(scf, name, {"index.py": SIX_HANDLER, "requirements.txt": SIX},
           InstallDependency="TRUE")  # fmt: skip
    got = get(scf, name)
    assert (got.Status, got.InstallDependency, got.StatusReasons) == ("Creating", "TRUE", [])
    got = settled(scf, name)
    assert got.Status == "Active", got.StatusReasons
    assert got.StatusReasons == [] and got.CodeResult == "success"
    listed = scf.ListFunctions(request("ListFunctionsRequest", {"SearchKey": name}))
    assert [(f.FunctionName, f.Status) for f in listed.Functions] == [(name, "Active")]
    assert invoke(scf, name) == "1.17.0"


@pytest.mark.slow
def test_a_requirement_that_does_not_exist_fails_the_create(scf: scf_client.ScfClient) -> None:
    name = unique("missing")
    create(scf, name, {"index.py": SIX_HANDLER, "requirements.txt": MISSING + "\n"},
           InstallDependency="TRUE")  # fmt: skip
    got = settled(scf, name)
    assert got.Status == "CreateFailed"
    [reason] = got.StatusReasons
    assert reason.ErrorCode == "InstallDependencyFailed"
    assert "cumulo-surely-no-such-package-4f1c" in reason.ErrorMessage
    assert got.CodeResult == "failed" and got.CodeError == reason.ErrorMessage
    listed = scf.ListFunctions(request("ListFunctionsRequest", {"SearchKey": name}))
    assert [(f.Status, len(f.StatusReasons)) for f in listed.Functions] == [("CreateFailed", 1)]
    refused = request("InvokeRequest", {"FunctionName": name})
    assert error_of(scf.Invoke, refused) == "ResourceUnavailable.Function"


def test_install_dependency_false_serves_a_vendored_package(scf: scf_client.ScfClient) -> None:
    name = unique("vendored")
    vendored = {"index.py": SIX_HANDLER, "requirements.txt": SIX,
                "six.py": "__version__ = 'vendored'\n"}  # fmt: skip
    create(scf, name, vendored, InstallDependency="FALSE")
    got = get(scf, name)
    assert (got.Status, got.InstallDependency) == ("Active", "FALSE")
    assert invoke(scf, name) == "vendored"
    bad = {"FunctionName": unique("flag"), "Code": {"ZipFile": zip_b64(vendored)},
           "Handler": "index.main_handler", "InstallDependency": "MAYBE"}  # fmt: skip
    assert (
        error_of(scf.call_json, "CreateFunction", bad) == "InvalidParameterValue.InstallDependency"
    )


@pytest.mark.slow
def test_switching_install_dependency_on_installs_the_serving_code(
    scf: scf_client.ScfClient,
) -> None:
    name = unique("switch")
    create(scf, name, {"index.py": SIX_HANDLER, "requirements.txt": SIX},
           InstallDependency="FALSE")  # fmt: skip
    ran = scf.Invoke(request("InvokeRequest", {"FunctionName": name})).Result
    assert ran.InvokeResult != 0 and "six" in ran.ErrMsg  # nothing installed, nothing vendored
    scf.UpdateFunctionConfiguration(
        request(
            "UpdateFunctionConfigurationRequest",
            {"FunctionName": name, "InstallDependency": "TRUE"},
        )
    )
    got = settled(scf, name)
    assert (got.Status, got.InstallDependency) == ("Active", "TRUE"), got.StatusReasons
    assert invoke(scf, name) == "1.17.0"


@pytest.mark.slow
def test_a_failed_update_keeps_the_old_code_serving(scf: scf_client.ScfClient) -> None:
    name = unique("upd")
    create(scf, name, {"index.py": "def main_handler(event, context):\n    return 'v1'\n"})
    assert get(scf, name).Status == "Active"
    broken = zip_b64({"index.py": SIX_HANDLER, "requirements.txt": MISSING + "\n"})
    scf.UpdateFunctionCode(request("UpdateFunctionCodeRequest",
                                   {"FunctionName": name, "ZipFile": broken,
                                    "InstallDependency": "TRUE"}))  # fmt: skip
    assert get(scf, name).Status == "Updating"
    assert invoke(scf, name) == "v1"  # the last good code serves while the new one builds
    got = settled(scf, name)
    assert got.Status == "UpdateFailed"
    [reason] = got.StatusReasons
    assert reason.ErrorCode == "InstallDependencyFailed"
    assert "cumulo-surely-no-such-package-4f1c" in reason.ErrorMessage
    assert invoke(scf, name) == "v1"
    # The same code sent as vendored (FALSE) needs no build and serves at once.
    vendored = zip_b64({"index.py": SIX_HANDLER, "requirements.txt": MISSING + "\n",
                        "six.py": "__version__ = 'mine'\n"})  # fmt: skip
    scf.UpdateFunctionCode(request("UpdateFunctionCodeRequest",
                                   {"FunctionName": name, "ZipFile": vendored,
                                    "InstallDependency": "FALSE"}))  # fmt: skip
    got = get(scf, name)
    assert (got.Status, got.StatusReasons, got.InstallDependency) == ("Active", [], "FALSE")
    assert invoke(scf, name) == "mine"
    missing = request("UpdateFunctionCodeRequest", {"FunctionName": unique("nope"),
                                                    "ZipFile": vendored})  # fmt: skip
    assert error_of(scf.UpdateFunctionCode, missing) == "ResourceNotFound.Function"


# -- layers ------------------------------------------------------------------------------------

GREET = {"python/greet.py": "def hello(who):\n    return 'hello ' + who\n"}
GREET_HANDLER = ("import greet\n"
                 "def main_handler(event, context):\n"
                 "    return greet.hello(event.get('who', 'world'))\n")  # fmt: skip


def test_publish_list_and_get_layer_versions(
    server: ServerProcess, scf: scf_client.ScfClient
) -> None:
    layer = unique("tools")
    first = publish(scf, layer, GREET, CompatibleRuntimes=["Python3.9"], Description="one",
                    LicenseInfo="MIT")  # fmt: skip
    second = publish(scf, layer, GREET, CompatibleRuntimes=["Python3.10"], Description="two")
    assert (first, second) == (1, 2)

    def listed(**params: Any) -> list[tuple[str, int]]:
        answer = scf.ListLayers(request("ListLayersRequest", params))
        return [(x.LayerName, x.LayerVersion) for x in answer.Layers]

    assert listed(SearchKey=layer) == [(layer, 2)]  # the newest version of each layer
    assert listed(SearchKey=layer.upper()[:-1]) == [(layer, 2)]
    assert listed(SearchKey=layer, CompatibleRuntime="Python3.10") == [(layer, 2)]
    assert listed(SearchKey=layer, CompatibleRuntime="Python3.9") == []
    other = unique("tools")
    publish(scf, other, GREET)
    both = scf.ListLayers(request("ListLayersRequest", {"SearchKey": "tools-", "Limit": 1}))
    assert both.TotalCount >= 2 and len(both.Layers) == 1
    bad_limit = request("ListLayersRequest", {"Limit": 0})
    assert error_of(scf.ListLayers, bad_limit) == "InvalidParameterValue.Limit"

    versions = scf.ListLayerVersions(request("ListLayerVersionsRequest", {"LayerName": layer}))
    assert [(v.LayerVersion, v.Description, v.Status) for v in versions.LayerVersions] == [
        (2, "two", "Active"), (1, "one", "Active")
    ]  # fmt: skip
    only = scf.ListLayerVersions(
        request(
            "ListLayerVersionsRequest", {"LayerName": layer, "CompatibleRuntime": ["Python3.9"]}
        )
    )
    assert [v.LayerVersion for v in only.LayerVersions] == [1]
    unknown = request("ListLayerVersionsRequest", {"LayerName": unique("nolayer")})
    assert error_of(scf.ListLayerVersions, unknown) == "ResourceNotFound.Layer"

    got = scf.GetLayerVersion(request("GetLayerVersionRequest",
                                      {"LayerName": layer, "LayerVersion": 1}))  # fmt: skip
    assert (got.LayerName, got.LayerVersion, got.Status) == (layer, 1, "Active")
    assert (got.CompatibleRuntimes, got.Description, got.LicenseInfo) == (["Python3.9"], "one",
                                                                          "MIT")  # fmt: skip
    assert got.AddTime
    zipped = httpx.get(got.Location)
    assert zipped.status_code == 200
    assert zipped.content == base64.b64decode(zip_b64(GREET))
    assert hashlib.sha256(zipped.content).hexdigest() == got.CodeSha256
    no_version = request("GetLayerVersionRequest", {"LayerName": layer, "LayerVersion": 9})
    assert error_of(scf.GetLayerVersion, no_version) == "ResourceNotFound.LayerVersion"

    bad_name = {"LayerName": "9starts-with-digit", "Content": {"ZipFile": zip_b64(GREET)}}
    assert error_of(scf.call_json, "PublishLayerVersion", bad_name) == (
        "InvalidParameterValue.LayerName"
    )
    no_content = {"LayerName": layer}
    assert error_of(scf.call_json, "PublishLayerVersion", no_content) == "MissingParameter.Content"
    not_zip = {"LayerName": layer, "Content": {"ZipFile": base64.b64encode(b"nope").decode()}}
    assert error_of(scf.call_json, "PublishLayerVersion", not_zip) == (
        "InvalidParameterValue.ZipFile"
    )


def test_a_function_imports_from_its_layer_which_cannot_go_while_used(
    scf: scf_client.ScfClient,
) -> None:
    layer = unique("greet")
    version = publish(scf, layer, GREET, CompatibleRuntimes=["Python3.9"], Description="g")
    name = unique("layered")
    create(scf, name, {"index.py": GREET_HANDLER},
           Layers=[{"LayerName": layer, "LayerVersion": version}])  # fmt: skip
    assert invoke(scf, name, {"who": "scf"}) == "hello scf"
    got = get(scf, name)
    [info] = got.Layers
    assert (info.LayerName, info.LayerVersion, info.Status) == (layer, version, "Active")
    assert (info.CompatibleRuntimes, info.Description) == (["Python3.9"], "g") and info.AddTime

    delete = request("DeleteLayerVersionRequest", {"LayerName": layer, "LayerVersion": version})
    assert error_of(scf.DeleteLayerVersion, delete) == "ResourceInUse.LayerVersion"
    unknown_ref = {"FunctionName": unique("nolayer"), "Handler": "index.main_handler",
                   "Code": {"ZipFile": zip_b64({"index.py": GREET_HANDLER})},
                   "Layers": [{"LayerName": layer, "LayerVersion": 99}]}  # fmt: skip
    assert error_of(scf.call_json, "CreateFunction", unknown_ref) == "ResourceNotFound.LayerVersion"
    too_many = {**unknown_ref, "Layers": [{"LayerName": layer, "LayerVersion": version}] * 6}
    assert error_of(scf.call_json, "CreateFunction", too_many) == "InvalidParameterValue.Layers"

    # Detaching (SCF's empty LayerName) frees the version; then it can be deleted.
    scf.UpdateFunctionConfiguration(request("UpdateFunctionConfigurationRequest",
        {"FunctionName": name, "Layers": [{"LayerName": "", "LayerVersion": 0}]}))  # fmt: skip
    assert get(scf, name).Layers == []
    scf.DeleteLayerVersion(delete)
    gone = request("GetLayerVersionRequest", {"LayerName": layer, "LayerVersion": version})
    assert error_of(scf.GetLayerVersion, gone) == "ResourceNotFound.LayerVersion"
    assert error_of(scf.DeleteLayerVersion, delete) == "ResourceNotFound.LayerVersion"

    # Attached again by UpdateFunctionConfiguration.
    again = publish(scf, layer, GREET)
    attach = {"FunctionName": name, "Layers": [{"LayerName": layer, "LayerVersion": again}]}
    scf.UpdateFunctionConfiguration(request("UpdateFunctionConfigurationRequest", attach))
    assert [(x.LayerName, x.LayerVersion) for x in get(scf, name).Layers] == [(layer, again)]
    assert invoke(scf, name) == "hello world"


def test_only_an_admin_key_publishes_or_deletes_layers(
    scf: scf_client.ScfClient, confined: scf_client.ScfClient
) -> None:
    layer = unique("shared")
    version = publish(scf, layer, GREET)
    refused = request("PublishLayerVersionRequest",
                      {"LayerName": layer, "Content": {"ZipFile": zip_b64(GREET)}})  # fmt: skip
    assert error_of(confined.PublishLayerVersion, refused) == "UnauthorizedOperation"
    delete = request("DeleteLayerVersionRequest", {"LayerName": layer, "LayerVersion": version})
    assert error_of(confined.DeleteLayerVersion, delete) == "UnauthorizedOperation"
    # Reads are anyone's, and a confined tenant may use the layer in its own functions.
    listed = confined.ListLayers(request("ListLayersRequest", {"SearchKey": layer}))
    assert [x.LayerName for x in listed.Layers] == [layer]
    got = confined.GetLayerVersion(
        request("GetLayerVersionRequest", {"LayerName": layer, "LayerVersion": version})
    )
    assert got.LayerVersion == version
    name = unique("tenant")
    create(confined, name, {"index.py": GREET_HANDLER}, Namespace=CONFINED_NS,
           Layers=[{"LayerName": layer, "LayerVersion": version}])  # fmt: skip
    ran = confined.Invoke(request("InvokeRequest", {"FunctionName": name,
                                                    "Namespace": CONFINED_NS}))  # fmt: skip
    assert json.loads(ran.Result.RetMsg) == "hello world"
