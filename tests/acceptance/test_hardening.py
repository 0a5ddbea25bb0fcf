"""Hostile and odd input gets a clear refusal, never a 500: non-ASCII where secrets or
numbers are compared, names with a trailing newline, deleting what a trigger still uses."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from cumulo_server import ServerProcess
from scf_sdk import request, sdk_client, zip_b64

pytestmark = pytest.mark.filterwarnings("ignore:datetime.datetime.utcfromtimestamp")

CODE = {"files": {"index.py": "def main_handler(event, context):\n    return 'v'\n"}}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    srv = ServerProcess(tmp_path_factory.mktemp("hardening") / "data")
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


def admin(server: ServerProcess) -> httpx.Client:
    return httpx.Client(
        base_url=server.url, headers={"Authorization": f"Bearer {server.token}"}, timeout=10
    )


@pytest.mark.parametrize(
    "query",
    [
        "expires=9999999999&signature=%C3%A9",
        "expires=%C2%B2&signature=0",
        "expires=" + "9" * 5000 + "&signature=0",
        "expires=&signature=",
    ],
)
def test_code_links_refuse_odd_input_cleanly(server: ServerProcess, query: str) -> None:
    answer = httpx.get(f"{server.url}/v1/code/abc?{query}")
    assert answer.status_code == 401, answer.text
    assert answer.json()["error"]["code"] == "AuthFailure"


def test_console_csrf_checks_refuse_non_ascii_cleanly(server: ServerProcess) -> None:
    with httpx.Client(base_url=server.url) as browser:
        browser.get("/console/login")
        login = browser.post("/console/login", data={"csrf": "é", "token": server.token})
        assert login.status_code == 403
        logout = browser.post("/console/logout", headers={"X-CSRF-Token": b"\xe9"})
        assert logout.status_code == 403


def test_names_with_a_trailing_newline_are_refused(server: ServerProcess) -> None:
    with admin(server) as api:
        made = api.post("/v1/namespaces/default/functions", json={"name": "nl\n", "code": CODE})
        assert made.status_code == 400
        assert made.json()["error"]["code"] == "InvalidParameterValue.Name"
        assert api.post("/v1/namespaces/default/functions",
                        json={"name": "nl", "code": CODE}).status_code == 201  # fmt: skip
        api.post("/v1/namespaces/default/functions/nl/versions", json={})
        alias = api.post("/v1/namespaces/default/functions/nl/aliases",
                         json={"name": "prod\n", "function_version": "1"})  # fmt: skip
        assert alias.status_code == 400
        trigger = api.post("/v1/namespaces/default/functions/nl/triggers",
                           json={"name": "t1\n", "type": "timer",
                                 "description": "0 0 * * * * *"})  # fmt: skip
        assert trigger.status_code == 400


def test_what_a_trigger_invokes_cannot_be_deleted(server: ServerProcess) -> None:
    with admin(server) as api:
        fn = "/v1/namespaces/default/functions/timed"
        assert api.post("/v1/namespaces/default/functions",
                        json={"name": "timed", "code": CODE}).status_code == 201  # fmt: skip
        assert api.post(fn + "/versions", json={}).status_code == 201
        live = {"name": "live", "function_version": "1"}
        assert api.post(fn + "/aliases", json=live).status_code == 201
        for name, qualifier in (("on-version", "1"), ("on-alias", "live")):
            made = api.post(fn + "/triggers", json={"name": name, "type": "timer",
                                                    "description": "0 0 0 * * * *",
                                                    "qualifier": qualifier})  # fmt: skip
            assert made.status_code == 201, made.text
        refused = api.delete(fn + "/aliases/live")
        assert refused.status_code == 409
        assert refused.json()["error"]["code"] == "ResourceInUse.Trigger"
        api.delete(fn + "/triggers/on-alias")
        assert api.delete(fn + "/aliases/live").status_code == 204
        refused = api.delete(fn + "/versions/1")
        assert refused.status_code == 409
        assert refused.json()["error"]["code"] == "ResourceInUse.Trigger"
        api.delete(fn + "/triggers/on-version")
        assert api.delete(fn + "/versions/1").status_code == 204


def test_reading_through_an_alias_describes_its_main_version(server: ServerProcess) -> None:
    scf = sdk_client(server)
    code = zip_b64({"index.py": "def main_handler(event, context):\n    return 1\n"})
    scf.CreateFunction(request("CreateFunctionRequest", {"FunctionName": "split",
                                                         "Code": {"ZipFile": code},
                                                         "Handler": "index.main_handler",
                                                         "MemorySize": 128}))  # fmt: skip
    scf.PublishVersion(request("PublishVersionRequest", {"FunctionName": "split"}))
    bigger = {"FunctionName": "split", "MemorySize": 256}
    scf.UpdateFunctionConfiguration(request("UpdateFunctionConfigurationRequest", bigger))
    scf.PublishVersion(request("PublishVersionRequest", {"FunctionName": "split"}))
    scf.CreateAlias(request("CreateAliasRequest", {
        "FunctionName": "split", "Name": "half", "FunctionVersion": "1",
        "RoutingConfig": {"AdditionalVersionWeights": [{"Version": "2", "Weight": 0.5}]},
    }))  # fmt: skip
    seen = {
        scf.GetFunction(request("GetFunctionRequest", {"FunctionName": "split",
                                                       "Qualifier": "half"})).MemorySize
        for _ in range(20)
    }  # fmt: skip
    assert seen == {128}
