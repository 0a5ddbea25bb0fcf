"""The CLI and the Python client against a real server (``python -m cumulo server`` as a
subprocess, started with ``--examples``), each CLI call a subprocess of its own."""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
import time
import uuid
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from cumulo_server import ServerProcess, free_port, light_examples

import cumulo
from cumulo.client import ApiError, Client

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"
EXAMPLE_NAMES = {"etl", "fail", "graceful", "hello", "noop", "sleep"}
START_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class Server:
    url: str
    data_dir: Path
    env: dict[str, str]

    @property
    def token(self) -> str:
        return (self.data_dir / "admin.token").read_text().strip()


def _environment(url: str, data_dir: Path) -> dict[str, str]:
    """The CLI's environment: the server's URL, and its data dir, where the CLI finds the
    admin token on its own."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("CUMULO_")}
    src = str(Path(cumulo.__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [src, env.get("PYTHONPATH")]))
    env.update(
        CUMULO_URL=url,
        CUMULO_DATA_DIR=str(data_dir),
        COLUMNS="200",  # rich tables must not fold request ids
        PYTHONIOENCODING="utf-8",
    )
    return env


@pytest.fixture(scope="module")
def cli_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One server for the module (each CLI call is a process of its own, the server need not
    be): started with ``--examples``, ready once every example is deployed."""
    root = tmp_path_factory.mktemp("cli")
    examples = light_examples(root / "examples")
    process = ServerProcess(root / "data", ["--examples", str(examples)])
    process.start(timeout_s=START_TIMEOUT_S)
    try:
        server = Server(process.url, process.data_dir, _environment(process.url, process.data_dir))
        _wait_for_examples(server, process)
        yield server
    finally:
        process.stop()


def _wait_for_examples(server: Server, process: ServerProcess) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError, OSError):
            listed = _get(server, "/v1/namespaces/default/functions")["items"]
            if {function["name"] for function in listed} >= EXAMPLE_NAMES:
                return
        time.sleep(0.1)
    pytest.fail(f"the examples were not deployed in {START_TIMEOUT_S} s:\n{process.log_text()}")


def _get(server: Server, path: str) -> Any:
    headers = {"Authorization": f"Bearer {server.token}"}
    response = httpx.get(server.url + path, headers=headers, timeout=10)
    response.raise_for_status()
    return response.json()


def cli(server: Server, *args: str, timeout_s: float = 60.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cumulo", *args],
        env=server.env,
        capture_output=True,
        text=True,
        timeout=timeout_s,
    )


