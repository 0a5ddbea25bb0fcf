"""SCF request status and function logs through the official SDK: GetRequestStatus and
GetFunctionLogs on runs with known outcomes (succeeded, raised, timed out, over memory,
retried), with every filter, order and page."""

from __future__ import annotations

import calendar
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from cumulo_server import ServerProcess
from scf_sdk import request, sdk_client, zip_b64
from tencentcloud.common.exception.tencent_cloud_sdk_exception import (
    TencentCloudSDKException,
)
from tencentcloud.scf.v20180416.scf_client import ScfClient

# The SDK calls datetime.utcfromtimestamp when it signs.
pytestmark = pytest.mark.filterwarnings("ignore:datetime.datetime.utcfromtimestamp")

HELLO = """
def main_handler(event, context):
    print("hello from", context.request_id, flush=True)
    return {"echo": event}
"""

PROBE = """
import time

def main_handler(event, context):
    action = event["action"]
    print("action", action, flush=True)
    if action == "raise":
        raise ValueError("bad input")
    if action == "hang":
        time.sleep(30)
    if action == "eat":
        hog = bytearray(300 * 1024 * 1024)
        for i in range(0, len(hog), 4096):
            hog[i] = 1
        time.sleep(3)
    if action == "work":
        time.sleep(0.3)
    return {"action": action}
"""

FLAKY = """
def main_handler(event, context):
    print("attempt for", context.request_id, flush=True)
    raise RuntimeError("always")
"""

CHATTY = """
def main_handler(event, context):
    for i in range(2000):
        print("line %04d %s" % (i, "." * 40))
    return "said a lot"
"""

TIME_FORMAT = "%Y-%m-%d %H:%M:%S"


@pytest.fixture(scope="module")
def scf_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    srv = ServerProcess(Path(tmp_path_factory.mktemp("scf-logs")) / "data")
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture(scope="module")
def sdk(scf_server: ServerProcess) -> ScfClient:
    return sdk_client(scf_server)


def call(sdk: ScfClient, action: str, params: dict[str, Any]) -> Any:
    return getattr(sdk, action)(request(f"{action}Request", params))


def error_code(sdk: ScfClient, action: str, params: dict[str, Any]) -> str:
    with pytest.raises(TencentCloudSDKException) as caught:
        call(sdk, action, params)
    return str(caught.value.code)


def create(sdk: ScfClient, name: str, code: str, **extra: Any) -> None:
    call(
        sdk,
        "CreateFunction",
        {"FunctionName": name, "Code": {"ZipFile": zip_b64({"index.py": code})},
         "Handler": "index.main_handler", **extra},
    )  # fmt: skip


def invoke(sdk: ScfClient, name: str, event: dict[str, Any], *, sync: bool = False) -> str:
    answer = call(
        sdk,
        "Invoke",
        {"FunctionName": name, "ClientContext": json.dumps(event),
         "InvocationType": "RequestResponse" if sync else "Event"},
    )  # fmt: skip
    return str(answer.Result.FunctionRequestId)


def wait_for(read: Callable[[], Any], done: Callable[[Any], bool], timeout_s: float = 20) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        value = read()
        if done(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"still not there after {timeout_s} s: {value}")
        time.sleep(0.05)


def text_time(ts: float) -> str:
    return time.strftime(TIME_FORMAT, time.gmtime(ts))


def statuses(sdk: ScfClient, name: str, **params: Any) -> Any:
    return call(sdk, "GetRequestStatus", {"FunctionName": name, **params})


def logs(sdk: ScfClient, name: str, **params: Any) -> Any:
    return call(sdk, "GetFunctionLogs", {"FunctionName": name, **params})


