"""The SCF function and invoke actions driven by the official SDK against a real server:
CreateFunction, GetFunction, ListFunctions, UpdateFunctionCode, UpdateFunctionConfiguration,
DeleteFunction, GetFunctionAddress, Invoke, InvokeFunction; each with a success and its
errors, and an unchanged SCF handler that reads SCF's context and environment."""

from __future__ import annotations

import base64
import hashlib
import json
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from cumulo_server import ServerProcess
from scf_sdk import request, sdk_client, zip_b64
from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException
from tencentcloud.scf.v20180416 import scf_client

pytestmark = pytest.mark.filterwarnings("ignore:datetime.datetime.utcfromtimestamp")

HELLO = zip_b64(
    {"index.py": "def main_handler(event, context):\n"
                 "    print('got', event)\n"
                 "    return {'echo': event, 'version': context.function_version}\n"}
)  # fmt: skip
FAILING = zip_b64(
    {"index.py": "def main_handler(event, context):\n"
                 "    print('about to fail')\n"
                 "    raise ValueError('bad input: ' + str(event.get('x')))\n"}
)  # fmt: skip
# A handler as written for SCF, unchanged: SCF's context keys and environment variables.
SCF_NATIVE = zip_b64(
    {"index.py": "import os\n"
                 "def main_handler(event, context):\n"
                 "    return {\n"
                 "        'request_id': context['request_id'],\n"
                 "        'function_name': context['function_name'],\n"
                 "        'namespace': context['namespace'],\n"
                 "        'function_version': context['function_version'],\n"
                 "        'memory_limit_in_mb': context['memory_limit_in_mb'],\n"
                 "        'time_limit_in_ms': context['time_limit_in_ms'],\n"
                 "        'environ_has_name': 'SCF_FUNCTIONNAME=' in context['environ'],\n"
                 "        'region': context['tencentcloud_region'],\n"
                 "        'env': {k: os.environ.get(k) for k in ('SCF_FUNCTIONNAME',\n"
                 "                'SCF_FUNCTIONVERSION', 'SCF_NAMESPACE', 'TENCENTCLOUD_RUNENV',\n"
                 "                'USER_CODE_ROOT', 'SCF_RUNTIME', 'GREETING')},\n"
                 "        'code_here': os.path.exists(os.path.join(os.environ['USER_CODE_ROOT'],\n"
                 "                                                 'index.py')),\n"
                 "    }\n"}
)  # fmt: skip


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    srv = ServerProcess(tmp_path_factory.mktemp("scf-functions") / "data")
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture(scope="module")
def scf(server: ServerProcess) -> scf_client.ScfClient:
    return sdk_client(server)


def create(scf: scf_client.ScfClient, name: str, code: str = HELLO, **extra: Any) -> None:
    params = {"FunctionName": name, "Code": {"ZipFile": code}, "Handler": "index.main_handler",
              "Runtime": "Python3.9", **extra}  # fmt: skip
    scf.CreateFunction(request("CreateFunctionRequest", params))


def error_of(call: Any, *args: Any) -> str:
    with pytest.raises(TencentCloudSDKException) as caught:
        call(*args)
    return str(caught.value.code)


def test_create_get_and_delete(scf: scf_client.ScfClient) -> None:
    create(scf, "crud", Description="first", MemorySize=256, Timeout=30,
           Environment={"Variables": [{"Key": "GREETING", "Value": "hi"}]})  # fmt: skip
    got = scf.GetFunction(request("GetFunctionRequest", {"FunctionName": "crud"}))
    assert (got.FunctionName, got.Namespace, got.Handler) == (
        "crud",
        "default",
        "index.main_handler",
    )
    assert (got.MemorySize, got.Timeout, got.Description) == (256, 30, "first")
    assert got.Runtime.startswith("Python3.")
    assert got.AsyncRunEnable == "FALSE"
    assert [(v.Key, v.Value) for v in got.Environment.Variables] == [("GREETING", "hi")]
    assert got.FunctionVersion == "$LATEST"
    assert got.CodeSize > 0 and got.Status == "Active"
    scf.DeleteFunction(request("DeleteFunctionRequest", {"FunctionName": "crud"}))
    code = error_of(scf.GetFunction, request("GetFunctionRequest", {"FunctionName": "crud"}))
    assert code == "ResourceNotFound.Function"
    code = error_of(scf.DeleteFunction, request("DeleteFunctionRequest", {"FunctionName": "crud"}))
    assert code == "ResourceNotFound.Function"


