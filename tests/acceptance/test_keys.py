"""API keys for the SCF API, made and revoked with the CLI (``cumulo keys``) and the Python
client, used by the official SDK against the real server; namespaces' descriptions."""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from cumulo_server import ServerProcess
from scf_sdk import request, sdk_client
from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException

import cumulo
from cumulo.client import ApiError

# The SDK calls datetime.utcfromtimestamp, deprecated since Python 3.12.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

HELLO = "def main_handler(event, context):\n    return {'namespace': context.namespace}\n"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One server for the module: the tests make keys and namespaces of their own."""
    process = ServerProcess(tmp_path_factory.mktemp("keys") / "data")
    process.start()
    try:
        yield process
    finally:
        process.stop()


def cli(server: ServerProcess, *args: str) -> subprocess.CompletedProcess[str]:
    """``cumulo ARGS`` as a process of its own, finding the server's URL and admin token the
    way a user's shell would (``CUMULO_URL``, ``CUMULO_DATA_DIR``)."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("CUMULO_")}
    src = str(Path(cumulo.__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [src, env.get("PYTHONPATH")]))
    env.update(
        CUMULO_URL=server.url,
        CUMULO_DATA_DIR=str(server.data_dir),
        COLUMNS="200",
        PYTHONIOENCODING="utf-8",
    )
    return subprocess.run(
        [sys.executable, "-m", "cumulo", *args], env=env, capture_output=True, text=True, timeout=60
    )


def _created(result: subprocess.CompletedProcess[str]) -> tuple[str, str]:
    """The (SecretId, SecretKey) of ``cumulo keys create --json``, which prints nothing else."""
    assert result.returncode == 0, result.stderr
    body = json.loads(result.stdout)
    assert set(body) == {"secret_id", "secret_key"}
    assert "not shown again" in result.stderr
    return body["secret_id"], body["secret_key"]


def _listed(server: ServerProcess, secret_id: str) -> dict[str, Any]:
    result = cli(server, "keys", "list", "--json")
    assert result.returncode == 0, result.stderr
    (found,) = [key for key in json.loads(result.stdout) if key["secret_id"] == secret_id]
    return dict(found)


def _scf_error(call: Any, *args: Any) -> str:
    with pytest.raises(TencentCloudSDKException) as info:
        call(*args)
    return str(info.value.code)


def _list_functions(namespace: str | None = None) -> Any:
    return request("ListFunctionsRequest", {"Namespace": namespace} if namespace else {})


def test_cli_key_signs_sdk_calls_until_revoked(server: ServerProcess) -> None:
    secret_id, secret_key = _created(cli(server, "keys", "create", "--description", "ci", "--json"))
    assert secret_id.startswith("AKID") and len(secret_key) >= 32
    sdk = sdk_client(server, key=(secret_id, secret_key))
    assert sdk.ListFunctions(_list_functions()).TotalCount == 0

    listed = _listed(server, secret_id)
    assert listed["status"] == "active"
    assert (listed["namespace"], listed["description"], listed["revoked_at"]) == (None, "ci", None)
    assert "secret_key" not in listed
    table = cli(server, "keys", "list")
    assert table.returncode == 0, table.stderr
    assert secret_id in table.stdout and "* (admin)" in table.stdout
    for shown in (table.stdout, cli(server, "keys", "list", "--json").stdout):
        assert secret_key not in shown

    revoked = cli(server, "keys", "revoke", secret_id)
    assert (revoked.returncode, revoked.stdout.strip()) == (0, f"revoked {secret_id}")
    # Revoking drops the key from this node's cache: the very next call is refused.
    assert _scf_error(sdk.ListFunctions, _list_functions()) == "AuthFailure.SecretIdNotFound"
    listed = _listed(server, secret_id)
    assert listed["status"] == "revoked" and listed["revoked_at"]
    assert cli(server, "keys", "revoke", secret_id).returncode == 0  # idempotent
    assert _listed(server, secret_id)["revoked_at"] == listed["revoked_at"]

    unknown = cli(server, "keys", "revoke", "AKIDnosuchkey")
    assert unknown.returncode == 3
    assert "error: ResourceNotFound.SecretId:" in unknown.stderr


def test_cli_key_create_prints_the_pair_once_with_a_warning(server: ServerProcess) -> None:
    result = cli(server, "keys", "create")
    assert result.returncode == 0, result.stderr
    fields = dict(line.split(":", 1) for line in result.stdout.splitlines())
    assert set(fields) == {"SecretId", "SecretKey"}
    secret_id, secret_key = fields["SecretId"].strip(), fields["SecretKey"].strip()
    assert "warning:" in result.stderr and "not shown again" in result.stderr
    assert "admin" in result.stderr
    sdk = sdk_client(server, key=(secret_id, secret_key))
    assert sdk.ListFunctions(_list_functions()).TotalCount >= 0
    with pytest.raises(TencentCloudSDKException):
        sdk_client(server, key=(secret_id, secret_key[::-1])).ListFunctions(_list_functions())


