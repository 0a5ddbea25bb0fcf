"""SCF async events through the official SDK: watch an async-run job (status, list, logs
while it runs), terminate it, filter and page the event list, and the retry policy
(Get/UpdateFunctionEventInvokeConfig)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from cumulo_server import ServerProcess
from scf_sdk import make_key, request, sdk_client, zip_b64
from tencentcloud.common.exception.tencent_cloud_sdk_exception import (
    TencentCloudSDKException,
)
from tencentcloud.scf.v20180416.scf_client import ScfClient

# The SDK calls datetime.utcfromtimestamp when it signs.
pytestmark = pytest.mark.filterwarnings("ignore:datetime.datetime.utcfromtimestamp")

TICKER = """
import signal, sys, time

def main_handler(event, context):
    if event.get("graceful"):
        def on_term(signum, frame):
            print("got SIGTERM, saving checkpoint", flush=True)
            sys.exit(0)
        signal.signal(signal.SIGTERM, on_term)
    for i in range(event.get("ticks", 100)):
        print("tick", i, flush=True)
        time.sleep(0.1)
    return {"ticks": event.get("ticks", 100)}
"""

MIXED = """
import time

def main_handler(event, context):
    print("mode", event["mode"], flush=True)
    if event["mode"] == "fail":
        raise RuntimeError("asked to fail")
    if event["mode"] == "sleep":
        time.sleep(30)
    return {"mode": event["mode"]}
"""

QUICK = """
def main_handler(event, context):
    return "ok"
