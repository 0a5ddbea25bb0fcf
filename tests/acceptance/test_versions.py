"""Versions and aliases over REST (through the Python client) and the CLI, against the real
server: publishing freezes code and configuration, qualifiers pick what runs, aliases split
calls by weight, and the invocation records the version that ran."""

from __future__ import annotations

import functools
import io
import json
import os
import subprocess
import sys
import time
import zipfile
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from cumulo_server import ServerProcess

import cumulo
from cumulo.client import ApiError, Client


def _code(tag: str) -> str:
    return (
        "import os\n"
        "def main_handler(event, context):\n"
        f"    return {{'code': {tag!r}, 'level': os.environ.get('LEVEL'),\n"
        "            'version': context.function_version}\n"
    )


def _zip(source: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("index.py", source)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One server for the module; each test uses functions of its own."""
    process = ServerProcess(tmp_path_factory.mktemp("versions") / "data")
    process.start()
    try:
        yield process
    finally:
        process.stop()


@pytest.fixture
async def client(server: ServerProcess) -> AsyncIterator[Client]:
    async with server.client() as c:
        yield c


async def _two_versions(client: Client, name: str) -> None:
    """``name`` with version 1 (code "one"), version 2 (code "two") and $LATEST at "three"."""
    await client.create_function(name, files={"index.py": _code("one")})
    for tag in ("two", "three"):
        await client.publish_version(name)
        await client.put_code(name, _zip(_code(tag)))


async def _error(call: Awaitable[Any]) -> tuple[int, str]:
    with pytest.raises(ApiError) as info:
        await call
    return info.value.status, info.value.code


# -- versions ----------------------------------------------------------------------------


@pytest.mark.anyio
async def test_publish_freezes_code_and_configuration(client: Client) -> None:
    await client.create_function(
        "frozen", files={"index.py": _code("one")}, environment={"LEVEL": "a"}, timeout_s=7
    )
    published = await client.publish_version("frozen", "first")
    assert (published["version"], published["version_description"]) == ("1", "first")
    assert published["published_at"] and published["timeout_s"] == 7

    await client.put_code("frozen", _zip(_code("two")))
    await client.update_function("frozen", environment={"LEVEL": "b"}, timeout_s=9)

    latest = await client.invoke("frozen")
    assert latest["result"] == {"code": "two", "level": "b", "version": "$LATEST"}
    assert latest["function_version"] == "$LATEST"
    explicit = await client.invoke("frozen", qualifier="$LATEST")
    assert explicit["result"]["code"] == "two"

    old = await client.invoke("frozen", {"x": 1}, qualifier=1)
    assert old["status"] == "succeeded", old
    assert old["result"] == {"code": "one", "level": "a", "version": "1"}
    assert old["function_version"] == "1"
    assert (await client.get_invocation(old["request_id"]))["function_version"] == "1"

    accepted = await client.invoke("frozen", type="async", qualifier="1")
    ran = await client.wait(accepted["request_id"], timeout_s=30)
    assert (ran["result"]["code"], ran["function_version"]) == ("one", "1")

    versions = await client.list_versions("frozen")
    assert [v["version"] for v in versions] == ["$LATEST", "1"]
    assert (versions[0]["timeout_s"], versions[1]["timeout_s"]) == (9, 7)
    assert versions[1]["environment"] == {"LEVEL": "a"}


@pytest.mark.anyio
async def test_version_numbers_and_deletes(client: Client) -> None:
    await client.create_function("numbered", files={"index.py": _code("one")})
    assert [(await client.publish_version("numbered"))["version"] for _ in range(2)] == ["1", "2"]
    await client.delete_version("numbered", 2)
    assert (await client.publish_version("numbered"))["version"] == "3"  # 2 is not reused
    assert [v["version"] for v in await client.list_versions("numbered")] == ["$LATEST", "1", "3"]

    assert await _error(client.invoke("numbered", qualifier=2)) == (
        404,
        "ResourceNotFound.Qualifier",
    )
    assert await _error(client.delete_version("numbered", 2)) == (404, "ResourceNotFound.Version")
    assert await _error(client.delete_version("numbered", "$LATEST")) == (
        400,
        "InvalidParameterValue.FunctionVersion",
    )
    assert await _error(client.delete_version("numbered", "one")) == (
        400,
        "InvalidParameterValue.FunctionVersion",
    )
    assert await _error(client.publish_version("nothing")) == (404, "ResourceNotFound.Function")
    assert await _error(client.list_versions("nothing")) == (404, "ResourceNotFound.Function")


@pytest.mark.anyio
async def test_deleting_a_function_deletes_its_versions_and_aliases(client: Client) -> None:
    await _two_versions(client, "reborn")
    await client.create_alias("reborn", "prod", 1)
    await client.delete_function("reborn")
    await client.create_function("reborn", files={"index.py": _code("new")})
    assert [v["version"] for v in await client.list_versions("reborn")] == ["$LATEST"]
    assert await client.list_aliases("reborn") == []
    assert await _error(client.invoke("reborn", qualifier="prod")) == (
        404,
        "ResourceNotFound.Qualifier",
    )
    assert (await client.publish_version("reborn"))["version"] == "1"


# -- aliases -----------------------------------------------------------------------------


@pytest.mark.anyio
async def test_alias_routes_calls_and_holds_its_versions(client: Client) -> None:
    await _two_versions(client, "routed")
    prod = await client.create_alias("routed", "prod", 1, description="the live one")
    assert (prod["name"], prod["function_version"], prod["additional_weights"]) == (
        "prod",
        "1",
        {},
    )
    assert prod["description"] == "the live one"
    run = await client.invoke("routed", qualifier="prod")
    assert (run["result"]["code"], run["function_version"]) == ("one", "1")

    assert await _error(client.delete_version("routed", 1)) == (409, "ResourceInUse.Alias")

    split = await client.update_alias("routed", "prod", function_version=2,
                                      additional_weights={"1": 0.5})  # fmt: skip
    assert (split["function_version"], split["additional_weights"]) == ("2", {"1": 0.5})
    assert split["description"] == "the live one"  # kept
    assert await client.get_alias("routed", "prod") == split
    seen: dict[str, str] = {}
    for _ in range(40):
        ran = await client.invoke("routed", qualifier="prod")
        seen[ran["function_version"]] = ran["result"]["code"]
        assert ran["result"]["version"] == ran["function_version"]
    # 40 draws at 50/50 all landing on one side: 2 in 10^12.
    assert seen == {"1": "one", "2": "two"}
    assert await _error(client.delete_version("routed", 1)) == (409, "ResourceInUse.Alias")
    assert await _error(client.delete_version("routed", 2)) == (409, "ResourceInUse.Alias")

    await client.update_alias("routed", "prod", additional_weights={})
    for _ in range(5):
        assert (await client.invoke("routed", qualifier="prod"))["function_version"] == "2"
    await client.delete_version("routed", 1)

    latest = await client.create_alias("routed", "edge", "$LATEST")
    assert latest["function_version"] == "$LATEST"
    assert (await client.invoke("routed", qualifier="edge"))["result"]["code"] == "three"
    assert [a["name"] for a in await client.list_aliases("routed")] == ["edge", "prod"]

    await client.delete_alias("routed", "prod")
    assert await _error(client.get_alias("routed", "prod")) == (404, "ResourceNotFound.Alias")
    assert await _error(client.delete_alias("routed", "prod")) == (404, "ResourceNotFound.Alias")
    assert await _error(client.invoke("routed", qualifier="prod")) == (
        404,
        "ResourceNotFound.Qualifier",
    )
    await client.delete_version("routed", 2)


@pytest.mark.anyio
async def test_alias_versions_are_stored_as_published(client: Client) -> None:
    """An alias given "01" holds version 1 against deletes, as one given "1" does."""
    await _two_versions(client, "spelt")
    made = await client.create_alias("spelt", "prod", "01", {"002": 0.5})
    assert (made["function_version"], made["additional_weights"]) == ("1", {"2": 0.5})
    for version in (1, 2):
        assert await _error(client.delete_version("spelt", version)) == (
            409,
            "ResourceInUse.Alias",
        )
    twice = client.create_alias("spelt", "dup", "$LATEST", {"2": 0.1, "02": 0.1})
    assert await _error(twice) == (400, "InvalidParameterValue.AdditionalWeights")


@pytest.mark.anyio
async def test_unknown_qualifier(client: Client) -> None:
    await client.create_function("plain", files={"index.py": _code("one")})
    for qualifier in ("nope", "7"):
        for kind in ("sync", "async"):
            assert await _error(client.invoke("plain", type=kind, qualifier=qualifier)) == (
                404,
                "ResourceNotFound.Qualifier",
            )
    # Numbers no version can have name nothing either ("²" passes str.isdigit).
    await client.publish_version("plain")
    for qualifier in ("0", "²", "٣", str(2**31), "9" * 30):
        assert await _error(client.invoke("plain", qualifier=qualifier)) == (
            404,
            "ResourceNotFound.Qualifier",
        ), qualifier
        assert await _error(client.delete_version("plain", qualifier)) == (
            400,
            "InvalidParameterValue.FunctionVersion",
        ), qualifier
    page = await client.list_invocations(function="plain")
    assert page["items"] == []  # nothing was queued
    # Leading zeros spell the same version, which the invocation records as published.
    assert (await client.invoke("plain", qualifier="001"))["function_version"] == "1"


@pytest.mark.anyio
async def test_alias_validation(client: Client, server: ServerProcess) -> None:
    await _two_versions(client, "checked")
    await client.create_alias("checked", "prod", 1)
    create = functools.partial(client.create_alias, "checked")
    update = functools.partial(client.update_alias, "checked")
    weights = "InvalidParameterValue.AdditionalWeights"
    bad: list[tuple[Callable[[], Awaitable[Any]], int, str]] = [
        (lambda: create("1bad", 1), 400, "InvalidParameterValue.Alias"),
        (lambda: create("x", 1), 400, "InvalidParameterValue.Alias"),
        (lambda: create("$LATEST", 1), 400, "InvalidParameterValue.Alias"),
        (lambda: create("prod", 2), 409, "ResourceInUse.Alias"),
        (lambda: create("a1", 9), 404, "ResourceNotFound.Version"),
        (lambda: create("a1", 1, {"9": 0.1}), 404, "ResourceNotFound.Version"),
        (lambda: create("a1", ""), 400, "InvalidParameterValue.FunctionVersion"),
        (lambda: create("a1", 1, {"2": 1}), 400, weights),
        (lambda: create("a1", 1, {"2": 1.5}), 400, weights),
        (lambda: create("a1", 1, {"2": 0}), 400, weights),
        (lambda: create("a1", "$LATEST", {"1": 0.6, "2": 0.4}), 400, weights),
        (lambda: create("a1", 1, {"1": 0.5}), 400, weights),  # the main version
        (lambda: client.create_alias("nothing", "a1", 1), 404, "ResourceNotFound.Function"),
        (lambda: update("nope", function_version=1), 404, "ResourceNotFound.Alias"),
        (lambda: update("prod", function_version=9), 404, "ResourceNotFound.Version"),
        (lambda: update("prod", additional_weights={"2": 1.0}), 400, weights),
    ]
    for call, status, code in bad:
        assert await _error(call()) == (status, code), code

    # A misspelt field is refused, not ignored.
    auth = {"Authorization": f"Bearer {server.token}"}
    fn = "/v1/namespaces/default/functions/checked"
    async with httpx.AsyncClient(base_url=server.url, headers=auth) as http:
        for path, body in [
            ("/aliases", {"name": "a1", "function_version": "1", "weights": {"2": 0.5}}),
            ("/aliases/prod", {"function_versoin": "2"}),
            ("/versions", {"desc": "x"}),
        ]:
            method = "PATCH" if path.endswith("prod") else "POST"
            answer = await http.request(method, fn + path, json=body)
            assert (answer.status_code, answer.json()["error"]["code"]) == (
                400,
                "UnknownParameter",
            ), path
    assert [a["name"] for a in await client.list_aliases("checked")] == ["prod"]
    assert len(await client.list_versions("checked")) == 3
    assert (await client.get_alias("checked", "prod"))["function_version"] == "1"


# -- the CLI -----------------------------------------------------------------------------


def cli(server: ServerProcess, *args: str) -> subprocess.CompletedProcess[str]:
    """``cumulo ARGS`` as a process of its own, finding the server as a user's shell would."""
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


def _ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result.stderr
    return result.stdout


def _refused(result: subprocess.CompletedProcess[str], code: str) -> None:
    """The server answered ``code``: exit 3, ``error: <code>: ...`` on stderr, no stdout."""
    assert (result.returncode, result.stdout) == (3, ""), result.stderr
    assert f"error: {code}:" in result.stderr


def _usage(result: subprocess.CompletedProcess[str], text: str) -> None:
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert text in result.stderr


def test_cli_versions_and_aliases(server: ServerProcess) -> None:
    _rest(server, "POST", "", {"name": "shell", "code": {"files": {"index.py": _code("one")}}})
    published = cli(server, "versions", "publish", "shell", "--description", "v1")
    assert _ok(published).strip() == "1"  # the number alone on stdout
    _rest(server, "PUT", "/shell/code", {"files": {"index.py": _code("two")}})
    assert _ok(cli(server, "versions", "publish", "shell")).strip() == "2"

    listed = json.loads(_ok(cli(server, "versions", "ls", "shell", "--json")))
    assert [(v["version"], v.get("version_description")) for v in listed] == [
        ("$LATEST", None), ("1", "v1"), ("2", "")
    ]  # fmt: skip
    table = _ok(cli(server, "versions", "ls", "shell")).splitlines()
    firsts = [line.split()[0] for line in table if line.strip() and "─" not in line]
    assert firsts == ["VERSION", "$LATEST", "1", "2"]

    made = cli(server, "aliases", "create", "shell", "live", "--version", "1")
    assert _ok(made).strip() == "live -> 1"
    canary = ("shell", "canary", "--version", "1", "--weight", "2=0.25", "--description", "t2")
    made = cli(server, "aliases", "create", *canary)
    assert _ok(made).strip() == "canary -> 1 (75%), 2 (25%)"
    shown = json.loads(_ok(cli(server, "aliases", "show", "shell", "canary", "--json")))
    assert (shown["function_version"], shown["additional_weights"]) == ("1", {"2": 0.25})
    assert shown["description"] == "t2"
    aliases = _ok(cli(server, "aliases", "ls", "shell"))
    assert "canary" in aliases and "live" in aliases and "2 (25%)" in aliases

    _refused(cli(server, "versions", "rm", "shell", "1"), "ResourceInUse.Alias")
    updated = cli(server, "aliases", "update", "shell", "canary", "--no-weights")
    assert _ok(updated).strip() == "canary -> 1"
    updated = cli(server, "aliases", "update", "shell", "live", "--version", "2")
    assert _ok(updated).strip() == "live -> 2"
    ran = json.loads(_ok(cli(server, "invoke", "shell", "--qualifier", "live")))
    assert (ran["code"], ran["version"]) == ("two", "2")
    ran = json.loads(_ok(cli(server, "invoke", "shell", "-q", "1")))
    assert (ran["code"], ran["version"]) == ("one", "1")
    request_id = _ok(cli(server, "invoke", "shell", "-q", "canary", "--async"))
    done = _finished(server, request_id.strip())
    assert (done["function_version"], done["result"]["code"]) == ("1", "one")

    _refused(cli(server, "invoke", "shell", "-q", "nope"), "ResourceNotFound.Qualifier")
    bad = ("aliases", "create", "shell", "bad", "--version", "1", "--weight")
    _refused(cli(server, *bad, "2=1.5"), "InvalidParameterValue.AdditionalWeights")
    _usage(cli(server, *bad, "2"), "VERSION=FRACTION")
    _usage(cli(server, *bad, "2=half"), "VERSION=FRACTION")
    both = ("aliases", "update", "shell", "live", "--weight", "1=0.1", "--no-weights")
    _usage(cli(server, *both), "exclude each other")
    _refused(cli(server, "aliases", "show", "shell", "gone"), "ResourceNotFound.Alias")

    assert _ok(cli(server, "aliases", "rm", "shell", "canary")).strip() == (
        "deleted alias canary of shell"
    )
    assert _ok(cli(server, "versions", "rm", "shell", "1")).strip() == "deleted shell version 1"
    _refused(cli(server, "versions", "rm", "shell", "1"), "ResourceNotFound.Version")
    assert [a["name"] for a in _rest(server, "GET", "/shell/aliases")["items"]] == ["live"]


def _rest(server: ServerProcess, method: str, path: str, body: Any = None) -> Any:
    """A REST call under ``/v1/namespaces/default/functions``, as the admin."""
    answer = httpx.request(
        method,
        f"{server.url}/v1/namespaces/default/functions{path}",
        json=body,
        headers={"Authorization": f"Bearer {server.token}"},
        timeout=30,
    )
    answer.raise_for_status()
    return answer.json()


def _finished(server: ServerProcess, request_id: str, timeout_s: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        answer = httpx.get(
            f"{server.url}/v1/namespaces/default/invocations/{request_id}",
            headers={"Authorization": f"Bearer {server.token}"},
        )
        if answer.json()["status"] not in ("queued", "running"):
            return answer.json()
        time.sleep(0.05)
    pytest.fail(f"{request_id} did not end in {timeout_s} s")
