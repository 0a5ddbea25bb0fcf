"""Function dependencies against a real server and the real installer (uv, with this
host's pip index settings): requirements.txt builds, the function's state while it builds,
environments shared by content, a clean interpreter, layers, size limits, restarts and the
removal of environments nothing uses."""

from __future__ import annotations

import asyncio
import io
import os
import subprocess
import sys
import time
import zipfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from cumulo_server import ServerProcess

import cumulo
from cumulo.client import ApiError, Client

pytestmark = [pytest.mark.anyio, pytest.mark.slow]
BUILD_TIMEOUT_S = 180.0

NUMPY_HANDLER = """
import numpy

def main_handler(event, context):
    a = numpy.arange(int(event.get("n", 10)))
    return {"sum": int(a.sum()), "mean": float(a.mean()), "numpy": numpy.__version__}
"""

VERSION_HANDLER = """
import importlib.metadata, sys

def main_handler(event, context):
    name = event["package"]
    module = __import__(event.get("module", name))
    return {"version": importlib.metadata.version(name), "file": module.__file__,
            "path": sys.path}
"""

IMPORT_HANDLER = """
def main_handler(event, context):
    try:
        __import__(event["module"])
    except ImportError as exc:
        return {"error": type(exc).__name__, "message": str(exc)}
    return {"error": None}
"""


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def deps_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One server for the module; unused environments go after 2 s."""
    server = ServerProcess(tmp_path_factory.mktemp("deps") / "data", ["--env-gc-grace", "2"])
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
async def client(deps_server: ServerProcess) -> AsyncIterator[Client]:
    async with deps_server.client(timeout_s=60.0) as c:
        yield c


def unique(prefix: str) -> str:
    return f"{prefix}-{os.urandom(3).hex()}"


async def built(client: Client, name: str) -> dict[str, Any]:
    return await client.wait_built(name, BUILD_TIMEOUT_S)


async def run(client: Client, name: str, event: dict[str, Any] | None = None) -> Any:
    answer = await client.invoke(name, event or {})
    assert answer["status"] == "succeeded", answer
    return answer["result"]


def env_dirs(server: ServerProcess) -> set[str]:
    root = server.data_dir / "envs"
    return (
        {p.name for p in root.iterdir() if not p.name.startswith(".")} if root.exists() else set()
    )


# -- the CLI ---------------------------------------------------------------------------------


def test_cli_deploy_shows_the_build_and_the_function_answers_with_numpy(
    deps_server: ServerProcess, tmp_path: Path
) -> None:
    folder = tmp_path / "numjob"
    folder.mkdir()
    (folder / "index.py").write_text(NUMPY_HANDLER)
    (folder / "requirements.txt").write_text("numpy==2.2.6  # pinned\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("CUMULO_")}
    src = str(Path(cumulo.__file__).resolve().parents[1])
    env.update(CUMULO_URL=deps_server.url, CUMULO_TOKEN=deps_server.token, PYTHONPATH=src)
    started = time.monotonic()
    deployed = subprocess.run(
        [sys.executable, "-m", "cumulo", "deploy", str(folder), "--name", "numjob"],
        capture_output=True, text=True, env=env, timeout=BUILD_TIMEOUT_S,
    )  # fmt: skip
    assert deployed.returncode == 0, deployed.stderr
    assert "created numjob" in deployed.stdout
    # The build, as it went: the installer's own lines and the platform's.
    assert "resolving 1 requirement(s) from requirements.txt" in deployed.stderr
    assert "numpy==2.2.6" in deployed.stderr
    assert "numjob is active" in deployed.stdout
    assert time.monotonic() - started < BUILD_TIMEOUT_S
    invoked = subprocess.run(
        [sys.executable, "-m", "cumulo", "invoke", "numjob", "--event", '{"n": 101}'],
        capture_output=True, text=True, env=env, timeout=60,
    )  # fmt: skip
    assert invoked.returncode == 0, invoked.stderr
    assert '"sum": 5050' in invoked.stdout and '"numpy": "2.2.6"' in invoked.stdout
    log = subprocess.run(
        [sys.executable, "-m", "cumulo", "build-log", "numjob"],
        capture_output=True, text=True, env=env, timeout=60,
    )  # fmt: skip
    assert "build succeeded" in log.stdout


def test_cli_deploy_exits_non_zero_when_the_build_fails(
    deps_server: ServerProcess, tmp_path: Path
) -> None:
    folder = tmp_path / "badjob"
    folder.mkdir()
    (folder / "index.py").write_text(NUMPY_HANDLER)
    (folder / "requirements.txt").write_text("cumulo-no-such-package-zz9==1.0\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("CUMULO_")}
    env.update(CUMULO_URL=deps_server.url, CUMULO_TOKEN=deps_server.token)
    deployed = subprocess.run(
        [sys.executable, "-m", "cumulo", "deploy", str(folder), "--name", unique("badjob")],
        capture_output=True, text=True, env=env, timeout=BUILD_TIMEOUT_S,
    )  # fmt: skip
    assert deployed.returncode == 1, deployed.stdout + deployed.stderr
    assert "error: BuildFailed" in deployed.stderr
    assert "cumulo-no-such-package-zz9" in deployed.stderr


# -- a clean interpreter -----------------------------------------------------------------


async def test_without_requirements_nothing_but_the_stdlib_is_importable(client: Client) -> None:
    numpyless = unique("nonumpy")
    fn = await client.create_function(numpyless, files={"index.py": NUMPY_HANDLER})
    assert fn["state"] == "active" and fn["build_id"] is None  # nothing to build
    answer = await client.invoke(numpyless, {})
    assert answer["status"] == "failed"
    assert answer["error"]["type"] == "ModuleNotFoundError"
    assert "numpy" in answer["error"]["message"]
    probe = unique("probe")
    await client.create_function(probe, files={"index.py": IMPORT_HANDLER})
    # The server's own packages are not there: not its web framework, database toolkit or
    # HTTP client, nor cumulo itself.
    for module in ("starlette", "sqlalchemy", "httpx", "uvicorn", "cumulo"):
        result = await run(client, probe, {"module": module})
        assert result["error"] == "ModuleNotFoundError", (module, result)
    assert (await run(client, probe, {"module": "json"}))["error"] is None


async def test_two_versions_side_by_side_and_a_shared_environment(
    client: Client, deps_server: ServerProcess
) -> None:
    """httpx==0.27.2 for one function, httpx==0.28.1 for another (the server runs its own);
    a third function with the first one's set reuses its environment."""
    old, new, same = unique("old"), unique("new"), unique("same")
    for name, pin in ((old, "httpx==0.27.2"), (new, "httpx==0.28.1")):
        files = {"index.py": VERSION_HANDLER, "requirements.txt": f"{pin}\n"}
        created = await client.create_function(name, files=files)
        assert created["state"] == "pending" and created["scf_status"] == "Creating"
    for name in (old, new):
        assert (await built(client, name))["state"] == "active"
    seen = {name: await run(client, name, {"package": "httpx"}) for name in (old, new)}
    assert seen[old]["version"] == "0.27.2"
    assert seen[new]["version"] == "0.28.1"
    assert seen[old]["file"] != seen[new]["file"]
    # Nothing of the server's site-packages on the path.
    for result in seen.values():
        assert not any("site-packages" in entry and ".venv" in entry for entry in result["path"])
    first_build = await client.get_build(old)
    assert not first_build["reused"]
    assert {"name": "httpx", "version": "0.27.2"} in first_build["packages"]
    assert first_build["installed_bytes"] > 100_000
    envs_before = env_dirs(deps_server)

    # Another package, the same requirements (written differently): the same resolved set.
    files = {"index.py": VERSION_HANDLER, "requirements.txt": "# the same\nhttpx == 0.27.2\n"}
    await client.create_function(same, files=files)
    assert (await built(client, same))["state"] == "active"
    reused = await client.get_build(same)
    assert reused["reused"] is True
    assert reused["environment_id"] == first_build["environment_id"]
    assert reused["duration_ms"] < 5_000  # resolving only: nothing is installed
    assert env_dirs(deps_server) == envs_before
    log = "\n".join(line["text"] for line in await client.build_logs(same))
    assert "nothing to install" in log and "Installed" not in log
    assert (await run(client, same, {"package": "httpx"}))["version"] == "0.27.2"