def test_request_status_of_a_normal_function_invoked_as_an_event(sdk: ScfClient) -> None:
    create(sdk, "hello", HELLO)
    rid = invoke(sdk, "hello", {"n": 1})
    answer = wait_for(
        lambda: statuses(sdk, "hello", FunctionRequestId=rid),
        lambda a: a.TotalCount == 1 and a.Data[0].RetCode != 1,
    )
    entry = answer.Data[0]
    assert (entry.FunctionName, entry.RequestId, entry.RetCode, entry.RetryNum) == (
        "hello", rid, 0, 0
    )  # fmt: skip
    assert json.loads(entry.RetMsg) == {"echo": {"n": 1}}
    assert abs(calendar.timegm(time.strptime(entry.StartTime, TIME_FORMAT)) - time.time()) < 60
    assert entry.Duration > 0 and entry.MemUsage > 0

    log = logs(sdk, "hello", FunctionRequestId=rid)
    assert log.TotalCount == 1
    line = log.Data[0]
    assert (line.RequestId, line.RetCode, line.InvokeFinished, line.RetryNum) == (rid, 0, 1, 0)
    assert f"hello from {rid}" in line.Log
    assert json.loads(line.RetMsg) == {"echo": {"n": 1}}
    assert line.MemUsage > 1024 * 1024  # bytes
    assert line.BillDuration >= line.Duration > 0

    second = invoke(sdk, "hello", {"n": 2}, sync=True)
    recent = statuses(sdk, "hello")  # the last 15 minutes, newest first
    assert recent.TotalCount == 2
    assert [e.RequestId for e in recent.Data] == [second, rid]
    now = time.time()
    window = {"StartTime": text_time(now - 600), "EndTime": text_time(now)}
    assert statuses(sdk, "hello", **window).TotalCount == 2
    past = {"StartTime": "2020-01-01 00:00:00", "EndTime": "2020-01-01 01:00:00"}
    assert statuses(sdk, "hello", **past).TotalCount == 0
    assert statuses(sdk, "hello", FunctionRequestId=rid, **past).TotalCount == 0
    assert statuses(sdk, "hello", FunctionRequestId="no-such-request").TotalCount == 0

    def refused(**params: Any) -> str:
        return error_code(sdk, "GetRequestStatus", {"FunctionName": "hello", **params})

    assert refused(StartTime=window["StartTime"]) == "InvalidParameterValue.StartTimeOrEndTime"
    assert refused(StartTime=window["EndTime"], EndTime=text_time(now - 3600)) == (
        "InvalidParameterValue.StartTimeOrEndTime"
    )
    assert refused(StartTime="noon", EndTime=window["EndTime"]) == (
        "InvalidParameterValue.StartTime"
    )
    assert refused(FunctionName="nope") == "ResourceNotFound.Function"


def test_retried_event_reports_its_retries(sdk: ScfClient) -> None:
    create(sdk, "flaky", FLAKY)
    call(
        sdk,
        "UpdateFunctionEventInvokeConfig",
        {"FunctionName": "flaky", "AsyncTriggerConfig": {"RetryConfig": [{"RetryNum": 1}]}},
    )
    rid = invoke(sdk, "flaky", {})
    entry = wait_for(
        lambda: statuses(sdk, "flaky", FunctionRequestId=rid).Data[0],
        lambda e: e.RetCode != 1,
    )
    assert (entry.RetCode, entry.RetryNum) == (-1, 1)
    error = json.loads(entry.RetMsg)
    assert (error["errorType"], error["errorMessage"]) == ("RuntimeError", "always")
    line = logs(sdk, "flaky", FunctionRequestId=rid).Data[0]
    assert (line.RetCode, line.InvokeFinished, line.RetryNum) == (430, 1, 1)
    assert line.Log.count(f"attempt for {rid}") == 2


@pytest.fixture(scope="module")
def probed(sdk: ScfClient) -> dict[str, str]:
    """Runs of one function with known outcomes, by name."""
    create(sdk, "probe", PROBE, Timeout=3, MemorySize=128)
    return {
        action: invoke(sdk, "probe", {"action": action}, sync=True)
        for action in ("ok", "raise", "hang", "eat", "work")
    }


def test_function_logs_filter_by_outcome(sdk: ScfClient, probed: dict[str, str]) -> None:
    def found(ret_code: str) -> dict[str, int]:
        answer = logs(sdk, "probe", Filter={"RetCode": ret_code}, Limit=100)
        assert answer.TotalCount == len(answer.Data)
        return {line.RequestId: line.RetCode for line in answer.Data}

    ok, raised, hung, ate, worked = (probed[a] for a in ("ok", "raise", "hang", "eat", "work"))
    assert found("is0") == {ok: 0, worked: 0}
    assert found("not0") == {raised: 430, hung: 433, ate: 434}
    assert found("TimeLimitExceeded") == {hung: 433}
    assert found("ResourceLimitExceeded") == {ate: 434}
    assert found("UserCodeException") == {raised: 430}
    assert found("") == found("is0") | found("not0")
    every = logs(sdk, "probe", Limit=100)
    assert every.TotalCount == 5
    by_id = {line.RequestId: line for line in every.Data}
    assert "action raise" in by_id[raised].Log and "ValueError" in by_id[raised].RetMsg
    assert "action hang" in by_id[hung].Log
    assert json.loads(by_id[ok].RetMsg) == {"action": "ok"}

    # UserCodeException pages like any filter.
    first = logs(sdk, "probe", Filter={"RetCode": "UserCodeException"}, Limit=1)
    assert (first.TotalCount, [line.RequestId for line in first.Data]) == (1, [raised])
    beyond = logs(sdk, "probe", Filter={"RetCode": "UserCodeException"}, Offset=1, Limit=5)
    assert (beyond.TotalCount, beyond.Data) == (1, [])


