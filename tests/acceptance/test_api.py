"""The REST API's contract for bad input, auth, listing and operations."""

from __future__ import annotations

import io
import os
import stat
import zipfile

import httpx
import pytest
from cumulo_server import ServerProcess

from cumulo.client import ApiError, Client

pytestmark = pytest.mark.anyio

HELLO = "def main_handler(event, context):\n    return {'hello': event.get('name', 'world')}\n"


def _api(
    server: ServerProcess,
    method: str,
    path: str,
    headers: dict[str, str] | None = None,
    **kwargs: object,
) -> httpx.Response:
    headers = {"Authorization": f"Bearer {server.token}", **(headers or {})}
    return httpx.request(method, server.url + path, headers=headers, **kwargs)  # type: ignore[arg-type]


async def _code(c: Client, call: object) -> str:
    with pytest.raises(ApiError) as info:
        await call  # type: ignore[misc]
    return info.value.code


async def test_token_required_and_stored_privately(server: ServerProcess) -> None:
    mode = stat.S_IMODE(os.stat(server.data_dir / "admin.token").st_mode)
    assert mode == 0o600
    r = httpx.get(server.url + "/v1/namespaces/default/functions")
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "AuthFailure"
    r = httpx.get(server.url + "/v1/namespaces/default/functions",
                  headers={"Authorization": "Bearer wrong"})  # fmt: skip
    assert r.status_code == 401
    assert httpx.get(server.url + "/healthz").status_code == 200
    assert httpx.get(server.url + "/metrics").status_code == 401
    assert "paths" in _api(server, "GET", "/openapi.json").json()


async def test_function_validation_codes(client: Client, server: ServerProcess) -> None:
    files = {"index.py": HELLO}
    assert await _code(client, client.create_function("1bad", files=files)) == (
        "InvalidParameterValue.Name"
    )
    assert await _code(client, client.create_function("ok", files=files, handler="main.run")) == (
        "InvalidParameterValue.Handler"
    )
    assert await _code(client, client.create_function("ok", files=files, timeout_s=901)) == (
        "InvalidParameterValue.TimeoutS"
    )
    assert await _code(client, client.create_function("ok", files=files, memory_mb=32)) == (
        "InvalidParameterValue.MemoryMb"
    )
    env = {"SCF_FOO": "x"}
    assert await _code(client, client.create_function("ok", files=files, environment=env)) == (
        "InvalidParameterValue.Environment"
    )
    assert await _code(client, client.create_function("ok", zip_bytes=b"PK\x03\x04junk")) == (
        "InvalidParameterValue.ZipFile"
    )
    r = _api(server, "POST", "/v1/namespaces/default/functions", content=b"{not json")
    assert r.status_code == 400 and r.json()["error"]["code"] == "InvalidParameterValue.Json"
    r = _api(server, "POST", "/v1/namespaces/default/functions", json={"name": "x1", "cod": 1})
    assert r.status_code == 400 and r.json()["error"]["code"] == "UnknownParameter"

    created = await client.create_function("ok", files=files, async_run=True, timeout_s=7200)
    assert created["timeout_s"] == 7200 and created["async_run"] is True
    assert await _code(client, client.create_function("ok", files=files)) == (
        "ResourceInUse.Function"
    )
    with pytest.raises(ApiError) as info:
        await client.update_function("ok", async_run=False)
    assert info.value.status == 409
    assert info.value.code == "UnsupportedOperation.AsyncRunEnable"
    assert (await client.update_function("ok", async_run=True))["async_run"] is True
    assert await _code(client, client.get_function("missing")) == "ResourceNotFound.Function"
    assert await _code(client, client.invoke("missing")) == "ResourceNotFound.Function"
    assert await _code(client, client.get_invocation("nope")) == "ResourceNotFound.AsyncEvent"


async def test_crud_and_code_replacement(client: Client) -> None:
    await client.create_function("hello", files={"index.py": HELLO}, environment={"A": "1"})
    changed = await client.update_function("hello", memory_mb=256, description="greets")
    assert changed["memory_mb"] == 256 and changed["revision"] == 2
    assert (await client.invoke("hello", {"name": "x"}))["result"] == {"hello": "x"}

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("app.py", "def run(event, context):\n    return 'v2'\n")
    replaced = await client.put_code("hello", buf.getvalue(), handler="app.run")
    assert replaced["handler"] == "app.run" and replaced["revision"] == 3
    assert (await client.invoke("hello"))["result"] == "v2"
    assert [f["name"] for f in await client.list_functions()] == ["hello"]
    await client.delete_function("hello")
    assert await client.list_functions() == []


async def test_sync_invoke_of_broken_code_is_a_clear_failure(client: Client) -> None:
    await client.create_function("broken", files={"index.py": "def main_handler(:\n"})
    inv = await client.invoke("broken")
    assert inv["status"] == "failed"
    assert inv["error"]["type"] == "SyntaxError"


async def test_list_filters_and_pagination(client: Client) -> None:
    await client.create_function("a1", files={"index.py": HELLO})
    await client.create_function("b1", files={"index.py": "def main_handler(e, c):\n    1/0\n"})
    for _ in range(12):
        await client.invoke("a1")
    for _ in range(3):
        await client.invoke("b1")
    seen = []
    cursor = None
    while True:
        page = await client.list_invocations(function="a1", limit=5, cursor=cursor)
        seen.extend(page["items"])
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert len(seen) == 12 and len({i["request_id"] for i in seen}) == 12
    created = [i["created_at"] for i in seen]
    assert created == sorted(created, reverse=True)
    failed = await client.list_invocations(status="failed")
    assert {i["function"] for i in failed["items"]} == {"b1"} and len(failed["items"]) == 3
    with pytest.raises(ApiError) as info:
        await client.list_invocations(status="bogus")
    assert info.value.code == "InvalidParameterValue.Status"


async def test_metrics_count_invocations(client: Client) -> None:
    await client.create_function("m1", files={"index.py": HELLO})
    await client.invoke("m1")
    text = await client.metrics()
    labels = 'function="m1",namespace="default",status="succeeded"'
    assert f"cumulo_invocations_finished_total{{{labels}}} 1.0" in text
    assert "cumulo_instances_live" in text
    assert "cumulo_invocation_duration_seconds_bucket" in text
    assert "cumulo_cold_starts_total" in text


async def test_invoke_header_rules(client: Client, server: ServerProcess) -> None:
    await client.create_function("hh", files={"index.py": HELLO})
    path = "/v1/namespaces/default/functions/hh/invocations"
    lowercase = {"authorization": f"bearer {server.token}"}
    lower = httpx.post(server.url + path, json={}, headers=lowercase)
    assert lower.status_code == 200
    r = _api(server, "POST", path, json={}, headers={"Idempotency-Key": "k1"})
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "InvalidParameterValue.IdempotencyKey"
    r = _api(server, "POST", path + "?type=async", json={}, headers={"Idempotency-Key": "k1"})
    assert r.status_code == 202
    r = _api(server, "POST", path + "?type=later", json={})
    assert r.status_code == 400 and r.json()["error"]["code"] == "InvalidParameterValue.Type"