async def test_a_package_from_elsewhere_never_shares_an_environment(client: Client) -> None:
    """One tenant installs a "six 1.16.0" of its own making (a wheel in its package); another
    asks for six==1.16.0 from the index: it must get the real one, not the first's tree."""
    fake = _wheel("six", "1.16.0", {"six.py": "__version__ = 'not the real six'\n"})
    handler = "import six\ndef main_handler(e, c):\n    return six.__version__\n"
    mine, theirs = unique("forged"), unique("honest")
    await client.create_function(mine, zip_bytes=_zip({
        "index.py": handler, "wheels/six-1.16.0-py3-none-any.whl": fake,
        "requirements.txt": "--no-index\n--find-links ./wheels\nsix==1.16.0\n"}))  # fmt: skip
    assert (await built(client, mine))["state"] == "active"
    assert await run(client, mine) == "not the real six"
    await client.create_function(theirs, files={"index.py": handler,
                                                "requirements.txt": "six==1.16.0\n"})  # fmt: skip
    assert (await built(client, theirs))["state"] == "active"
    assert await run(client, theirs) == "1.16.0"
    forged, honest = await client.get_build(mine), await client.get_build(theirs)
    assert forged["environment_id"] != honest["environment_id"]


# -- state while it builds, and failures ---------------------------------------------------