def test_create_refuses_what_it_cannot_run(scf: scf_client.ScfClient) -> None:
    cases: list[tuple[dict[str, Any], str]] = [
        ({"FunctionName": "9starts-with-digit"}, "InvalidParameterValue.FunctionName"),
        ({"FunctionName": "rt", "Runtime": "Nodejs16.13"}, "InvalidParameterValue.Runtime"),
        ({"FunctionName": "web", "Type": "HTTP"}, "UnsupportedOperation"),
        ({"FunctionName": "slow", "Timeout": 3600}, "InvalidParameterValue.Timeout"),
        ({"FunctionName": "mem", "MemorySize": 1_000_000}, "InvalidParameterValue.MemorySize"),
        ({"FunctionName": "hnd", "Handler": "missing.main"}, "InvalidParameterValue.Handler"),
        ({"FunctionName": "vpc", "VpcConfig": {"VpcId": "vpc-1"}}, "UnsupportedOperation"),
        ({"FunctionName": "trace", "TraceEnable": "TRUE"}, "InvalidParameterValue.TraceEnable"),
    ]
    for params, expected in cases:
        full = {"Code": {"ZipFile": HELLO}, "Handler": "index.main_handler", **params}
        assert error_of(scf.call_json, "CreateFunction", full) == expected, params
    no_code = {"FunctionName": "nocode", "Handler": "index.main_handler"}
    assert error_of(scf.call_json, "CreateFunction", no_code) == "MissingParameter.Code"
    cos = {"FunctionName": "cos", "Code": {"CosBucketName": "b", "CosObjectName": "/o.zip"}}
    assert error_of(scf.call_json, "CreateFunction", cos) == "UnsupportedOperation"
    not_zip = {"FunctionName": "nz", "Code": {"ZipFile": base64.b64encode(b"nope").decode()}}
    assert error_of(scf.call_json, "CreateFunction", not_zip) == "InvalidParameterValue.ZipFile"
    create(scf, "twice")
    assert error_of(create, scf, "twice") == "ResourceInUse.Function"


def test_an_async_run_function_takes_a_day_long_timeout(scf: scf_client.ScfClient) -> None:
    create(scf, "longjob", AsyncRunEnable="TRUE", TraceEnable="TRUE", Timeout=86_400)
    got = scf.GetFunction(request("GetFunctionRequest", {"FunctionName": "longjob"}))
    assert (got.AsyncRunEnable, got.TraceEnable, got.Timeout) == ("TRUE", "TRUE", 86_400)
    # AsyncRunEnable is locked: the SDK's model has no such field, so send it raw.
    flip = {"FunctionName": "longjob", "AsyncRunEnable": "FALSE"}
    assert error_of(scf.call_json, "UpdateFunctionConfiguration", flip) == (
        "UnsupportedOperation.AsyncRunEnable"
    )
    same = {"FunctionName": "longjob", "AsyncRunEnable": "TRUE", "Description": "kept"}
    scf.call_json("UpdateFunctionConfiguration", same)


def test_list_functions_pages_searches_and_orders(scf: scf_client.ScfClient) -> None:
    for name, description in [("lst-a", "alpha job"), ("lst-b", "beta job"), ("lst-c", "gamma")]:
        create(scf, name, Description=description)
        time.sleep(0.01)

    def names(**params: Any) -> tuple[list[str], int]:
        answer = scf.ListFunctions(request("ListFunctionsRequest", {"SearchKey": "lst-", **params}))
        return [f.FunctionName for f in answer.Functions], answer.TotalCount

    assert names(Orderby="FunctionName", Order="ASC") == (["lst-a", "lst-b", "lst-c"], 3)
    assert names(Orderby="AddTime", Order="DESC") == (["lst-c", "lst-b", "lst-a"], 3)
    assert names(Orderby="FunctionName", Order="ASC", Offset=1, Limit=1) == (["lst-b"], 3)
    assert names(Description="job", Orderby="FunctionName", Order="ASC") == (
        ["lst-a", "lst-b"], 2
    )  # fmt: skip
    bad = request("ListFunctionsRequest", {"Order": "SIDEWAYS"})
    assert error_of(scf.ListFunctions, bad) == "InvalidParameterValue.Order"
    other_ns = request("ListFunctionsRequest", {"Namespace": "nowhere"})
    assert scf.ListFunctions(other_ns).TotalCount == 0


