"""Versions and aliases through the official SCF SDK against a real server: published,
listed, named, routed by weight and removed with SCF's fields and error codes; and a
``Qualifier`` on a call selects the code that runs, which the run sees and the record keeps."""

from __future__ import annotations

import json
import re
import time
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from cumulo_server import ServerProcess
from scf_sdk import request, sdk_client, zip_b64
from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException
from tencentcloud.scf.v20180416 import scf_client

pytestmark = pytest.mark.filterwarnings("ignore:datetime.datetime.utcfromtimestamp")

SCF_TIME = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$")
HANDLER = """\
import os

def main_handler(event, context):
    return {{
        "marker": {marker!r},
        "env": os.environ["SCF_FUNCTIONVERSION"],
        "context": context.function_version,
    }}
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    srv = ServerProcess(tmp_path_factory.mktemp("versions") / "data")
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture(scope="module")
def scf(server: ServerProcess) -> scf_client.ScfClient:
    return sdk_client(server)


def error_code(call: Callable[[], Any]) -> str:
    with pytest.raises(TencentCloudSDKException) as info:
        call()
    assert info.value.message
    return str(info.value.code)


def code(marker: str) -> str:
    return zip_b64({"index.py": HANDLER.format(marker=marker)})


def deploy(scf: scf_client.ScfClient, name: str, marker: str = "v1") -> None:
    scf.CreateFunction(
        request(
            "CreateFunctionRequest",
            {"FunctionName": name, "Code": {"ZipFile": code(marker)}, "MemorySize": 128,
             "Timeout": 5, "Description": f"{name} at {marker}"},
        )
    )  # fmt: skip


def update_code(scf: scf_client.ScfClient, name: str, marker: str) -> None:
    scf.UpdateFunctionCode(
        request("UpdateFunctionCodeRequest", {"FunctionName": name, "ZipFile": code(marker)})
    )


def publish(scf: scf_client.ScfClient, name: str, description: str = "") -> Any:
    return scf.PublishVersion(
        request("PublishVersionRequest", {"FunctionName": name, "Description": description})
    )


def versions(scf: scf_client.ScfClient, name: str, **params: Any) -> Any:
    return scf.ListVersionByFunction(
        request("ListVersionByFunctionRequest", {"FunctionName": name, **params})
    )


def alias(scf: scf_client.ScfClient, action: str, name: str, **params: Any) -> Any:
    """``CreateAlias``/``GetAlias``/``UpdateAlias``/``DeleteAlias`` of alias ``params["Name"]``
    of function ``name``."""
    return getattr(scf, action)(request(f"{action}Request", {"FunctionName": name, **params}))


def weights(*pairs: tuple[str, float]) -> dict[str, Any]:
    return {"AdditionalVersionWeights": [{"Version": v, "Weight": w} for v, w in pairs]}


def invoke(scf: scf_client.ScfClient, name: str, qualifier: str | None = None) -> dict[str, Any]:
    params = {"FunctionName": name, "Event": "{}"}
    if qualifier is not None:
        params["Qualifier"] = qualifier
    result = scf.InvokeFunction(request("InvokeFunctionRequest", params)).Result
    assert result.InvokeResult == 0, result.ErrMsg
    answer: dict[str, Any] = json.loads(result.RetMsg)
    return answer


def test_versions_are_published_and_listed(scf: scf_client.ScfClient) -> None:
    deploy(scf, "lister", "v1")
    first = publish(scf, "lister", "first cut")
    assert first.FunctionVersion == "1"
    assert first.Description == "first cut"
    assert first.Handler == "index.main_handler"
    assert first.MemorySize == 128 and first.Timeout == 5
    assert first.CodeSize > 0
    assert first.Runtime.startswith("Python3")
    assert first.Namespace == "default"
    update_code(scf, "lister", "v2")
    assert publish(scf, "lister").FunctionVersion == "2"

    listing = versions(scf, "lister")
    assert listing.FunctionVersion == ["$LATEST", "1", "2"]
    assert listing.TotalCount == 3
    entries = [v._serialize() for v in listing.Versions]
    assert [e["Version"] for e in entries] == ["$LATEST", "1", "2"]
    assert entries[0]["Description"] == "lister at v1"
    assert entries[1]["Description"] == "first cut"
    assert all(e["Status"] == "Active" for e in entries)
    assert all(SCF_TIME.match(e["AddTime"]) and SCF_TIME.match(e["ModTime"]) for e in entries)

    assert versions(scf, "lister", Order="DESC").FunctionVersion == ["2", "1", "$LATEST"]
    page = versions(scf, "lister", Offset=1, Limit=1)
    assert page.FunctionVersion == ["1"] and page.TotalCount == 3


def test_publishing_and_listing_refuse_an_unknown_function_or_a_bad_order(
    scf: scf_client.ScfClient,
) -> None:
    assert error_code(lambda: publish(scf, "ghost")) == "ResourceNotFound.Function"
    assert error_code(lambda: versions(scf, "ghost")) == "ResourceNotFound.Function"
    deploy(scf, "orderly")
    assert error_code(lambda: versions(scf, "orderly", OrderBy="Size")) == (
        "InvalidParameterValue.OrderBy"
    )
    assert error_code(lambda: versions(scf, "orderly", Order="UP")) == "InvalidParameterValue.Order"


def test_a_version_is_deleted_unless_latest_unknown_or_aliased(scf: scf_client.ScfClient) -> None:
    deploy(scf, "pruned")
    publish(scf, "pruned")
    publish(scf, "pruned")
    alias(scf, "CreateAlias", "pruned", Name="keep", FunctionVersion="1")

    def delete(qualifier: str) -> None:
        scf.DeleteFunctionVersion(
            request(
                "DeleteFunctionVersionRequest", {"FunctionName": "pruned", "Qualifier": qualifier}
            )
        )

    assert error_code(lambda: delete("$LATEST")) == "InvalidParameterValue.Qualifier"
    assert error_code(lambda: delete("9")) == "ResourceNotFound.Version"
    assert error_code(lambda: delete("1")) == "ResourceInUse.Alias"

    delete("2")
    assert versions(scf, "pruned").FunctionVersion == ["$LATEST", "1"]
    assert error_code(lambda: invoke(scf, "pruned", "2")) == "ResourceNotFound.Qualifier"
    assert error_code(lambda: delete("2")) == "ResourceNotFound.Version"
    # Numbers are never reused.
    assert publish(scf, "pruned").FunctionVersion == "3"


def test_an_alias_is_created_read_listed_updated_and_deleted(scf: scf_client.ScfClient) -> None:
    deploy(scf, "aliased")
    for _ in range(3):
        publish(scf, "aliased")
    alias(scf, "CreateAlias", "aliased", Name="prod", FunctionVersion="1",
          Description="what users get")  # fmt: skip
    alias(scf, "CreateAlias", "aliased", Name="canary", FunctionVersion="2",
          RoutingConfig=weights(("3", 0.25)))  # fmt: skip

    prod = alias(scf, "GetAlias", "aliased", Name="prod")
    assert prod.Name == "prod" and prod.FunctionVersion == "1"
    assert prod.Description == "what users get"
    assert prod.RoutingConfig.AdditionalVersionWeights == []
    assert SCF_TIME.match(prod.AddTime) and SCF_TIME.match(prod.ModTime)
    canary = alias(scf, "GetAlias", "aliased", Name="canary")
    [extra] = canary.RoutingConfig.AdditionalVersionWeights
    assert (extra.Version, extra.Weight) == ("3", 0.25)

    def listed(**params: Any) -> tuple[list[str], int]:
        answer = scf.ListAliases(
            request("ListAliasesRequest", {"FunctionName": "aliased", **params})
        )
        return [a.Name for a in answer.Aliases], answer.TotalCount

    assert listed() == (["canary", "prod"], 2)
    assert listed(FunctionVersion="1") == (["prod"], 1)
    assert listed(FunctionVersion="3") == (["canary"], 1)  # a share of its calls
    assert listed(Offset="1", Limit="1") == (["prod"], 2)

    alias(scf, "UpdateAlias", "aliased", Name="prod", FunctionVersion="2",
          RoutingConfig=weights(("1", 0.1)), Description="moving on")  # fmt: skip
    prod = alias(scf, "GetAlias", "aliased", Name="prod")
    assert prod.FunctionVersion == "2" and prod.Description == "moving on"
    assert [(w.Version, w.Weight) for w in prod.RoutingConfig.AdditionalVersionWeights] == [
        ("1", 0.1)
    ]
    # What is not sent stays; an empty weight list sends every call to FunctionVersion.
    alias(scf, "UpdateAlias", "aliased", Name="prod", FunctionVersion="3")
    prod = alias(scf, "GetAlias", "aliased", Name="prod")
    assert prod.FunctionVersion == "3" and len(prod.RoutingConfig.AdditionalVersionWeights) == 1
    alias(scf, "UpdateAlias", "aliased", Name="prod", RoutingConfig=weights())
    assert (
        alias(scf, "GetAlias", "aliased", Name="prod").RoutingConfig.AdditionalVersionWeights == []
    )

    alias(scf, "DeleteAlias", "aliased", Name="canary")
    assert listed() == (["prod"], 1)


def test_alias_actions_refuse_what_cannot_be_routed(scf: scf_client.ScfClient) -> None:
    deploy(scf, "strict")
    publish(scf, "strict")
    publish(scf, "strict")
    alias(scf, "CreateAlias", "strict", Name="live", FunctionVersion="1")

    def create(**params: Any) -> Callable[[], Any]:
        return lambda: alias(scf, "CreateAlias", "strict", **params)

    assert error_code(create(Name="live", FunctionVersion="2")) == "ResourceInUse.Alias"
    assert error_code(create(Name="next", FunctionVersion="7")) == "ResourceNotFound.Version"
    assert error_code(create(Name="bad name!", FunctionVersion="1")) == (
        "InvalidParameterValue.Name"
    )
    assert error_code(create(Name="next")) == "MissingParameter"
    for share in (1.5, 0.0):
        assert (
            error_code(
                create(Name="next", FunctionVersion="1", RoutingConfig=weights(("2", share)))
            )
            == "InvalidParameterValue.AdditionalVersionWeights"
        )
    assert (
        error_code(create(Name="next", FunctionVersion="1", RoutingConfig=weights(("7", 0.5))))
        == "ResourceNotFound.Version"
    )
    rules = {"AddtionVersionMatchs": [{"Version": "2", "Key": "invoke.headers.User",
                                       "Method": "exact", "Expression": "ann"}]}  # fmt: skip
    assert error_code(create(Name="next", FunctionVersion="1", RoutingConfig=rules)) == (
        "UnsupportedOperation"
    )
    assert error_code(create(Name="next", FunctionName="ghost", FunctionVersion="1")) == (
        "ResourceNotFound.Function"
    )

    assert error_code(lambda: alias(scf, "GetAlias", "strict", Name="nope")) == (
        "ResourceNotFound.Alias"
    )
    assert error_code(lambda: alias(scf, "UpdateAlias", "strict", Name="nope",
                                    FunctionVersion="1")) == "ResourceNotFound.Alias"  # fmt: skip
    assert error_code(lambda: alias(scf, "UpdateAlias", "strict", Name="live",
                                    RoutingConfig=weights(("1", 0.5)))) == (
        "InvalidParameterValue.AdditionalVersionWeights"
    )  # fmt: skip
    assert error_code(lambda: alias(scf, "DeleteAlias", "strict", Name="nope")) == (
        "ResourceNotFound.Alias"
    )
    list_ghost = request("ListAliasesRequest", {"FunctionName": "ghost"})
    assert error_code(lambda: scf.ListAliases(list_ghost)) == "ResourceNotFound.Function"
    bad_limit = request("ListAliasesRequest", {"FunctionName": "strict", "Limit": "many"})
    assert error_code(lambda: scf.ListAliases(bad_limit)) == "InvalidParameterValue.Limit"
    # Nothing of the refused calls was made.
    assert alias(scf, "GetAlias", "strict", Name="live").FunctionVersion == "1"
    assert error_code(lambda: alias(scf, "GetAlias", "strict", Name="next")) == (
        "ResourceNotFound.Alias"
    )


def test_a_qualifier_selects_the_version_that_runs(scf: scf_client.ScfClient) -> None:
    deploy(scf, "router", "v1")
    publish(scf, "router")
    update_code(scf, "router", "v2")
    alias(scf, "CreateAlias", "router", Name="stable", FunctionVersion="1")

    assert invoke(scf, "router", "1") == {"marker": "v1", "env": "1", "context": "1"}
    latest = {"marker": "v2", "env": "$LATEST", "context": "$LATEST"}
    assert invoke(scf, "router", "$LATEST") == latest
    assert invoke(scf, "router") == latest
    assert invoke(scf, "router", "stable") == {"marker": "v1", "env": "1", "context": "1"}
    assert error_code(lambda: invoke(scf, "router", "nightly")) == "ResourceNotFound.Qualifier"


def test_an_alias_splits_calls_between_versions_by_weight(scf: scf_client.ScfClient) -> None:
    deploy(scf, "canary", "v1")
    publish(scf, "canary")
    update_code(scf, "canary", "v2")
    publish(scf, "canary")
    alias(scf, "CreateAlias", "canary", Name="split", FunctionVersion="1",
          RoutingConfig=weights(("2", 0.5)))  # fmt: skip

    runs = [invoke(scf, "canary", "split") for _ in range(200)]
    seen = Counter(run["marker"] for run in runs)
    assert set(seen) == {"v1", "v2"}
    # 200 fair coin flips land outside 60-140 with probability below 1e-8.
    assert 60 <= seen["v2"] <= 140, seen
    for run in runs:
        expected = "1" if run["marker"] == "v1" else "2"
        assert run["env"] == run["context"] == expected


def test_the_version_that_ran_is_recorded(server: ServerProcess, scf: scf_client.ScfClient) -> None:
    deploy(scf, "recorded", "v1")
    publish(scf, "recorded")
    update_code(scf, "recorded", "v2")
    alias(scf, "CreateAlias", "recorded", Name="pinned", FunctionVersion="1")

    ran: dict[str, str] = {}
    for qualifier in ("pinned", "$LATEST"):
        answer = scf.Invoke(
            request("InvokeRequest", {"FunctionName": "recorded", "InvocationType": "Event",
                                      "Qualifier": qualifier})
        )  # fmt: skip
        ran[qualifier] = answer.Result.FunctionRequestId

    for qualifier, version, marker in (("pinned", "1", "v1"), ("$LATEST", "$LATEST", "v2")):
        record = wait(server, ran[qualifier])
        assert record["status"] == "succeeded"
        assert record["function_version"] == version
        assert record["result"] == {"marker": marker, "env": version, "context": version}
        events = scf.ListAsyncEvents(
            request("ListAsyncEventsRequest", {"FunctionName": "recorded",
                                               "InvokeRequestId": ran[qualifier]})
        ).EventList  # fmt: skip
        assert [(e.InvokeRequestId, e.Qualifier) for e in events] == [(ran[qualifier], version)]


def wait(server: ServerProcess, request_id: str, timeout_s: float = 30.0) -> dict[str, Any]:
    """The invocation's REST record once it has ended."""
    deadline = time.monotonic() + timeout_s
    while True:
        answer = httpx.get(
            f"{server.url}/v1/namespaces/default/invocations/{request_id}",
            headers={"Authorization": f"Bearer {server.token}"},
            timeout=10,
        )
        answer.raise_for_status()
        record: dict[str, Any] = answer.json()
        if record["status"] not in ("queued", "running"):
            return record
        assert time.monotonic() < deadline, f"{request_id} still {record['status']}"
        time.sleep(0.05)