async def test_pending_async_calls_wait_and_sync_calls_get_409(client: Client) -> None:
    name = unique("pending")
    files = {"index.py": NUMPY_HANDLER, "requirements.txt": "numpy==2.2.6\npandas==2.2.3\n"}
    created = await client.create_function(name, files=files)
    assert (created["state"], created["ready"]) == ("pending", False)
    with pytest.raises(ApiError) as refused:
        await client.invoke(name, {}, type="sync")
    assert refused.value.status == 409
    assert refused.value.code == "ResourceUnavailable.Function"
    assert "pending" in refused.value.message
    accepted = [await client.invoke(name, {"n": n}, type="async") for n in (3, 4)]
    assert all(a["status"] == "queued" for a in accepted)
    assert (await client.get_invocation(accepted[0]["request_id"]))["status"] == "queued"
    assert (await built(client, name))["state"] == "active"
    done = [await client.wait(a["request_id"], 60) for a in accepted]
    assert [d["status"] for d in done] == ["succeeded", "succeeded"]
    assert [d["result"]["sum"] for d in done] == [3, 6]
    assert (await run(client, name, {"n": 5}))["sum"] == 10


async def test_a_bad_requirement_fails_with_the_installers_reason(client: Client) -> None:
    name = unique("nosuch")
    files = {"index.py": NUMPY_HANDLER, "requirements.txt": "cumulo-no-such-package-zz9\n"}
    await client.create_function(name, files=files)
    waiting = await client.invoke(name, {}, type="async")  # accepted while pending
    failed = await built(client, name)
    assert (failed["state"], failed["scf_status"], failed["ready"]) == (
        "failed", "CreateFailed", False,
    )  # fmt: skip
    assert "cumulo-no-such-package-zz9" in failed["state_reason"]
    assert "not found" in failed["state_reason"]
    build = await client.get_build(name)
    assert build["status"] == "failed" and build["reason"] == failed["state_reason"]
    with pytest.raises(ApiError) as refused:
        await client.invoke(name, {}, type="async")
    assert refused.value.code == "ResourceUnavailable.Function"
    # What was accepted while it built ends too: there is no code to run it.
    settled = await client.wait(waiting["request_id"], 30)
    assert (settled["status"], settled["error"]["type"]) == ("failed", "FunctionBuildFailed")
    assert "cumulo-no-such-package-zz9" in settled["error"]["message"]
    lines = [line["text"] for line in await client.logs(waiting["request_id"])]
    assert any("build failed" in line for line in lines)


async def test_a_failed_update_keeps_the_last_good_code_serving(client: Client) -> None:
    name = unique("upd")
    await client.create_function(
        name, files={"index.py": "def main_handler(e, c):\n    return 'v1'\n"}
    )
    assert await run(client, name) == "v1"
    bad = _zip({"index.py": "def main_handler(e, c):\n    return 'v2'\n",
                "requirements.txt": "cumulo-no-such-package-zz9\n"})  # fmt: skip
    pending = await client.put_code(name, bad)
    assert (pending["state"], pending["scf_status"]) == ("pending", "Updating")
    assert await run(client, name) == "v1"  # while it builds
    for attempt in (client.publish_version(name), client.update_function(name, handler="x.y")):
        with pytest.raises(ApiError) as busy:
            await attempt
        assert busy.value.code == "ResourceUnavailable.Function"
    failed = await built(client, name)
    assert (failed["state"], failed["scf_status"], failed["ready"]) == (
        "failed", "UpdateFailed", True,
    )  # fmt: skip
    assert await run(client, name) == "v1"
    # A good update then serves.
    six_source = "import six\ndef main_handler(e, c):\n    return 'v3 ' + six.__version__\n"
    good = _zip({"index.py": six_source, "requirements.txt": "six==1.16.0\n"})
    await client.put_code(name, good)
    assert (await built(client, name))["state"] == "active"
    assert await run(client, name) == "v3 1.16.0"