def test_update_code_and_configuration(scf: scf_client.ScfClient) -> None:
    create(scf, "upd")
    v2 = zip_b64({"main.py": "def handler(event, context):\n    return 'v2'\n"})
    scf.UpdateFunctionCode(request("UpdateFunctionCodeRequest",
                                   {"FunctionName": "upd", "ZipFile": v2,
                                    "Handler": "main.handler"}))  # fmt: skip
    ran = scf.InvokeFunction(request("InvokeFunctionRequest", {"FunctionName": "upd"}))
    assert json.loads(ran.Result.RetMsg) == "v2"
    bad_zip = {"FunctionName": "upd", "ZipFile": "%%%"}
    assert error_of(scf.call_json, "UpdateFunctionCode", bad_zip) == "InvalidParameterValue.ZipFile"
    missing = {"FunctionName": "upd", "ZipFile": v2, "Handler": "gone.handler"}
    assert error_of(scf.call_json, "UpdateFunctionCode", missing) == "InvalidParameterValue.Handler"
    scf.UpdateFunctionConfiguration(request("UpdateFunctionConfigurationRequest",
        {"FunctionName": "upd", "MemorySize": 512, "Timeout": 60, "Description": "changed",
         "Environment": {"Variables": [{"Key": "A", "Value": "1"}]}}))  # fmt: skip
    got = scf.GetFunction(request("GetFunctionRequest", {"FunctionName": "upd"}))
    assert (got.MemorySize, got.Timeout, got.Description) == (512, 60, "changed")
    assert [(v.Key, v.Value) for v in got.Environment.Variables] == [("A", "1")]
    reserved = {"FunctionName": "upd",
                "Environment": {"Variables": [{"Key": "SCF_X", "Value": "1"}]}}  # fmt: skip
    code = error_of(scf.call_json, "UpdateFunctionConfiguration", reserved)
    assert code == "InvalidParameterValue.Environment"
    unknown = {"FunctionName": "nope", "Timeout": 5}
    assert error_of(scf.call_json, "UpdateFunctionConfiguration", unknown) == (
        "ResourceNotFound.Function"
    )


def test_get_function_address_links_the_code(
    server: ServerProcess, scf: scf_client.ScfClient
) -> None:
    create(scf, "addr")
    answer = scf.GetFunctionAddress(request("GetFunctionAddressRequest", {"FunctionName": "addr"}))
    zipped = httpx.get(answer.Url)
    assert zipped.status_code == 200
    assert hashlib.sha256(zipped.content).hexdigest() == answer.CodeSha256
    assert zipped.content == base64.b64decode(HELLO)
    forged = answer.Url.replace("signature=", "signature=0")
    assert httpx.get(forged).status_code == 401
    missing = request("GetFunctionAddressRequest", {"FunctionName": "nope"})
    assert error_of(scf.GetFunctionAddress, missing) == "ResourceNotFound.Function"


def test_invoke_sync_with_log_tail_and_failure(scf: scf_client.ScfClient) -> None:
    create(scf, "inv")
    ran = scf.Invoke(request("InvokeRequest", {"FunctionName": "inv", "LogType": "Tail",
                                               "ClientContext": json.dumps({"x": 1})}))  # fmt: skip
    result = ran.Result
    assert json.loads(result.RetMsg) == {"echo": {"x": 1}, "version": "$LATEST"}
    assert result.InvokeResult == 0 and result.ErrMsg == ""
    assert "got {'x': 1}" in result.Log
    assert result.Duration > 0 and result.BillDuration >= 1 and result.MemUsage > 1_000_000
    quiet = scf.Invoke(request("InvokeRequest", {"FunctionName": "inv"}))
    assert quiet.Result.Log == ""
    create(scf, "boom", FAILING)
    failed = scf.Invoke(request("InvokeRequest", {"FunctionName": "boom", "LogType": "Tail",
                                                  "ClientContext": '{"x": 7}'})).Result  # fmt: skip
    assert failed.InvokeResult != 0 and failed.RetMsg == ""
    err = json.loads(failed.ErrMsg)
    assert err["errorType"] == "ValueError" and err["errorMessage"] == "bad input: 7"
    assert "Traceback" in err["stackTrace"]
    assert "about to fail" in failed.Log


def test_invoke_errors(scf: scf_client.ScfClient) -> None:
    create(scf, "inv-err")
    bad_json = request("InvokeRequest", {"FunctionName": "inv-err", "ClientContext": "{nope"})
    assert error_of(scf.Invoke, bad_json) == "InvalidParameterValue.ClientContext"
    bad_type = request("InvokeRequest", {"FunctionName": "inv-err", "InvocationType": "Later"})
    assert error_of(scf.Invoke, bad_type) == "InvalidParameterValue.InvocationType"
    missing = request("InvokeRequest", {"FunctionName": "not-there"})
    assert error_of(scf.Invoke, missing) == "ResourceNotFound.Function"
    big = json.dumps({"blob": "x" * (200 * 1024)})
    too_big = request("InvokeRequest", {"FunctionName": "inv-err", "InvocationType": "Event",
                                        "ClientContext": big})  # fmt: skip
    assert error_of(scf.Invoke, too_big) == "InvalidParameter.RequestTooLarge"
    no_version = request("InvokeRequest", {"FunctionName": "inv-err", "Qualifier": "7"})
    assert error_of(scf.Invoke, no_version) == "ResourceNotFound.Qualifier"


