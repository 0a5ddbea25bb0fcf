"""Triggers through the REST API against a real server: created, read, listed, changed and
deleted with cumulo's codes; a timer runs the version its qualifier names; and a fire time
makes one invocation however many admit it (its idempotency key is the trigger's name and
the fire time, which is how several nodes firing one timer make one run)."""

from __future__ import annotations

import asyncio
import io
import time
import zipfile
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from cumulo_server import ServerProcess

from cumulo.client import Client

pytestmark = pytest.mark.anyio

VERSIONED = "def main_handler(event, context):\n    return {{'v': {v}, 'event': event}}\n"
TRIGGERS = "/v1/namespaces/default/functions/{fn}/triggers"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    srv = ServerProcess(tmp_path_factory.mktemp("triggers") / "data")
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


def api(server: ServerProcess, method: str, path: str, **kwargs: Any) -> httpx.Response:
    headers = {"Authorization": f"Bearer {server.token}", **kwargs.pop("headers", {})}
    return httpx.request(method, server.url + path, headers=headers, timeout=10, **kwargs)


def code(v: int) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("index.py", VERSIONED.format(v=v))
    return buffer.getvalue()


def error(answer: httpx.Response, status: int) -> str:
    assert answer.status_code == status, answer.text
    return str(answer.json()["error"]["code"])


async def test_create_read_list_change_delete(client: Client, server: ServerProcess) -> None:
    await client.create_function("crud", files={"index.py": VERSIONED.format(v=1)})
    path = TRIGGERS.format(fn="crud")
    created = api(server, "POST", path, json={"name": "nightly", "description": "0 0 3 * * * *",
                                              "custom_argument": "run"})  # fmt: skip
    assert created.status_code == 201, created.text
    body = created.json()
    assert {k: body[k] for k in ("name", "namespace", "function", "type", "description",
                                 "qualifier", "enabled", "custom_argument")} == {
        "name": "nightly", "namespace": "default", "function": "crud", "type": "timer",
        "description": "0 0 3 * * * *", "qualifier": "$LATEST", "enabled": True,
        "custom_argument": "run",
    }  # fmt: skip
    assert body["next_fire_at"].endswith("T03:00:00.000Z")
    assert body["created_at"] == body["updated_at"]

    api(server, "POST", path, json={"name": "often", "description": "*/5 * * * *",
                                    "enabled": False})  # fmt: skip
    listed = api(server, "GET", path).json()["items"]
    assert [(t["name"], t["enabled"], t["next_fire_at"]) for t in listed] == [
        ("nightly", True, body["next_fire_at"]),
        ("often", False, None),
    ]
    assert api(server, "GET", path + "/nightly").json() == body

    changed = api(server, "PATCH", path + "/often",
                  json={"enabled": True, "description": "0 15 * * * *"})  # fmt: skip
    assert changed.status_code == 200, changed.text
    assert changed.json()["description"] == "0 15 * * * *"
    assert changed.json()["next_fire_at"].endswith(":15:00.000Z")
    assert changed.json()["updated_at"] >= changed.json()["created_at"]

    assert api(server, "DELETE", path + "/often").status_code == 204
    assert error(api(server, "GET", path + "/often"), 404) == "ResourceNotFound.Trigger"
    assert [t["name"] for t in api(server, "GET", path).json()["items"]] == ["nightly"]


async def test_bad_input_answers_codes(client: Client, server: ServerProcess) -> None:
    await client.create_function("bad", files={"index.py": VERSIONED.format(v=1)})
    path = TRIGGERS.format(fn="bad")
    ok = {"name": "t", "description": "0 0 3 * * * *"}
    assert api(server, "POST", path, json=ok).status_code == 201

    def post(**changes: Any) -> httpx.Response:
        return api(server, "POST", path, json={**ok, "name": "t2", **changes})

    assert error(api(server, "POST", path, json=ok), 409) == "ResourceInUse.Trigger"
    assert error(post(type="apigw"), 400) == "UnsupportedOperation.Trigger"
    assert "timer" in post(type="cmq").json()["error"]["message"]
    assert error(post(description="every minute"), 400) == "InvalidParameterValue.TriggerDesc"
    assert error(post(description=None), 400) == "InvalidParameterValue.TriggerDesc"
    assert error(post(name="-x"), 400) == "InvalidParameterValue.TriggerName"
    assert error(post(enabled="yes"), 400) == "InvalidParameterValue.Enable"
    assert error(post(custom_argument=5), 400) == "InvalidParameterValue.CustomArgument"
    assert error(post(qualifier="prod"), 404) == "ResourceNotFound.Qualifier"
    assert error(post(color="red"), 400) == "UnknownParameter"
    assert error(api(server, "POST", TRIGGERS.format(fn="nope"), json=ok), 404) == (
        "ResourceNotFound.Function"
    )
    assert error(api(server, "PATCH", path + "/t", json={"name": "u"}), 400) == ("UnknownParameter")
    assert error(api(server, "PATCH", path + "/zz", json={"enabled": False}), 404) == (
        "ResourceNotFound.Trigger"
    )
    assert error(api(server, "DELETE", path + "/zz"), 404) == "ResourceNotFound.Trigger"
    assert api(server, "GET", path, headers={"Authorization": "Bearer x"}).status_code == 401


async def test_timer_runs_its_qualifier_and_one_invocation_per_fire_time(
    client: Client, server: ServerProcess
) -> None:
    await client.create_function("pinned", files={"index.py": VERSIONED.format(v=1)})
    await client.publish_version("pinned")
    await client.put_code("pinned", code(2))
    # Another node got to the fire at `taken` first: the timer's own admission of that fire
    # must find this invocation and start nothing.
    taken = int(time.time()) + 3
    first = await client.invoke(
        "pinned", {"manual": True}, type="async", idempotency_key=f"timer:pinned-timer@{taken}"
    )
    created = api(server, "POST", TRIGGERS.format(fn="pinned"),
                  json={"name": "pinned-timer", "description": "* * * * * *", "qualifier": "1",
                        "custom_argument": "arg"})  # fmt: skip
    assert created.status_code == 201, created.text

    deadline = time.monotonic() + 10
    while True:
        items = (await client.list_invocations("pinned", limit=1000))["items"]
        done = [i for i in items if i["status"] == "succeeded" and "Type" in i["result"]["event"]]
        if any(i["result"]["event"]["Time"] > _event_time(taken + 1) for i in done):
            break
        assert time.monotonic() < deadline, items
        await asyncio.sleep(0.2)
    assert api(server, "DELETE", TRIGGERS.format(fn="pinned") + "/pinned-timer").status_code == 204

    keyed = [i for i in items if i["idempotency_key"] == f"timer:pinned-timer@{taken}"]
    assert [i["request_id"] for i in keyed] == [first["request_id"]]
    assert _event_time(taken) not in {i["result"]["event"]["Time"] for i in done}
    for inv in done:
        assert inv["function_version"] == "1"
        assert inv["result"]["v"] == 1
        assert inv["result"]["event"]["Message"] == "arg"
        assert inv["result"]["event"]["TriggerName"] == "pinned-timer"


def _event_time(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))
