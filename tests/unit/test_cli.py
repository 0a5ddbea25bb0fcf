"""The command line, the bundler and the client's wire helpers, without a server."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import click
import httpx
import pytest
from click.testing import CliRunner

from cumulo.bundle import BundleError, load_function_dir, load_path, zip_dir
from cumulo.cli import ExitCode, main
from cumulo.client import ApiError, Client, SseDecoder, default_token, raise_for_error

# -- the command line --------------------------------------------------------------------


def _run(*args: str) -> click.testing.Result:
    return CliRunner().invoke(main, list(args), prog_name="cumulo")


def test_exit_codes_are_the_documented_ones() -> None:
    assert [int(code) for code in ExitCode][:5] == [0, 1, 2, 3, 4]
    assert ExitCode.API_ERROR == 3 and ExitCode.CONNECTION == 4


def test_help_lists_every_command_and_the_global_env_twins() -> None:
    result = _run("--help")
    assert result.exit_code == 0
    for command in ("server", "deploy", "invoke", "status", "logs", "terminate", "ls", "events"):
        assert command in result.output
    for envvar in ("CUMULO_URL", "CUMULO_TOKEN", "CUMULO_NAMESPACE"):
        assert envvar in result.output


@pytest.mark.parametrize("name", sorted(main.commands))
def test_every_flag_has_a_cumulo_env_twin_shown_in_help(name: str) -> None:
    command = main.commands[name]
    result = _run(name, "--help")
    assert result.exit_code == 0, result.output
    help_text = " ".join(result.output.split())  # rich wraps long lines anywhere
    for param in command.params:
        if not isinstance(param, click.Option) or param.name in ("help", "version"):
            continue
        assert isinstance(param.envvar, str) and param.envvar.startswith("CUMULO_"), param.name
        assert param.show_envvar, param.name
        assert param.envvar in help_text, (param.name, param.envvar)


def test_server_flags_share_the_variables_the_client_reads() -> None:
    params = {param.name: param for param in main.commands["server"].params}
    assert params["data_dir"].envvar == "CUMULO_DATA_DIR"
    assert params["port"].envvar == "CUMULO_PORT"


@pytest.mark.parametrize(
    "args",
    [
        ("invoke", "hello", "--no-such-flag"),
        ("frobnicate",),
        ("invoke",),
        ("deploy",),
        ("deploy", "/no/such/path"),
        ("events", "etl", "--limit", "0"),
        ("server", "--port", "70000"),
        ("logs", "x", "--after", "-1"),
    ],
)
def test_bad_flags_and_arguments_exit_2(args: tuple[str, ...]) -> None:
    assert _run(*args).exit_code == ExitCode.USAGE


def test_an_event_that_is_not_json_exits_2_before_any_request() -> None:
    result = _run("--url", "http://127.0.0.1:9", "invoke", "hello", "--event", "{oops")
    assert result.exit_code == ExitCode.USAGE
    assert "not valid JSON" in result.output


def test_an_event_file_that_does_not_exist_exits_2(tmp_path: Path) -> None:
    result = _run("invoke", "hello", "--event", f"@{tmp_path / 'missing.json'}")
    assert result.exit_code == ExitCode.USAGE
    assert "cannot read" in result.output


def test_env_pairs_must_be_k_equals_v(tmp_path: Path) -> None:
    (tmp_path / "index.py").write_text("def main_handler(event, context):\n    return 1\n")
    result = _run("deploy", str(tmp_path), "--env", "NOEQUALS")
    assert result.exit_code == ExitCode.USAGE
    assert "K=V" in result.output


def test_a_bad_cumulo_json_is_a_usage_error_with_the_code_printed(tmp_path: Path) -> None:
    (tmp_path / "index.py").write_text("def main_handler(event, context):\n    return 1\n")
    (tmp_path / "cumulo.json").write_text('{"timeout": 5}')
    result = _run("deploy", str(tmp_path))
    assert result.exit_code == ExitCode.USAGE
    assert "error: InvalidBundle:" in result.output
    assert "timeout" in result.output and "timeout_s" in result.output


def test_server_refuses_a_broken_examples_folder_before_starting(tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "cumulo.json").write_text("[1, 2]")
    result = _run("server", "--data-dir", str(tmp_path / "data"), "--examples", str(tmp_path))
    assert result.exit_code == ExitCode.USAGE
    assert "error: InvalidBundle:" in result.output
    assert not (tmp_path / "data").exists()


# -- bundles -----------------------------------------------------------------------------


def _names(zip_bytes: bytes) -> list[str]:
    return zipfile.ZipFile(io.BytesIO(zip_bytes)).namelist()


def _function_dir(root: Path) -> Path:
    (root / "lib" / "__pycache__").mkdir(parents=True)
    (root / "__pycache__").mkdir()
    (root / ".git").mkdir()
    (root / "index.py").write_text("from lib import util\n")
    (root / "lib" / "util.py").write_text("X = 1\n")
    (root / "lib" / "__pycache__" / "util.cpython-311.pyc").write_bytes(b"\0")
    (root / "__pycache__" / "index.cpython-311.pyc").write_bytes(b"\0")
    (root / "stale.pyc").write_bytes(b"\0")
    (root / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    (root / "data.csv").write_text("a,b\n1,2\n")
    (root / "cumulo.json").write_text(json.dumps({"handler": "index.run", "async_run": True}))
    return root


def test_bundle_zips_a_folder_and_skips_caches_and_its_config(tmp_path: Path) -> None:
    config, zip_bytes = load_function_dir(_function_dir(tmp_path / "etl"))
    assert sorted(_names(zip_bytes)) == ["data.csv", "index.py", "lib/util.py"]
    assert config == {"name": "etl", "handler": "index.run", "async_run": True}
    archive = zipfile.ZipFile(io.BytesIO(zip_bytes))
    assert archive.read("lib/util.py") == b"X = 1\n"


def test_bundle_is_deterministic(tmp_path: Path) -> None:
    root = _function_dir(tmp_path / "fn")
    first = zip_dir(root)
    (root / "index.py").touch()  # a newer mtime must not change the package
    assert zip_dir(root) == first


def test_bundle_of_a_single_python_file_uses_its_name_as_module(tmp_path: Path) -> None:
    script = tmp_path / "job.py"
    script.write_text("def main_handler(event, context):\n    return 1\n")
    config, zip_bytes = load_path(script)
    assert config == {"name": "job", "handler": "job.main_handler"}
    assert _names(zip_bytes) == ["job.py"]


def test_bundle_of_a_zip_is_sent_as_it_is(tmp_path: Path) -> None:
    package = tmp_path / "fn.zip"
    with zipfile.ZipFile(package, "w") as archive:
        archive.writestr("index.py", "x = 1\n")
    config, zip_bytes = load_path(package)
    assert config == {"name": "fn"}
    assert zip_bytes == package.read_bytes()


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({}, "no file to package"),
        ({"index.py": "", "cumulo.json": "{"}, "not valid JSON"),
        ({"index.py": "", "cumulo.json": '"etl"'}, "JSON object"),
        ({"index.py": "", "cumulo.json": '{"memory": 1}'}, "unknown key(s) memory"),
    ],
)
def test_bundle_errors_say_what_is_wrong(
    tmp_path: Path, files: dict[str, str], message: str
) -> None:
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    with pytest.raises(BundleError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_function_dir(tmp_path)


def test_bundle_refuses_what_is_neither_folder_zip_nor_python(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("hi")
    with pytest.raises(BundleError, match="neither"):
        load_path(tmp_path / "notes.txt")
    with pytest.raises(BundleError, match="does not exist"):
        load_path(tmp_path / "missing")


# -- the client's wire helpers -----------------------------------------------------------


def test_sse_decoder_handles_chunks_cut_anywhere() -> None:
    stream = (
        ": keepalive\r\n\r\n"
        'id: 1\r\nevent: log\r\ndata: {"seq": 1}\r\n\r\n'
        'id: 2\nevent: log\ndata: {"seq":\ndata:  2}\n\n'
        'event: end\ndata: {"status": "succeeded"}\n\n'
    )
    decoder = SseDecoder()
    events = [event for char in stream for event in decoder.feed(char)]
    assert [(event.event, event.id) for event in events] == [
        ("log", "1"),
        ("log", "2"),
        ("end", "2"),
    ]
    assert [json.loads(event.data) for event in events] == [
        {"seq": 1},
        {"seq": 2},
        {"status": "succeeded"},
    ]


def test_sse_decoder_waits_for_the_blank_line() -> None:
    decoder = SseDecoder()
    assert decoder.feed("event: end\ndata: {}\n") == []
    assert [event.event for event in decoder.feed("\n")] == ["end"]


def test_api_errors_carry_the_api_code() -> None:
    body = {"error": {"code": "ResourceNotFound.Function", "message": "no function etl"}}
    with pytest.raises(ApiError) as caught:
        raise_for_error(httpx.Response(404, json=body))
    assert (caught.value.status, caught.value.code) == (404, "ResourceNotFound.Function")
    assert caught.value.message == "no function etl"


def test_an_error_without_a_json_body_still_raises_api_error() -> None:
    with pytest.raises(ApiError) as caught:
        raise_for_error(httpx.Response(502, text="Bad Gateway from the proxy"))
    assert caught.value.code == "Http502"
    assert "proxy" in caught.value.message


def test_the_token_comes_from_the_environment_then_the_data_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CUMULO_TOKEN", raising=False)
    monkeypatch.setenv("CUMULO_DATA_DIR", str(tmp_path))
    assert default_token() is None
    (tmp_path / "admin.token").write_text("cum_from_file\n")
    assert default_token() == "cum_from_file"
    monkeypatch.setenv("CUMULO_TOKEN", "cum_from_env")
    assert default_token() == "cum_from_env"


@pytest.mark.anyio
async def test_create_function_needs_exactly_one_kind_of_code() -> None:
    async with Client("http://127.0.0.1:9", token="t") as client:
        with pytest.raises(ValueError, match="exactly one"):
            await client.create_function("f")
        with pytest.raises(ValueError, match="exactly one"):
            await client.create_function("f", files={"index.py": ""}, zip_bytes=b"PK")
