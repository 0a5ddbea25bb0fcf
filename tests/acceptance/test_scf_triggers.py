"""Timer triggers through the official SCF SDK against a real server: a per-second timer
fires async invocations with SCF's timer event, closing it stops the firing and opening it
starts it again, it is listed (ListTriggers, GetFunction) in SCF's shapes, deleting it stops
it for good; other kinds and bad input answer SCF's error codes."""

from __future__ import annotations

import calendar
import json
import re
import time
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
EVENT_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
ECHO = "def main_handler(event, context):\n    return event\n"
EVERY_SECOND = "* * * * * * *"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    srv = ServerProcess(tmp_path_factory.mktemp("scf-triggers") / "data")
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


def deploy(scf: scf_client.ScfClient, name: str) -> None:
    scf.CreateFunction(
        request(
            "CreateFunctionRequest",
            {"FunctionName": name, "Code": {"ZipFile": zip_b64({"index.py": ECHO})},
             "Handler": "index.main_handler", "Timeout": 5},
        )
    )  # fmt: skip


def create(scf: scf_client.ScfClient, function: str, name: str, **extra: str) -> Any:
    params = {"FunctionName": function, "TriggerName": name, "Type": "timer",
              "TriggerDesc": EVERY_SECOND, **extra}  # fmt: skip
    return scf.CreateTrigger(request("CreateTriggerRequest", params)).TriggerInfo


def set_status(scf: scf_client.ScfClient, function: str, name: str, enable: str) -> None:
    scf.UpdateTriggerStatus(
        request(
            "UpdateTriggerStatusRequest",
            {"FunctionName": function, "TriggerName": name, "Type": "timer", "Enable": enable},
        )
    )


def invocations(server: ServerProcess, function: str) -> list[dict[str, Any]]:
    answer = httpx.get(
        server.url + "/v1/namespaces/default/invocations",
        params={"function": function, "limit": 1000},
        headers={"Authorization": f"Bearer {server.token}"},
        timeout=10,
    )
    answer.raise_for_status()
    items: list[dict[str, Any]] = answer.json()["items"]
    return items


def wait_for(
    server: ServerProcess, function: str, test: Callable[[list[dict[str, Any]]], bool]
) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 10
    while True:
        items = invocations(server, function)
        if test(items):
            return items
        assert time.monotonic() < deadline, f"waited 10 s; have {items}"
        time.sleep(0.2)


def finished(items: list[dict[str, Any]], count: int) -> bool:
    return sum(1 for i in items if i["status"] == "succeeded") >= count


def ids(items: list[dict[str, Any]]) -> set[str]:
    return {i["request_id"] for i in items}


def test_a_per_second_timer_fires_closes_opens_and_is_deleted(
    server: ServerProcess, scf: scf_client.ScfClient
) -> None:
    deploy(scf, "ticker")
    created_at = time.time()
    info = create(scf, "ticker", "every-second", CustomArgument="hello timer", Enable="OPEN")
    assert (info.TriggerName, info.Type, info.Enable) == ("every-second", "timer", 1)
    assert json.loads(info.TriggerDesc) == {"cron": EVERY_SECOND}
    assert (info.Qualifier, info.CustomArgument) == ("$LATEST", "hello timer")
    assert SCF_TIME.match(info.AddTime) and SCF_TIME.match(info.ModTime)
    assert info.AvailableStatus == "Available"

    items = wait_for(server, "ticker", lambda items: finished(items, 2))
    events = [i["result"] for i in items if i["status"] == "succeeded"]
    for event in events:
        assert set(event) == {"Type", "TriggerName", "Time", "Message"}
        assert (event["Type"], event["TriggerName"]) == ("Timer", "every-second")
        assert event["Message"] == "hello timer"
        assert EVENT_TIME.match(event["Time"])
    fired = sorted(e["Time"] for e in events)
    assert len(set(fired)) == len(fired), "one invocation per fire time"
    first = calendar.timegm(time.strptime(fired[0], "%Y-%m-%dT%H:%M:%SZ"))
    assert first > created_at - 1, "no fire from before the trigger existed"
    assert all(i["type"] == "async" for i in items)

    set_status(scf, "ticker", "every-second", "CLOSE")
    time.sleep(1.2)  # a pass already under way may still admit its fire
    closed = ids(invocations(server, "ticker"))
    time.sleep(2.2)
    assert ids(invocations(server, "ticker")) == closed, "a closed timer fired"
    listed = scf.ListTriggers(request("ListTriggersRequest", {"FunctionName": "ticker"}))
    assert listed.TotalCount == 1 and listed.Triggers[0].Enable == 0

    set_status(scf, "ticker", "every-second", "OPEN")
    wait_for(server, "ticker", lambda items: len(ids(items) - closed) >= 2)

    detail = scf.GetFunction(request("GetFunctionRequest", {"FunctionName": "ticker"}))
    assert [(t.TriggerName, t.Type, t.Enable) for t in detail.Triggers] == [
        ("every-second", "timer", 1)
    ]
    assert json.loads(detail.Triggers[0].TriggerDesc) == {"cron": EVERY_SECOND}

    scf.DeleteTrigger(
        request(
            "DeleteTriggerRequest",
            {"FunctionName": "ticker", "TriggerName": "every-second", "Type": "timer",
             "Qualifier": "$LATEST"},
        )
    )  # fmt: skip
    time.sleep(1.2)
    gone = ids(invocations(server, "ticker"))
    time.sleep(2.2)
    assert ids(invocations(server, "ticker")) == gone, "a deleted timer fired"
    listed = scf.ListTriggers(request("ListTriggersRequest", {"FunctionName": "ticker"}))
    assert (listed.TotalCount, listed.Triggers) == (0, [])