@pytest.mark.anyio
async def test_a_namespace_key_acts_only_in_its_namespace(server: ServerProcess) -> None:
    async with server.client() as admin:
        await admin.create_namespace("team")
    async with server.client(namespace="team") as team:
        await team.create_function("hello", files={"index.py": HELLO})

    secret_id, secret_key = _created(cli(server, "keys", "create", "--namespace", "team", "--json"))
    assert _listed(server, secret_id)["namespace"] == "team"
    sdk = sdk_client(server, key=(secret_id, secret_key))

    def own() -> None:
        listed = sdk.ListFunctions(_list_functions("team"))
        assert [f.FunctionName for f in listed.Functions] == ["hello"]
        got = sdk.GetFunction(request("GetFunctionRequest", {"FunctionName": "hello",
                                                             "Namespace": "team"}))  # fmt: skip
        assert got.FunctionName == "hello"

    await _in_thread(own)
    for namespace in (None, "default"):
        code = await _in_thread(_scf_error, sdk.ListFunctions, _list_functions(namespace))
        assert code == "UnauthorizedOperation"
    other = request("GetFunctionRequest", {"FunctionName": "hello", "Namespace": "default"})
    assert await _in_thread(_scf_error, sdk.GetFunction, other) == "UnauthorizedOperation"

    missing = cli(server, "keys", "create", "--namespace", "nowhere", "--json")
    assert (missing.returncode, missing.stdout) == (3, "")
    assert "error: ResourceNotFound.Namespace:" in missing.stderr


@pytest.mark.anyio
async def test_client_keys_and_namespace_descriptions(server: ServerProcess) -> None:
    async with server.client() as client:
        made = await client.create_key(None, "from python")
        assert made["status"] == "active" and made["namespace"] is None
        listed = {key["secret_id"]: key for key in await client.list_keys()}
        assert listed[made["secret_id"]]["description"] == "from python"
        assert "secret_key" not in listed[made["secret_id"]]
        revoked = await client.revoke_key(made["secret_id"])
        assert revoked["status"] == "revoked"
        with pytest.raises(ApiError) as info:
            await client.revoke_key("AKIDnothing")
        assert (info.value.status, info.value.code) == (404, "ResourceNotFound.SecretId")

        await client.create_namespace("described", "before")
        updated = await client.update_namespace("described", "after")
        assert (updated["name"], updated["description"]) == ("described", "after")
        found = {ns["name"]: ns for ns in await client.namespaces()}
        assert found["described"]["description"] == "after"
        with pytest.raises(ApiError) as info:
            await client.update_namespace("nowhere", "x")
        assert (info.value.status, info.value.code) == (404, "ResourceNotFound.Namespace")


def test_the_database_holds_no_plain_secret(server: ServerProcess) -> None:
    secret_id, secret_key = _created(cli(server, "keys", "create", "--json"))
    database = server.data_dir / "cumulo.db"
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as conn:
        rows = conn.execute("SELECT * FROM api_keys").fetchall()
    assert secret_id in {row[0] for row in rows}
    assert all(secret_key not in str(value) for row in rows for value in row)
    # Nor anywhere in the files: the write-ahead log included.
    for path in server.data_dir.glob("cumulo.db*"):
        assert secret_key.encode() not in path.read_bytes(), path
    key_file = server.data_dir / "secret.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert secret_key not in key_file.read_text()


def test_key_endpoints_need_the_admin_token(server: ServerProcess) -> None:
    secret_id, secret_key = _created(cli(server, "keys", "create", "--json"))
    calls = [
        ("POST", "/v1/keys", {"namespace": None, "description": "x"}),
        ("GET", "/v1/keys", None),
        ("DELETE", f"/v1/keys/{secret_id}", None),
    ]
    for method, path, body in calls:
        for headers in (
            {},
            {"Authorization": "Bearer wrong"},
            {"Authorization": f"Bearer {secret_key}"},  # an API key is not the admin token
            {"Authorization": f"Bearer {secret_id}"},
        ):
            answer = httpx.request(method, server.url + path, json=body, headers=headers)
            assert answer.status_code == 401, (method, path, headers)
            assert answer.json()["error"]["code"] == "AuthFailure"
    assert _listed(server, secret_id)["status"] == "active"  # the DELETEs did nothing

    misspelt = httpx.post(
        server.url + "/v1/keys",
        json={"namespce": "team"},
        headers={"Authorization": f"Bearer {server.token}"},
    )
    assert (misspelt.status_code, misspelt.json()["error"]["code"]) == (400, "UnknownParameter")

    env_token = cli(server, "--token", "wrong", "keys", "list")
    assert env_token.returncode == 3
    assert "error: AuthFailure:" in env_token.stderr


async def _in_thread(call: Any, *args: Any) -> Any:
    """The SDK blocks: run it off the event loop."""
    return await asyncio.to_thread(call, *args)


def test_namespaces_made_with_the_cli_take_keys_and_functions(server: ServerProcess) -> None:
    made = cli(server, "namespaces", "create", "team-cli", "--description", "a team")
    assert made.returncode == 0, made.stderr
    assert made.stdout.strip() == "team-cli"
    listed = json.loads(cli(server, "namespaces", "ls", "--json").stdout)
    assert {"name": "team-cli", "description": "a team"}.items() <= next(
        n for n in listed if n["name"] == "team-cli"
    ).items()
    key = cli(server, "keys", "create", "--namespace", "team-cli", "--json")
    assert key.returncode == 0, key.stderr
    again = cli(server, "namespaces", "create", "team-cli")
    assert again.returncode != 0 and "ResourceInUse.Namespace" in again.stderr
    gone = cli(server, "namespaces", "rm", "team-cli")
    assert gone.returncode == 0, gone.stderr
    assert "team-cli" not in cli(server, "namespaces", "ls").stdout