async def test_requirement_lines_that_leave_the_package_are_refused(client: Client) -> None:
    cases = {
        "-r ../../etc/passwd\n": "outside the code package",
        "file:///etc/hostname\n": "outside the code package",
        "-e ./src\n": "editable installs",
        "--use-feature=fast-deps\n": "not supported",
    }
    for text, why in cases.items():
        name = unique("refused")
        await client.create_function(
            name, files={"index.py": IMPORT_HANDLER, "requirements.txt": text}
        )
        failed = await built(client, name)
        assert failed["state"] == "failed", text
        assert why in failed["state_reason"], (text, failed["state_reason"])
        assert "requirements.txt line 1" in failed["state_reason"]


async def test_an_unreachable_index_fails_the_build_naming_it(tmp_path: Path) -> None:
    """The server's index flags replace the host's pip settings: here, indexes nobody
    answers on."""
    (tmp_path / "empty-wheelhouse").mkdir()
    server = ServerProcess(
        tmp_path / "data",
        ["--index-url", "http://127.0.0.1:9/simple", "--extra-index-url",
         "http://127.0.0.1:9/extra/simple", "--find-links", str(tmp_path / "empty-wheelhouse")],
    )  # fmt: skip
    server.start()
    try:
        async with server.client(timeout_s=60.0) as c:
            await c.create_function(
                "offline", files={"index.py": IMPORT_HANDLER, "requirements.txt": "six\n"}
            )
            failed = await c.wait_built("offline", BUILD_TIMEOUT_S)
        assert failed["state"] == "failed"
        assert "127.0.0.1:9" in failed["state_reason"], failed["state_reason"]
    finally:
        server.stop()


# -- layers ---------------------------------------------------------------------------------


async def test_layers_are_shared_ordered_and_kept_while_used(client: Client) -> None:
    first = unique("lib-a")
    second = unique("lib-b")
    a = await client.publish_layer(first, files={
        "python/shared_mod.py": "WHO = 'layer a'\n", "python/only_a.py": "X = 1\n"})  # fmt: skip
    b = await client.publish_layer(second, files={"python/shared_mod.py": "WHO = 'layer b'\n"})
    assert (a["version"], a["state"], b["version"]) == (1, "active", 1)
    handler = {"index.py": "import shared_mod, only_a\n"
               "def main_handler(e, c):\n    return shared_mod.WHO\n"}  # fmt: skip
    one, two = unique("uses-ab"), unique("uses-ba")
    await client.create_function(one, files=handler, layers=[
        {"name": first, "version": 1}, {"name": second, "version": 1}])  # fmt: skip
    await client.create_function(two, files=handler, layers=[
        {"name": second, "version": 1}, {"name": first, "version": 1}])  # fmt: skip
    assert await run(client, one) == "layer a"
    assert await run(client, two) == "layer b"
    with pytest.raises(ApiError) as used:
        await client.delete_layer_version(first, 1)
    assert (used.value.status, used.value.code) == (409, "ResourceInUse.Layer")
    # A layer with its own requirements.txt is installed like a function's.
    third = unique("lib-six")
    published = await client.publish_layer(third, files={"requirements.txt": "six==1.16.0\n"})
    assert published["state"] == "pending"
    deadline = time.monotonic() + BUILD_TIMEOUT_S
    while (await client.get_layer_version(third, 1))["state"] == "pending":
        assert time.monotonic() < deadline
        await asyncio.sleep(0.2)
    assert (await client.get_layer_version(third, 1))["state"] == "active"
    await client.update_function(one, layers=[{"name": third, "version": 1}])
    six_handler = _zip(
        {"index.py": "import six\ndef main_handler(e, c):\n    return six.__version__\n"}
    )
    await client.put_code(one, six_handler)
    assert await run(client, one) == "1.16.0"
    await client.delete_function(two)
    await client.delete_layer_version(first, 1)  # used by nothing now
    with pytest.raises(ApiError) as gone:
        await client.get_layer_version(first, 1)
    assert gone.value.status == 404
    with pytest.raises(ApiError) as missing:
        await client.update_function(one, layers=[{"name": first, "version": 1}])
    assert missing.value.status == 404
    with pytest.raises(ApiError) as too_many:
        await client.update_function(one, layers=[{"name": third, "version": v} for v in range(6)])
    assert too_many.value.code == "InvalidParameterValue.Layers"