def _request_id(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result.stderr
    request_id = result.stdout.strip()
    assert str(uuid.UUID(request_id)) == request_id, result.stdout  # the id and nothing else
    return request_id


def _invocation(server: Server, request_id: str) -> dict[str, Any]:
    result: dict[str, Any] = _get(server, f"/v1/namespaces/default/invocations/{request_id}")
    return result


def _wait_for_log(server: Server, request_id: str, text: str, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        result = cli(server, "logs", request_id)
        if text in result.stdout:
            return
        time.sleep(0.2)
    pytest.fail(f"{text!r} never appeared in the logs of {request_id}")


# -- functions ---------------------------------------------------------------------------


def test_server_deployed_the_examples_and_ls_marks_async_run(cli_server: Server) -> None:
    result = cli(cli_server, "ls")
    assert result.returncode == 0, result.stderr
    rows = {line.split()[0]: line for line in result.stdout.splitlines() if line.split()}
    assert set(rows) >= EXAMPLE_NAMES
    assert "✓" in rows["etl"] and "✓" in rows["sleep"]
    assert "✓" not in rows["hello"]
    listed = json.loads(cli(cli_server, "ls", "--json").stdout)
    assert {fn["name"]: fn["async_run"] for fn in listed}["graceful"] is True


def test_deploy_updates_an_existing_function(cli_server: Server) -> None:
    before = _get(cli_server, "/v1/namespaces/default/functions/hello")
    result = cli(cli_server, "deploy", str(EXAMPLES / "hello"), "--env", "GREETING=hi")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("updated hello")
    after = _get(cli_server, "/v1/namespaces/default/functions/hello")
    assert after["revision"] > before["revision"]
    assert after["environment"] == {"GREETING": "hi"}


def test_deploy_creates_a_function_from_a_single_file(cli_server: Server, tmp_path: Path) -> None:
    script = tmp_path / "double.py"
    script.write_text("def main_handler(event, context):\n    return event['n'] * 2\n")
    result = cli(cli_server, "deploy", str(script), "--timeout", "5", "--memory", "64")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("created double")
    invoked = cli(cli_server, "invoke", "double", "--event", '{"n": 21}')
    assert (invoked.returncode, json.loads(invoked.stdout)) == (0, 42)


def test_deploy_refuses_to_change_async_run(cli_server: Server) -> None:
    result = cli(cli_server, "deploy", str(EXAMPLES / "hello"), "--async-run")
    assert result.returncode == 3
    assert "error: UnsupportedOperation.AsyncRunEnable:" in result.stderr


def test_rm_deletes_a_function(cli_server: Server) -> None:
    assert cli(cli_server, "deploy", str(EXAMPLES / "noop"), "--name", "noop2").returncode == 0
    result = cli(cli_server, "rm", "noop2")
    assert (result.returncode, result.stdout.strip()) == (0, "deleted noop2")
    gone = cli(cli_server, "invoke", "noop2")
    assert gone.returncode == 3
    assert "error: ResourceNotFound.Function:" in gone.stderr


# -- invocations -------------------------------------------------------------------------


def test_invoke_sync_prints_the_result(cli_server: Server) -> None:
    result = cli(cli_server, "invoke", "hello", "--event", '{"name": "ada"}')
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["message"] == "hello, ada"


def test_invoke_of_a_failing_function_prints_the_error_and_exits_1(cli_server: Server) -> None:
    result = cli(cli_server, "invoke", "fail")
    assert result.returncode == 1
    assert result.stdout == ""
    assert "error: ValueError: this function always fails" in result.stderr
    assert "Traceback" in result.stderr  # the handler's, passed on


def test_async_invoke_then_follow_logs_status_and_events(cli_server: Server) -> None:
    request_id = _request_id(cli(cli_server, "invoke", "etl", "--async", "-e", '{"seconds": 2}'))

    followed = cli(cli_server, "logs", request_id, "-f")
    assert followed.returncode == 0, followed.stderr
    assert "progress: 1/2 s" in followed.stdout and "progress: 2/2 s" in followed.stdout
    assert followed.stderr.strip().endswith("status: succeeded")

    status = json.loads(cli(cli_server, "status", request_id, "--json").stdout)
    assert status["status"] == "succeeded"
    assert status["result"]["rows"] == 40_000
    table = cli(cli_server, "status", request_id)
    assert table.returncode == 0 and "succeeded" in table.stdout and request_id in table.stdout

    stored = cli(cli_server, "logs", request_id)
    assert "progress: 2/2 s" in stored.stdout

    listed = cli(cli_server, "events", "etl")
    assert listed.returncode == 0 and request_id in listed.stdout
    page = json.loads(cli(cli_server, "events", "etl", "--status", "succeeded", "--json").stdout)
    assert request_id in [item["request_id"] for item in page["items"]]
    running = json.loads(cli(cli_server, "events", "etl", "--status", "running", "--json").stdout)
    assert request_id not in [item["request_id"] for item in running["items"]]


def test_an_async_run_function_answers_with_a_request_id_even_when_sync(cli_server: Server) -> None:
    result = cli(cli_server, "invoke", "sleep", "--event", '{"seconds": 0}')
    _request_id(result)
    assert "async-run" in result.stderr


def test_terminate_ends_a_running_invocation(cli_server: Server) -> None:
    request_id = _request_id(cli(cli_server, "invoke", "sleep", "--async", "-e", '{"seconds": 60}'))
    _wait_for_log(cli_server, request_id, "sleeping 60")
    result = cli(cli_server, "terminate", request_id, "--wait")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"{request_id} terminated"
    followed = cli(cli_server, "logs", request_id, "--follow")
    assert followed.returncode == 1
    assert followed.stderr.strip().endswith("status: terminated")


def test_graceful_terminate_lets_the_function_checkpoint(cli_server: Server) -> None:
    request_id = _request_id(cli(cli_server, "invoke", "graceful", "--async"))
    _wait_for_log(cli_server, request_id, "working through")
    result = cli(cli_server, "terminate", request_id, "--grace", "--wait")
    assert result.returncode == 0, result.stderr
    assert _invocation(cli_server, request_id)["status"] == "terminated"
    logs = cli(cli_server, "logs", request_id).stdout
    assert "SIGTERM received at step" in logs and "checkpoint saved to" in logs


def test_an_idempotency_key_answers_the_first_request_id(cli_server: Server) -> None:
    args = ("invoke", "sleep", "--async", "--idempotency-key", uuid.uuid4().hex, "-e", "{}")
    assert _request_id(cli(cli_server, *args)) == _request_id(cli(cli_server, *args))


# -- errors ------------------------------------------------------------------------------


def test_an_unknown_function_exits_3_with_the_code(cli_server: Server) -> None:
    result = cli(cli_server, "invoke", "no-such-function")
    assert result.returncode == 3
    assert result.stderr.startswith("error: ResourceNotFound.Function: ")
    assert "Traceback" not in result.stderr


def test_an_unknown_request_id_exits_3(cli_server: Server) -> None:
    result = cli(cli_server, "status", str(uuid.uuid4()))
    assert result.returncode == 3
    assert result.stderr.startswith("error: ResourceNotFound")


def test_a_wrong_token_exits_3(cli_server: Server) -> None:
    result = cli(cli_server, "--token", "cum_wrong", "ls")
    assert result.returncode == 3
    assert result.stderr.startswith("error: AuthFailure: ")


def test_an_unreachable_server_exits_4_naming_the_url(cli_server: Server) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    result = cli(cli_server, "--url", url, "ls")
    assert result.returncode == 4
    assert result.stderr.startswith(
        f"error: ConnectionFailed: cannot reach the cumulo server at {url}"
    )


# -- the Python client -------------------------------------------------------------------


@pytest.mark.anyio
async def test_client_round_trip(cli_server: Server) -> None:
    source = (
        "def main_handler(event, context):\n    print('one')\n    print('two')\n    return event\n"
    )
    async with Client(cli_server.url, cli_server.token) as client:
        name = f"echo-{uuid.uuid4().hex[:8]}"
        created = await client.create_function(name, files={"index.py": source}, timeout_s=5)
        assert created["revision"] == 1

        done = await client.invoke(name, {"x": 1})
        assert (done["status"], done["result"]) == ("succeeded", {"x": 1})

        seen: list[tuple[int, int]] = []
        package = _zip_of(source.replace("two", "deux"))
        replaced = await client.put_code(
            name, package, progress=lambda sent, total: seen.append((sent, total))
        )
        assert replaced["revision"] == 2
        assert seen[0] == (0, len(package)) and seen[-1] == (len(package), len(package))

        accepted = await client.invoke(name, {"y": 2}, type="async")
        request_id = accepted["request_id"]
        final = await client.wait(request_id, timeout_s=30)
        assert final["status"] == "succeeded"
        lines = await client.logs(request_id)
        assert [line["text"] for line in lines if line["stream"] == "stdout"] == ["one", "deux"]

        first_seq = lines[0]["seq"]
        followed = [item async for item in client.follow_logs(request_id, last_event_id=first_seq)]
        assert all(data["seq"] > first_seq for kind, data in followed if kind == "log")
        kind, end = followed[-1]
        assert (kind, end["status"]) == ("end", "succeeded")

        page = await client.list_invocations(function=name, limit=1)
        assert [item["request_id"] for item in page["items"]] == [request_id]
        older = await client.list_invocations(function=name, limit=1, cursor=page["next_cursor"])
        assert older["items"][0]["request_id"] == done["request_id"]

        await client.delete_function(name)
        with pytest.raises(ApiError) as caught:
            await client.get_function(name)
        assert caught.value.code == "ResourceNotFound.Function"


def _zip_of(source: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("index.py", source)
    return buffer.getvalue()
