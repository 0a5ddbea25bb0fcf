"""Namespaces through the official SCF SDK against a real server: made, listed, described
and removed with SCF's fields and error codes, and kept to its own namespace for a key
confined to one."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from functools import partial
from typing import Any

import pytest
from cumulo_server import ServerProcess
from scf_sdk import make_key, request, sdk_client, zip_b64
from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException
from tencentcloud.scf.v20180416 import scf_client

pytestmark = pytest.mark.filterwarnings("ignore:datetime.datetime.utcfromtimestamp")

SCF_TIME = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$")
CODE = zip_b64({"index.py": "def main_handler(event, context):\n    return 'ok'\n"})


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    srv = ServerProcess(tmp_path_factory.mktemp("namespaces") / "data")
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


def create(scf: scf_client.ScfClient, name: str, description: str = "") -> None:
    scf.CreateNamespace(
        request("CreateNamespaceRequest", {"Namespace": name, "Description": description})
    )


def listed(scf: scf_client.ScfClient, **params: Any) -> tuple[list[dict[str, Any]], int]:
    answer = scf.ListNamespaces(request("ListNamespacesRequest", params))
    return [ns._serialize() for ns in answer.Namespaces], answer.TotalCount


def names(scf: scf_client.ScfClient, **params: Any) -> list[str]:
    return [ns["Name"] for ns in listed(scf, **params)[0]]


def test_a_namespace_is_created_listed_described_and_deleted(scf: scf_client.ScfClient) -> None:
    before = names(scf)
    assert "default" in before
    create(scf, "media", "video pipeline")
    create(scf, "etl-jobs", "nightly loads")

    items, total = listed(scf)
    assert [ns["Name"] for ns in items] == sorted([*before, "etl-jobs", "media"])
    assert total == len(before) + 2
    media = next(ns for ns in items if ns["Name"] == "media")
    assert media["Description"] == "video pipeline"
    assert media["Type"] == "default"
    assert SCF_TIME.match(media["AddTime"]) and SCF_TIME.match(media["ModTime"])

    assert names(scf, Order="DESC") == sorted([*before, "etl-jobs", "media"], reverse=True)
    everything = names(scf)
    page, total = listed(scf, Limit=1, Offset=1)
    assert [ns["Name"] for ns in page] == everything[1:2] and total == len(everything)
    assert names(scf, SearchKey=[{"Key": "Description", "Value": "VIDEO"}]) == ["media"]
    assert names(scf, SearchKey=[{"Key": "Namespace", "Value": "-JOB"}]) == ["etl-jobs"]
    both = [{"Key": "Namespace", "Value": "e"}, {"Key": "Description", "Value": "night"}]
    assert names(scf, SearchKey=both) == ["etl-jobs"]
    neither = [{"Key": "Namespace", "Value": "media"}, {"Key": "Description", "Value": "night"}]
    assert names(scf, SearchKey=neither) == []

    scf.UpdateNamespace(
        request("UpdateNamespaceRequest", {"Namespace": "media", "Description": "transcoding"})
    )
    assert names(scf, SearchKey=[{"Key": "Description", "Value": "transcoding"}]) == ["media"]

    scf.DeleteNamespace(request("DeleteNamespaceRequest", {"Namespace": "media"}))
    scf.DeleteNamespace(request("DeleteNamespaceRequest", {"Namespace": "etl-jobs"}))
    assert names(scf) == before


def test_creating_refuses_a_taken_the_default_or_a_bad_name(scf: scf_client.ScfClient) -> None:
    create(scf, "taken")
    assert error_code(lambda: create(scf, "taken")) == "ResourceInUse.Namespace"
    assert error_code(lambda: create(scf, "default")) == "InvalidParameterValue.DefaultNamespace"
    assert error_code(lambda: create(scf, "no spaces")) == "InvalidParameterValue.Namespace"
    assert error_code(lambda: create(scf, "x" * 61)) == "InvalidParameterValue.Namespace"
    assert "no spaces" not in names(scf)


def test_listing_refuses_a_bad_order_or_search_key(scf: scf_client.ScfClient) -> None:
    assert error_code(lambda: listed(scf, Order="UP")) == "InvalidParameterValue.Order"
    assert error_code(lambda: listed(scf, Orderby="Size")) == "InvalidParameterValue.Orderby"
    bad = [{"Key": "Owner", "Value": "me"}]
    assert error_code(lambda: listed(scf, SearchKey=bad)) == "InvalidParameterValue.SearchKey"


def test_updating_or_deleting_an_unknown_namespace_is_not_found(
    scf: scf_client.ScfClient,
) -> None:
    update = request("UpdateNamespaceRequest", {"Namespace": "ghost", "Description": "x"})
    assert error_code(lambda: scf.UpdateNamespace(update)) == "ResourceNotFound.Namespace"
    delete = request("DeleteNamespaceRequest", {"Namespace": "ghost"})
    assert error_code(lambda: scf.DeleteNamespace(delete)) == "ResourceNotFound.Namespace"


def test_the_default_namespace_and_one_holding_functions_are_kept(
    scf: scf_client.ScfClient,
) -> None:
    delete_default = request("DeleteNamespaceRequest", {"Namespace": "default"})
    code = error_code(lambda: scf.DeleteNamespace(delete_default))
    assert code == "InvalidParameterValue.DefaultNamespace"

    create(scf, "busy")
    fn = {"FunctionName": "worker", "Namespace": "busy"}
    scf.CreateFunction(request("CreateFunctionRequest", {**fn, "Code": {"ZipFile": CODE}}))
    delete_busy = request("DeleteNamespaceRequest", {"Namespace": "busy"})
    assert error_code(lambda: scf.DeleteNamespace(delete_busy)) == "FailedOperation.DeleteNamespace"
    assert "busy" in names(scf)

    scf.DeleteFunction(request("DeleteFunctionRequest", fn))
    scf.DeleteNamespace(delete_busy)
    assert "busy" not in names(scf)


def test_a_key_confined_to_a_namespace_sees_and_changes_only_its_own(
    server: ServerProcess, scf: scf_client.ScfClient
) -> None:
    create(scf, "tenant", "theirs")
    create(scf, "neighbour")
    confined = sdk_client(server, make_key(server, "tenant"))

    assert names(confined) == ["tenant"]
    assert listed(confined)[1] == 1
    confined.UpdateNamespace(
        request("UpdateNamespaceRequest", {"Namespace": "tenant", "Description": "still theirs"})
    )
    assert names(scf, SearchKey=[{"Key": "Description", "Value": "still theirs"}]) == ["tenant"]

    other = request("UpdateNamespaceRequest", {"Namespace": "neighbour", "Description": "mine"})
    assert error_code(lambda: confined.UpdateNamespace(other)) == "UnauthorizedOperation"
    assert error_code(lambda: create(confined, "annex")) == "UnauthorizedOperation"
    for target in ("tenant", "neighbour"):
        delete = request("DeleteNamespaceRequest", {"Namespace": target})
        assert error_code(partial(confined.DeleteNamespace, delete)) == "UnauthorizedOperation"
    assert {"tenant", "neighbour"} <= set(names(scf))
    assert "annex" not in names(scf)