"""


@pytest.fixture(scope="module")
def scf_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    srv = ServerProcess(Path(tmp_path_factory.mktemp("scf-events")) / "data")
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


def create(sdk: ScfClient, name: str, code: str, *, async_run: bool = False, **extra: Any) -> None:
    params = {
        "FunctionName": name,
        "Code": {"ZipFile": zip_b64({"index.py": code})},
        "Handler": "index.main_handler",
        "Runtime": "Python3.9",
        "AsyncRunEnable": "TRUE" if async_run else "FALSE",
        **extra,
    }
    call(sdk, "CreateFunction", params)


def invoke(
    sdk: ScfClient, name: str, event: dict[str, Any], *, sync: bool = False, **extra: Any
) -> str:
    answer = call(
        sdk,
        "Invoke",
        {"FunctionName": name, "ClientContext": json.dumps(event),
         "InvocationType": "RequestResponse" if sync else "Event", **extra},
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


def status(sdk: ScfClient, rid: str) -> Any:
    return call(sdk, "GetAsyncEventStatus", {"InvokeRequestId": rid}).Result


def wait_ended(sdk: ScfClient, rid: str) -> Any:
    return wait_for(lambda: status(sdk, rid), lambda s: s.Status != "RUNNING")


def log_of(sdk: ScfClient, name: str, rid: str) -> Any:
    answer = call(sdk, "GetFunctionLogs", {"FunctionName": name, "FunctionRequestId": rid})
    assert answer.TotalCount == 1
    return answer.Data[0]


def events(sdk: ScfClient, name: str, **filters: Any) -> Any:
    return call(sdk, "ListAsyncEvents", {"FunctionName": name, **filters})


def ids(answer: Any) -> list[str]:
    return [e.InvokeRequestId for e in answer.EventList]


def test_async_run_job_is_watched_while_it_runs_then_terminated(sdk: ScfClient) -> None:
    create(sdk, "ticker", TICKER, async_run=True, Timeout=600)
    asked = time.monotonic()
    rid = invoke(sdk, "ticker", {"ticks": 100})
    assert time.monotonic() - asked < 2  # the request id comes back at once
    assert len(rid) == 36

    running = status(sdk, rid)
    assert (running.Status, running.StatusCode, running.InvokeRequestId) == ("RUNNING", 202, rid)

    listed = events(sdk, "ticker")
    assert listed.TotalCount == 1
    event = listed.EventList[0]
    assert event.InvokeRequestId == rid
    assert (event.Status, event.InvokeType, event.Qualifier, event.EndTime) == (
        "RUNNING", "ASYNC", "$LATEST", ""
    )  # fmt: skip
    time.strptime(event.StartTime, "%Y-%m-%d %H:%M:%S.%f")

    live = wait_for(lambda: log_of(sdk, "ticker", rid), lambda log: "tick 5" in log.Log)
    assert (live.RetCode, live.InvokeFinished, live.RequestId) == (2, 0, rid)
    assert live.Duration > 0 and live.FunctionName == "ticker"
    assert "tick 99" not in live.Log

    call(sdk, "TerminateAsyncEvent", {"FunctionName": "ticker", "InvokeRequestId": rid})
    ended = wait_ended(sdk, rid)
    assert (ended.Status, ended.StatusCode) == ("ABORTED", 499)
    event = events(sdk, "ticker", InvokeRequestId=rid).EventList[0]
    assert event.Status == "ABORTED"
    assert event.EndTime >= event.StartTime
    final = log_of(sdk, "ticker", rid)
    assert (final.RetCode, final.InvokeFinished) == (3, 1)
    assert "tick 5" in final.Log and "tick 99" not in final.Log
    # Terminating an aborted event again changes nothing.
    call(sdk, "TerminateAsyncEvent", {"FunctionName": "ticker", "InvokeRequestId": rid})
    assert status(sdk, rid).Status == "ABORTED"


def test_grace_shutdown_lets_the_handler_catch_sigterm(sdk: ScfClient) -> None:
    create(sdk, "graceful", TICKER, async_run=True, Timeout=600)
    rid = invoke(sdk, "graceful", {"ticks": 300, "graceful": True})
    wait_for(lambda: log_of(sdk, "graceful", rid), lambda log: "tick 2" in log.Log)
    call(
        sdk,
        "TerminateAsyncEvent",
        {"FunctionName": "graceful", "InvokeRequestId": rid, "GraceShutdown": True},
    )
    assert wait_ended(sdk, rid).Status == "ABORTED"
    assert "got SIGTERM, saving checkpoint" in log_of(sdk, "graceful", rid).Log


def _publish(server: ServerProcess, name: str) -> None:
    answer = httpx.post(
        f"{server.url}/v1/namespaces/default/functions/{name}/versions",
        json={},
        headers={"Authorization": f"Bearer {server.token}"},
        timeout=10,
    )
    answer.raise_for_status()


def test_list_async_events_filters_orders_and_pages(
    sdk: ScfClient, scf_server: ServerProcess
) -> None:
    create(sdk, "mixed", MIXED, Timeout=60)
    call(
        sdk,
        "UpdateFunctionEventInvokeConfig",
        {"FunctionName": "mixed", "AsyncTriggerConfig": {"RetryConfig": [{"RetryNum": 0}]}},
    )
    _publish(scf_server, "mixed")

    # Before the boundary: these start and end before it.
    sync_ok = invoke(sdk, "mixed", {"mode": "ok"}, sync=True)
    async_ok = invoke(sdk, "mixed", {"mode": "ok"})
    async_fail = invoke(sdk, "mixed", {"mode": "fail"})
    v1_ok = invoke(sdk, "mixed", {"mode": "ok"}, Qualifier="1")
    for rid in (async_ok, async_fail, v1_ok):
        wait_ended(sdk, rid)
    boundary = int(time.time()) + 1
    time.sleep(boundary - time.time() + 0.05)
    # After it: these start (and end) after it.
    later_ok = invoke(sdk, "mixed", {"mode": "ok"})
    sync_fail = invoke(sdk, "mixed", {"mode": "fail"}, sync=True)
    aborted = invoke(sdk, "mixed", {"mode": "sleep"})
    wait_for(lambda: log_of(sdk, "mixed", aborted), lambda log: "mode sleep" in log.Log)
    call(sdk, "TerminateAsyncEvent", {"FunctionName": "mixed", "InvokeRequestId": aborted})
    for rid in (later_ok, aborted):
        wait_ended(sdk, rid)
    before = {sync_ok, async_ok, async_fail, v1_ok}
    after = {later_ok, sync_fail, aborted}
    every = before | after

    assert (status(sdk, sync_ok).StatusCode, status(sdk, async_fail).StatusCode) == (200, 430)
    assert (status(sdk, aborted).Status, status(sdk, aborted).StatusCode) == ("ABORTED", 499)

    def found(**filters: Any) -> set[str]:
        answer = events(sdk, "mixed", Limit=100, **filters)
        assert answer.TotalCount == len(answer.EventList)
        return set(ids(answer))

    assert found() == every
    assert found(Status=["FINISHED"]) == {sync_ok, async_ok, v1_ok, later_ok}
    assert found(Status=["FAILED"]) == {async_fail, sync_fail}
    assert found(Status=["ABORTED", "FAILED"]) == {aborted, async_fail, sync_fail}
    assert found(Status=["RUNNING"]) == set()
    assert found(InvokeType=["SYNC"]) == {sync_ok, sync_fail}
    assert found(InvokeType=["ASYNC"]) == every - {sync_ok, sync_fail}
    assert found(InvokeType=["Event", "RequestResponse"]) == every
    assert found(Status=["FAILED"], InvokeType=["SYNC"]) == {sync_fail}
    assert found(Qualifier="1") == {v1_ok}
    assert found(Qualifier="$LATEST") == every - {v1_ok}
    assert found(InvokeRequestId=aborted) == {aborted}
    edge = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(boundary))
    assert found(StartTimeInterval={"Start": edge}) == after
    assert found(StartTimeInterval={"End": edge}) == before
    assert found(EndTimeInterval={"Start": edge}) == after
    assert found(EndTimeInterval={"End": edge}) == before
    assert found(StartTimeInterval={"Start": "2000-01-01 00:00:00", "End": edge}) == before

    listed = events(sdk, "mixed", Limit=100).EventList
    first = next(e for e in listed if e.InvokeRequestId == sync_ok)
    assert (first.InvokeType, first.Status, first.Qualifier) == ("SYNC", "FINISHED", "$LATEST")
    assert next(e for e in listed if e.InvokeRequestId == v1_ok).Qualifier == "1"

    for orderby, field in (("StartTime", "StartTime"), ("EndTime", "EndTime")):
        up = events(sdk, "mixed", Orderby=orderby, Order="ASC", Limit=100).EventList
        down = events(sdk, "mixed", Orderby=orderby, Order="DESC", Limit=100).EventList
        times = [getattr(e, field) for e in up]
        assert times == sorted(times) and times[0] < times[-1]
        assert [e.InvokeRequestId for e in down] == [e.InvokeRequestId for e in reversed(up)]
    default = events(sdk, "mixed", Limit=100).EventList
    assert [e.StartTime for e in default] == sorted((e.StartTime for e in default), reverse=True)

    pages = [events(sdk, "mixed", Offset=offset, Limit=3) for offset in (0, 3, 6)]
    assert [p.TotalCount for p in pages] == [7, 7, 7]
    assert [len(p.EventList) for p in pages] == [3, 3, 1]
    assert [rid for p in pages for rid in ids(p)] == [e.InvokeRequestId for e in default]
    assert events(sdk, "mixed").TotalCount == 7  # the default page holds 20


@pytest.fixture(scope="module")
def listed(sdk: ScfClient) -> str:
    create(sdk, "listed", QUICK)
    return "listed"


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"Order": "UP"}, "InvalidParameterValue.Order"),
        ({"Orderby": "AddTime"}, "InvalidParameterValue.OrderBy"),
        ({"Status": ["DONE"]}, "InvalidParameterValue.Status"),
        ({"InvokeType": ["CARRIER_PIGEON"]}, "InvalidParameterValue.InvokeType"),
        ({"Limit": 101}, "InvalidParameterValue.Limit"),
        ({"Limit": 0}, "InvalidParameterValue.Limit"),
        ({"Qualifier": "prod"}, "InvalidParameterValue.Qualifier"),
        ({"StartTimeInterval": {"Start": "yesterday"}}, "InvalidParameterValue.StartTimeInterval"),
        (
            {"EndTimeInterval": {"Start": "2024-01-02 00:00:00", "End": "2024-01-01 00:00:00"}},
            "InvalidParameterValue.EndTimeInterval",
        ),
        ({"FunctionName": "nope"}, "ResourceNotFound.Function"),
        ({"Namespace": "nowhere"}, "ResourceNotFound.Function"),
    ],
)
def test_list_async_events_refuses_bad_values(
    sdk: ScfClient, listed: str, params: dict[str, Any], code: str
) -> None:
    assert error_code(sdk, "ListAsyncEvents", {"FunctionName": "listed", **params}) == code


def test_event_status_and_terminate_errors(sdk: ScfClient, scf_server: ServerProcess) -> None:
    create(sdk, "quick", QUICK)
    create(sdk, "bystander", QUICK)
    done = invoke(sdk, "quick", {}, sync=True)
    assert (status(sdk, done).Status, status(sdk, done).StatusCode) == ("FINISHED", 200)

    unknown = "00000000-0000-4000-8000-000000000000"
    assert error_code(sdk, "GetAsyncEventStatus", {"InvokeRequestId": unknown}) == (
        "ResourceNotFound.AsyncEvent"
    )
    assert error_code(sdk, "GetAsyncEventStatus", {}) == "MissingParameter"
    # A key confined to another namespace does not see this one's events.
    httpx.post(
        f"{scf_server.url}/v1/namespaces",
        json={"name": "elsewhere"},
        headers={"Authorization": f"Bearer {scf_server.token}"},
        timeout=10,
    ).raise_for_status()
    confined = sdk_client(scf_server, make_key(scf_server, "elsewhere"))
    assert error_code(confined, "GetAsyncEventStatus", {"InvokeRequestId": done}) == (
        "ResourceNotFound.AsyncEvent"
    )

    def terminate(**params: Any) -> str:
        return error_code(sdk, "TerminateAsyncEvent", params)

    assert terminate(FunctionName="quick", InvokeRequestId=unknown) == (
        "ResourceNotFound.AsyncEvent"
    )
    assert terminate(FunctionName="bystander", InvokeRequestId=done) == (
        "ResourceNotFound.AsyncEvent"
    )
    assert terminate(FunctionName="nope", InvokeRequestId=done) == "ResourceNotFound.Function"
    assert terminate(FunctionName="quick", InvokeRequestId=done) == (
        "FailedOperation.AsyncEventStatus"
    )
    assert status(sdk, done).Status == "FINISHED"


def test_event_invoke_config_round_trip(sdk: ScfClient, scf_server: ServerProcess) -> None:
    create(sdk, "retrying", QUICK)
    config = call(sdk, "GetFunctionEventInvokeConfig", {"FunctionName": "retrying"})
    trigger = config.AsyncTriggerConfig
    assert ([r.RetryNum for r in trigger.RetryConfig], trigger.MsgTTL) == ([2], 21600)

    call(
        sdk,
        "UpdateFunctionEventInvokeConfig",
        {"FunctionName": "retrying",
         "AsyncTriggerConfig": {"RetryConfig": [{"RetryNum": 5}], "MsgTTL": 3600}},
    )  # fmt: skip
    trigger = call(
        sdk, "GetFunctionEventInvokeConfig", {"FunctionName": "retrying"}
    ).AsyncTriggerConfig
    assert ([r.RetryNum for r in trigger.RetryConfig], trigger.MsgTTL) == ([5], 3600)
    rest = httpx.get(
        f"{scf_server.url}/v1/namespaces/default/functions/retrying",
        headers={"Authorization": f"Bearer {scf_server.token}"},
        timeout=10,
    ).json()
    assert (rest["retry_attempts"], rest["max_event_age_s"]) == (5, 3600)

    # Only MsgTTL: the retries stay.
    call(
        sdk,
        "UpdateFunctionEventInvokeConfig",
        {"FunctionName": "retrying", "AsyncTriggerConfig": {"MsgTTL": 120}},
    )
    trigger = call(
        sdk, "GetFunctionEventInvokeConfig", {"FunctionName": "retrying"}
    ).AsyncTriggerConfig
    assert ([r.RetryNum for r in trigger.RetryConfig], trigger.MsgTTL) == ([5], 120)

    def update(config: dict[str, Any], name: str = "retrying") -> str:
        return error_code(
            sdk,
            "UpdateFunctionEventInvokeConfig",
            {"FunctionName": name, "AsyncTriggerConfig": config},
        )

    assert update({"RetryConfig": [{"RetryNum": 9}]}) == "InvalidParameterValue.RetryNum"
    assert update({"MsgTTL": 10}) == "InvalidParameterValue.MsgTTL"
    assert update({"MsgTTL": 60}, name="nope") == "ResourceNotFound.Function"
    assert error_code(sdk, "UpdateFunctionEventInvokeConfig", {"FunctionName": "retrying"}) == (
        "MissingParameter"
    )
    assert error_code(sdk, "GetFunctionEventInvokeConfig", {"FunctionName": "nope"}) == (
        "ResourceNotFound.Function"
    )

    # An async-run function is never retried: it says so, and refuses retries.
    create(sdk, "job", QUICK, async_run=True)
    trigger = call(sdk, "GetFunctionEventInvokeConfig", {"FunctionName": "job"}).AsyncTriggerConfig
    assert [r.RetryNum for r in trigger.RetryConfig] == [0]
    assert update({"RetryConfig": [{"RetryNum": 1}]}, name="job") == (
        "UnsupportedOperation.UpdateFunctionEventInvokeConfig"
    )
    call(
        sdk,
        "UpdateFunctionEventInvokeConfig",
        {"FunctionName": "job",
         "AsyncTriggerConfig": {"RetryConfig": [{"RetryNum": 0}], "MsgTTL": 600}},
    )  # fmt: skip
    trigger = call(sdk, "GetFunctionEventInvokeConfig", {"FunctionName": "job"}).AsyncTriggerConfig
    assert ([r.RetryNum for r in trigger.RetryConfig], trigger.MsgTTL) == ([0], 600)