def test_function_logs_order_page_and_window(sdk: ScfClient, probed: dict[str, str]) -> None:
    newest_first = [line.RequestId for line in logs(sdk, "probe", Limit=100).Data]
    assert newest_first == list(reversed(probed.values()))
    oldest_first = logs(sdk, "probe", Order="asc", OrderBy="start_time", Limit=100).Data
    assert [line.RequestId for line in oldest_first] == list(probed.values())
    assert logs(sdk, "probe").TotalCount == 5 and len(logs(sdk, "probe").Data) == 5

    for order_by, field in (("duration", "Duration"), ("mem_usage", "MemUsage")):
        up = logs(sdk, "probe", OrderBy=order_by, Order="asc", Limit=100).Data
        values = [getattr(line, field) for line in up]
        assert values == sorted(values) and values[0] < values[-1]
        down = logs(sdk, "probe", OrderBy=order_by, Order="desc", Limit=100).Data
        assert [getattr(line, field) for line in down] == sorted(values, reverse=True)
    by_name = logs(sdk, "probe", OrderBy="function_name", Limit=100)
    assert {line.FunctionName for line in by_name.Data} == {"probe"}

    pages = [logs(sdk, "probe", Offset=offset, Limit=2) for offset in (0, 2, 4)]
    assert [page.TotalCount for page in pages] == [5, 5, 5]
    assert [line.RequestId for page in pages for line in page.Data] == newest_first

    assert logs(sdk, "probe", Qualifier="$LATEST").TotalCount == 5
    assert logs(sdk, "probe", Qualifier="3").TotalCount == 0
    now = time.time()
    around = {"StartTime": text_time(now - 3600), "EndTime": text_time(now + 60)}
    assert logs(sdk, "probe", **around).TotalCount == 5
    earlier = {"StartTime": text_time(now - 7200), "EndTime": text_time(now - 3600)}
    assert logs(sdk, "probe", **earlier).TotalCount == 0


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"Order": "sideways"}, "InvalidParameterValue.Order"),
        ({"OrderBy": "size"}, "InvalidParameterValue.OrderBy"),
        ({"Filter": {"RetCode": "maybe"}}, "InvalidParameterValue.RetCode"),
        ({"Offset": 9999, "Limit": 2}, "LimitExceeded.Offset"),
        ({"Limit": 0}, "InvalidParameterValue.Limit"),
        ({"Qualifier": "prod"}, "InvalidParameterValue.Qualifier"),
        ({"StartTime": "2024-01-01 00:00:00"}, "InvalidParameterValue.StartTimeOrEndTime"),
        (
            {"StartTime": "2024-01-01 00:00:00", "EndTime": "2024-01-02 00:00:01"},
            "InvalidParameterValue.StartTimeOrEndTime",
        ),
        ({"FunctionName": "nope"}, "ResourceNotFound.Function"),
    ],
)
def test_function_logs_refuse_bad_values(
    sdk: ScfClient, probed: dict[str, str], params: dict[str, Any], code: str
) -> None:
    assert error_code(sdk, "GetFunctionLogs", {"FunctionName": "probe", **params}) == code


def test_function_log_carries_the_end_of_a_long_log(sdk: ScfClient) -> None:
    create(sdk, "chatty", CHATTY)
    rid = invoke(sdk, "chatty", {}, sync=True)
    log = logs(sdk, "chatty", FunctionRequestId=rid).Data[0].Log
    assert 3000 < len(log.encode()) <= 4096
    assert log.rstrip().endswith("line 1999 " + "." * 40)
    assert "line 0000" not in log and "line 1950" in log