# -- limits ---------------------------------------------------------------------------------


async def test_a_zip_bomb_and_an_oversize_total_are_refused_at_upload(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "data", ["--max-function-mb", "5"])
    server.start()
    try:
        async with server.client(timeout_s=60.0) as c:
            bomb = _zip({"index.py": IMPORT_HANDLER, "zeros.bin": b"\0" * (200 * 1024 * 1024)})
            assert len(bomb) < 1024 * 1024
            with pytest.raises(ApiError) as refused:
                await c.create_function("bomb", zip_bytes=bomb)
            assert (refused.value.status, refused.value.code) == (
                400, "LimitExceeded.CodeUnpackedSize",
            )  # fmt: skip
            assert "unpacks to 209.7 MB" in refused.value.message
            layer = await c.publish_layer(
                "big", zip_bytes=_zip({"python/blob.bin": os.urandom(3_000_000)})
            )
            code = _zip({"index.py": IMPORT_HANDLER, "blob.bin": os.urandom(3_000_000)})
            with pytest.raises(ApiError) as total:
                await c.create_function(
                    "toobig", zip_bytes=code, layers=[{"name": "big", "version": layer["version"]}]
                )
            assert total.value.code == "LimitExceeded.FunctionSize"
            assert "layer big:1" in total.value.message
            with pytest.raises(ApiError):
                await c.get_function("toobig")  # nothing was made
            # An environment that takes the function past the limit fails its build.
            await c.create_function(
                "bigenv", files={"index.py": NUMPY_HANDLER, "requirements.txt": "numpy==2.2.6\n"}
            )
            failed = await c.wait_built("bigenv", BUILD_TIMEOUT_S)
            assert failed["state"] == "failed"
            assert "over the limit of 5.0 MB" in failed["state_reason"]
    finally:
        server.stop()


# -- restarts and removal ----------------------------------------------------------------------


async def test_a_restart_rebuilds_nothing_and_unused_environments_go(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "data", ["--env-gc-grace", "2"])
    server.start()
    try:
        async with server.client(timeout_s=60.0) as c:
            files = {"index.py": VERSION_HANDLER, "requirements.txt": "six==1.16.0\n"}
            await c.create_function("keep", files=files)
            assert (await c.wait_built("keep", BUILD_TIMEOUT_S))["state"] == "active"
        (env_id,) = env_dirs(server)
        tree = server.data_dir / "envs" / env_id
        stamp = tree.stat().st_mtime_ns
        server.stop()
        server.start()
        async with server.client(timeout_s=60.0) as c:
            result = await run(c, "keep", {"package": "six"})
            assert result["version"] == "1.16.0"
            await c.create_function("again", files=files)
            assert (await c.wait_built("again", BUILD_TIMEOUT_S))["state"] == "active"
            assert (await c.get_build("again"))["reused"] is True
            assert tree.stat().st_mtime_ns == stamp  # the same tree, not rebuilt
            # A published version keeps the environment once the functions are gone.
            await c.publish_version("keep")
            await c.delete_function("again")
            await c.put_code("keep", _zip({"index.py": IMPORT_HANDLER}))
            await asyncio.sleep(4)
            assert env_dirs(server) == {env_id}
            await c.delete_function("keep")
            deadline = time.monotonic() + 30
            while env_dirs(server):
                assert time.monotonic() < deadline, "the unused environment was not removed"
                await asyncio.sleep(0.3)
            assert not tree.exists()
    finally:
        server.stop()


def _wheel(name: str, version: str, files: dict[str, str]) -> bytes:
    """A minimal wheel of ``files``."""
    info = f"{name}-{version}.dist-info"
    contents = {
        **files,
        f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
        f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\n"
        "Tag: py3-none-any\n",
    }
    record = "".join(f"{path},,\n" for path in contents) + f"{info}/RECORD,,\n"
    return _zip({**contents, f"{info}/RECORD": record})


def _zip(files: dict[str, str | bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path, data in files.items():
            archive.writestr(path, data)
    return buffer.getvalue()