def test_invoke_event_and_invoke_function(server: ServerProcess, scf: scf_client.ScfClient) -> None:
    create(scf, "evt")
    queued = scf.Invoke(request("InvokeRequest", {"FunctionName": "evt",
                                                  "InvocationType": "Event",
                                                  "ClientContext": '{"n": 1}'}))  # fmt: skip
    rid = queued.Result.FunctionRequestId
    assert rid and queued.Result.RetMsg is None
    headers = {"Authorization": f"Bearer {server.token}"}
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        row = httpx.get(f"{server.url}/v1/namespaces/default/invocations/{rid}", headers=headers)
        if row.json()["status"] == "succeeded":
            break
        time.sleep(0.05)
    assert row.json()["result"] == {"echo": {"n": 1}, "version": "$LATEST"}
    ran = scf.InvokeFunction(request("InvokeFunctionRequest",
                                     {"FunctionName": "evt", "Event": '{"n": 2}'}))  # fmt: skip
    assert json.loads(ran.Result.RetMsg) == {"echo": {"n": 2}, "version": "$LATEST"}
    bad = request("InvokeFunctionRequest", {"FunctionName": "evt", "Event": "[unclosed"})
    assert error_of(scf.InvokeFunction, bad) == "InvalidParameterValue.Event"


def test_an_async_run_function_answers_with_the_request_id_only(scf: scf_client.ScfClient) -> None:
    create(scf, "arun", AsyncRunEnable="TRUE", Timeout=600)
    started = time.monotonic()
    answer = scf.InvokeFunction(request("InvokeFunctionRequest", {"FunctionName": "arun"}))
    assert time.monotonic() - started < 5
    result = answer.Result
    assert result.FunctionRequestId
    assert (result.RetMsg, result.Log, result.ErrMsg) == (None, None, None)


def test_over_qps_invokes_answer_request_limit_exceeded(
    server: ServerProcess, scf: scf_client.ScfClient
) -> None:
    create(scf, "limited", AsyncRunEnable="TRUE", Timeout=60)
    patched = httpx.patch(f"{server.url}/v1/namespaces/default/functions/limited",
                          json={"max_qps": 3},
                          headers={"Authorization": f"Bearer {server.token}"})  # fmt: skip
    assert patched.status_code == 200

    def invoke(_: int) -> str:
        try:
            r = scf.Invoke(request("InvokeRequest", {"FunctionName": "limited",
                                                     "InvocationType": "Event"}))  # fmt: skip
        except TencentCloudSDKException as exc:
            return str(exc.code)
        return "accepted:" + r.Result.FunctionRequestId

    started = time.monotonic()
    with ThreadPoolExecutor(8) as pool:
        outcomes = list(pool.map(invoke, range(12)))
    elapsed = time.monotonic() - started
    accepted = [o for o in outcomes if o.startswith("accepted:")]
    refused = [o for o in outcomes if not o.startswith("accepted:")]
    assert set(refused) == {"RequestLimitExceeded"}
    # At most 3 in any one-second window: 12 calls in `elapsed` seconds.
    assert 1 <= len(accepted) <= 3 * (int(elapsed) + 1)
    assert len(refused) >= 12 - 3 * (int(elapsed) + 1)


def test_an_unchanged_scf_handler_sees_scf_context_and_environment(
    scf: scf_client.ScfClient,
) -> None:
    create(scf, "native", SCF_NATIVE, MemorySize=256, Timeout=20,
           Environment={"Variables": [{"Key": "GREETING", "Value": "hello"}]})  # fmt: skip
    ran = scf.InvokeFunction(request("InvokeFunctionRequest", {"FunctionName": "native"}))
    seen = json.loads(ran.Result.RetMsg)
    assert seen["request_id"] == ran.Result.FunctionRequestId
    assert (seen["function_name"], seen["namespace"], seen["function_version"]) == (
        "native", "default", "$LATEST"
    )  # fmt: skip
    assert (seen["memory_limit_in_mb"], seen["time_limit_in_ms"]) == (256, 20_000)
    assert seen["environ_has_name"] is True
    env = seen["env"]
    assert env["SCF_FUNCTIONNAME"] == "native" and env["SCF_NAMESPACE"] == "default"
    assert env["SCF_FUNCTIONVERSION"] == "$LATEST" and env["TENCENTCLOUD_RUNENV"] == "SCF"
    assert env["SCF_RUNTIME"].startswith("Python3.") and env["GREETING"] == "hello"
    assert seen["code_here"] is True
