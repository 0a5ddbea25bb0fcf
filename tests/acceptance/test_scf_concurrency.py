"""Reserved concurrency through the official SCF SDK against a real server: the memory
reserved becomes a cap on the function's concurrent instances (memory / MemorySize), read
back in SCF's terms, and the cap holds for real runs."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import datetime
from functools import partial
from typing import Any

import httpx
import pytest
from cumulo_server import ServerProcess
from scf_sdk import make_key, request, sdk_client, zip_b64
from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException
from tencentcloud.scf.v20180416 import scf_client

pytestmark = pytest.mark.filterwarnings("ignore:datetime.datetime.utcfromtimestamp")

SLEEPER = zip_b64(
    {"index.py": "import time\n\ndef main_handler(event, context):\n    time.sleep(1)\n"}
)
#: The server's default ``max_instances``: the most instances one function can reserve.
MAX_INSTANCES = 256


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    srv = ServerProcess(tmp_path_factory.mktemp("concurrency") / "data")
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


def deploy(scf: scf_client.ScfClient, name: str, memory_mb: int = 128) -> None:
    scf.CreateFunction(
        request(
            "CreateFunctionRequest",
            {"FunctionName": name, "Code": {"ZipFile": SLEEPER}, "MemorySize": memory_mb,
             "Timeout": 10},
        )
    )  # fmt: skip


def put(scf: scf_client.ScfClient, name: str, reserved_mb: int) -> None:
    scf.PutReservedConcurrencyConfig(
        request(
            "PutReservedConcurrencyConfigRequest",
            {"FunctionName": name, "ReservedConcurrencyMem": reserved_mb},
        )
    )


def reserved(scf: scf_client.ScfClient, name: str) -> int | None:
    answer = scf.GetReservedConcurrencyConfig(
        request("GetReservedConcurrencyConfigRequest", {"FunctionName": name})
    )
    value: int | None = answer.ReservedMem
    return value


def delete(scf: scf_client.ScfClient, name: str) -> None:
    scf.DeleteReservedConcurrencyConfig(
        request("DeleteReservedConcurrencyConfigRequest", {"FunctionName": name})
    )


def rest(server: ServerProcess, path: str) -> dict[str, Any]:
    answer = httpx.get(
        f"{server.url}/v1/namespaces/default/{path}",
        headers={"Authorization": f"Bearer {server.token}"},
        timeout=10,
    )
    answer.raise_for_status()
    body: dict[str, Any] = answer.json()
    return body


def test_reserved_memory_is_set_read_and_removed(
    server: ServerProcess, scf: scf_client.ScfClient
) -> None:
    deploy(scf, "capped", memory_mb=256)
    assert reserved(scf, "capped") is None
    assert rest(server, "functions/capped")["max_concurrency"] is None

    put(scf, "capped", 768)
    assert reserved(scf, "capped") == 768
    assert rest(server, "functions/capped")["max_concurrency"] == 3
    listing = scf.ListFunctions(request("ListFunctionsRequest", {"SearchKey": "capped"}))
    assert [f.ReservedConcurrencyMem for f in listing.Functions] == [768]

    put(scf, "capped", 256)
    assert reserved(scf, "capped") == 256
    assert rest(server, "functions/capped")["max_concurrency"] == 1

    delete(scf, "capped")
    assert reserved(scf, "capped") is None
    assert rest(server, "functions/capped")["max_concurrency"] is None


def test_a_reservation_must_fit_whole_instances(
    server: ServerProcess, scf: scf_client.ScfClient
) -> None:
    deploy(scf, "sized", memory_mb=128)
    for wrong_mb in (64, 200, 0):
        code = error_code(partial(put, scf, "sized", wrong_mb))
        assert code == "InvalidParameterValue.ReservedConcurrencyMem", wrong_mb
    too_many = (MAX_INSTANCES + 1) * 128
    assert error_code(lambda: put(scf, "sized", too_many)) == (
        "LimitExceeded.FunctionReservedConcurrencyMemory"
    )
    put(scf, "sized", MAX_INSTANCES * 128)
    assert reserved(scf, "sized") == MAX_INSTANCES * 128


def test_an_unknown_or_foreign_function_is_refused(
    server: ServerProcess, scf: scf_client.ScfClient
) -> None:
    assert error_code(lambda: put(scf, "ghost", 128)) == "ResourceNotFound.Function"
    assert error_code(lambda: reserved(scf, "ghost")) == "ResourceNotFound.Function"
    assert error_code(lambda: delete(scf, "ghost")) == "ResourceNotFound.Function"

    deploy(scf, "guarded")
    scf.CreateNamespace(request("CreateNamespaceRequest", {"Namespace": "tenant"}))
    outsider = sdk_client(server, make_key(server, "tenant"))
    assert error_code(lambda: put(outsider, "guarded", 128)) == "UnauthorizedOperation"
    assert error_code(lambda: reserved(outsider, "guarded")) == "UnauthorizedOperation"
    assert error_code(lambda: delete(outsider, "guarded")) == "UnauthorizedOperation"
    assert reserved(scf, "guarded") is None


def test_one_instance_reserved_runs_calls_one_after_the_other(
    server: ServerProcess, scf: scf_client.ScfClient
) -> None:
    deploy(scf, "serial", memory_mb=128)
    put(scf, "serial", 128)
    first, second = spans(server, scf, "serial")
    assert second[0] >= first[1], (first, second)

    # Without the reservation the same two calls overlap: the cap above was what held.
    delete(scf, "serial")
    first, second = spans(server, scf, "serial")
    assert second[0] < first[1], (first, second)


def spans(
    server: ServerProcess, scf: scf_client.ScfClient, name: str
) -> list[tuple[datetime, datetime]]:
    """Invoke ``name`` twice asynchronously; the (started_at, finished_at) of both runs,
    in the order they started."""
    ids = [
        scf.Invoke(
            request("InvokeRequest", {"FunctionName": name, "InvocationType": "Event"})
        ).Result.FunctionRequestId
        for _ in range(2)
    ]
    records = [wait(server, request_id) for request_id in ids]
    assert all(r["status"] == "succeeded" for r in records), records
    found = [
        (datetime.fromisoformat(r["started_at"]), datetime.fromisoformat(r["finished_at"]))
        for r in records
    ]
    return sorted(found)


def wait(server: ServerProcess, request_id: str, timeout_s: float = 30.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while True:
        record = rest(server, f"invocations/{request_id}")
        if record["status"] not in ("queued", "running"):
            return record
        assert time.monotonic() < deadline, f"{request_id} still {record['status']}"
        time.sleep(0.05)