def test_list_orders_pages_and_filters(scf: scf_client.ScfClient) -> None:
    deploy(scf, "lister")
    for name in ("alpha", "beta", "gamma"):
        create(scf, "lister", name, TriggerDesc="0 0 3 * * * *", Enable="CLOSE",
               Description=f"nightly {name}")  # fmt: skip

    def names(**params: Any) -> tuple[list[str], int]:
        answer = scf.ListTriggers(
            request("ListTriggersRequest", {"FunctionName": "lister", **params})
        )
        return [t.TriggerName for t in answer.Triggers], answer.TotalCount

    assert names(OrderBy="add_time", Order="ASC") == (["alpha", "beta", "gamma"], 3)
    assert names(OrderBy="add_time", Order="DESC", Offset=1, Limit=1) == (["beta"], 3)
    filtered = names(Filters=[{"Name": "TriggerName", "Values": ["gamma", "alpha"]}])
    assert sorted(filtered[0]) == ["alpha", "gamma"] and filtered[1] == 2
    assert names(Filters=[{"Name": "Qualifier", "Values": ["1"]}]) == ([], 0)

    answer = scf.ListTriggers(request("ListTriggersRequest", {"FunctionName": "lister"}))
    first = answer.Triggers[0]
    assert first.Enable == 0 and first.BoundResources == ""
    assert first.Description == f"nightly {first.TriggerName}"
    described = names(Filters=[{"Name": "Description", "Values": ["nightly beta"]}])
    assert described == (["beta"], 1)
    assert json.loads(first.TriggerDesc) == {"cron": "0 0 3 * * * *"}
    assert error_code(lambda: names(OrderBy="name")) == "InvalidParameterValue.OrderBy"
    assert error_code(lambda: names(Filters=[{"Name": "Runtime", "Values": ["x"]}])) == (
        "InvalidParameterValue.Filters"
    )


def test_update_trigger_changes_schedule_and_argument(scf: scf_client.ScfClient) -> None:
    deploy(scf, "updated")
    create(scf, "updated", "nightly", TriggerDesc="0 0 3 * * * *")
    scf.UpdateTrigger(
        request(
            "UpdateTriggerRequest",
            {"FunctionName": "updated", "TriggerName": "nightly", "Type": "timer",
             "TriggerDesc": '{"cron": "0 30 4 * * * *"}', "CustomArgument": "v2",
             "Enable": "CLOSE"},
        )
    )  # fmt: skip
    [trigger] = scf.ListTriggers(
        request("ListTriggersRequest", {"FunctionName": "updated"})
    ).Triggers
    assert json.loads(trigger.TriggerDesc) == {"cron": "0 30 4 * * * *"}
    assert (trigger.CustomArgument, trigger.Enable) == ("v2", 0)


def test_errors_answer_scf_codes(scf: scf_client.ScfClient) -> None:
    deploy(scf, "errs")
    create(scf, "errs", "taken", TriggerDesc="0 0 3 * * * *")

    def create_code(**params: str) -> str:
        return error_code(lambda: create(scf, params.pop("function", "errs"), "t1", **params))

    assert create_code(Type="apigw") == "UnsupportedOperation.Trigger"
    assert create_code(Type="cos", TriggerDesc='{"event": "cos:ObjectCreated:*"}') == (
        "UnsupportedOperation.Trigger"
    )
    assert create_code(function="missing") == "ResourceNotFound.Function"
    assert create_code(TriggerDesc="0 */5 * * *  * * 2024") == "InvalidParameterValue.TriggerDesc"
    assert create_code(TriggerDesc="61 * * * * * *") == "InvalidParameterValue.TriggerDesc"
    assert create_code(Qualifier="7") == "ResourceNotFound.Qualifier"
    assert create_code(Enable="MAYBE") == "InvalidParameterValue.Enable"
    assert create_code(CustomArgument="x" * 4097) == "InvalidParameterValue.CustomArgument"
    assert create_code(Description="x" * 1001) == "InvalidParameterValue.Description"
    assert error_code(lambda: create(scf, "errs", "9bad")) == "InvalidParameterValue.TriggerName"
    assert error_code(lambda: create(scf, "errs", "taken")) == "ResourceInUse.Trigger"

    def delete_code(**params: str) -> str:
        body = {"FunctionName": "errs", "TriggerName": "taken", "Type": "timer", **params}
        return error_code(lambda: scf.DeleteTrigger(request("DeleteTriggerRequest", body)))

    assert delete_code(TriggerName="nope") == "ResourceNotFound.Trigger"
    assert delete_code(Qualifier="$DEFAULT") == "ResourceNotFound.Trigger"
    assert delete_code(FunctionName="missing") == "ResourceNotFound.Function"
    assert delete_code(Type="ckafka") == "UnsupportedOperation.Trigger"
    assert error_code(lambda: set_status(scf, "errs", "nope", "OPEN")) == (
        "ResourceNotFound.Trigger"
    )
    assert error_code(lambda: set_status(scf, "errs", "taken", "ON")) == (
        "InvalidParameterValue.Enable"
    )
    assert error_code(
        lambda: scf.ListTriggers(request("ListTriggersRequest", {"FunctionName": "missing"}))
    ) == "ResourceNotFound.Function"  # fmt: skip


def test_deleting_the_function_deletes_its_triggers(scf: scf_client.ScfClient) -> None:
    deploy(scf, "doomed")
    create(scf, "doomed", "soon", TriggerDesc="0 0 3 * * * *", Qualifier="$DEFAULT")
    scf.DeleteFunction(request("DeleteFunctionRequest", {"FunctionName": "doomed"}))
    deploy(scf, "doomed")
    listed = scf.ListTriggers(request("ListTriggersRequest", {"FunctionName": "doomed"}))
    assert listed.TotalCount == 0
