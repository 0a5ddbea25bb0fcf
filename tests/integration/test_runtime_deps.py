"""Instances with an installed environment, on the clean interpreter: the real installer
(uv, with this host's pip settings) fills a folder, the pool runs a handler that imports
numpy from it, and the zygote has imported it before it forks."""

from __future__ import annotations

import json
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from test_runtime import Logs, deploy

from cumulo.deps.indexes import from_pip
from cumulo.deps.installer import InstallError, UvInstaller, find_uv
from cumulo.models import Status
from cumulo.runtime import interpreter as clean
from cumulo.runtime.base import RunRequest
from cumulo.runtime.pool import ProcessPool

pytestmark = pytest.mark.anyio

HANDLER = """
import os, sys, time
import numpy

IMPORTED_IN = os.getpid()
IMPORTED_AT = time.time()

def main_handler(event, context):
    return {"pid": os.getpid(), "imported_in": IMPORTED_IN, "numpy": numpy.__version__,
            "numpy_file": numpy.__file__, "sum": int(numpy.arange(5).sum()),
            "preloaded_s_ago": time.time() - IMPORTED_AT, "path": sys.path}
"""


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def interpreter(tmp_path_factory: pytest.TempPathFactory) -> clean.Interpreter:
    found = clean.locate(tmp_path_factory.mktemp("interp") / "python")
    clean.ensure(found)
    return found


@pytest.fixture
def installer(interpreter: clean.Interpreter) -> UvInstaller:
    return UvInstaller(uv=find_uv(), python=interpreter.python, indexes=from_pip())


@pytest.fixture
async def pool(tmp_path: Path, interpreter: clean.Interpreter) -> AsyncIterator[ProcessPool]:
    pool = ProcessPool(
        work_dir=tmp_path / "work", max_instances=4, instance_idle_s=60, interpreter=interpreter
    )
    yield pool
    await pool.close()


async def test_the_zygote_imports_the_environment_before_it_forks(
    tmp_path: Path, installer: UvInstaller, pool: ProcessPool
) -> None:
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("numpy==2.2.6\n")
    lines: list[str] = []
    lock = await installer.resolve(requirements, cwd=tmp_path, on_line=lines.append)
    assert lock == "numpy==2.2.6\n"
    env = tmp_path / "env"
    installed = await installer.install(lock, env, cwd=tmp_path, on_line=lines.append)
    assert installed.packages == (("numpy", "2.2.6"),)
    assert installed.size_bytes > 10_000_000
    assert any("Installed 1 package" in line for line in lines)
    assert list(env.glob("numpy/__pycache__/*.pyc")), "bytecode is compiled at install"

    function = deploy(tmp_path, HANDLER)
    results = []
    for n in range(3):
        request = RunRequest(
            function=function,
            code_dir=tmp_path / "code-f1-1",
            request_id=f"r{n}",
            event="{}",
            timeout_s=30,
            site_dirs=(env,),
        )
        outcome = await pool.run(request, Logs())
        assert outcome.status is Status.SUCCEEDED, outcome.error
        results.append(json.loads(outcome.result or ""))
        # The next one is a cold start again: a fresh fork of the same zygote.
        pool._discard(next(iter(pool._live)))
    first = results[0]
    assert first["numpy"] == "2.2.6" and first["sum"] == 10
    assert first["numpy_file"].startswith(str(env))
    # Imported once, in the zygote, not in any instance.
    assert len({r["pid"] for r in results}) == 3
    assert {r["imported_in"] for r in results} == {first["imported_in"]}
    assert first["imported_in"] not in {r["pid"] for r in results}
    assert first["path"][:2] == [str(tmp_path / "code-f1-1"), str(env)]


async def test_the_installer_reports_its_own_reason(tmp_path: Path, installer: UvInstaller) -> None:
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("cumulo-no-such-package-zz9\n")
    with pytest.raises(InstallError) as failed:
        await installer.resolve(requirements, cwd=tmp_path, on_line=lambda line: None)
    message = str(failed.value)
    assert message.startswith("No solution found when resolving dependencies")
    assert "cumulo-no-such-package-zz9 was not found in the package registry" in message


async def test_a_handler_child_python_is_the_clean_one(tmp_path: Path, pool: ProcessPool) -> None:
    source = textwrap.dedent(
        """
        import subprocess, sys
        def main_handler(event, context):
            out = subprocess.run(["python3", "-c", "import sys; print(sys.executable)"],
                                 capture_output=True, text=True, check=True).stdout.strip()
            probe = subprocess.run([sys.executable, "-c", "import starlette"],
                                   capture_output=True, text=True)
            return {"child": out, "me": sys.executable, "starlette_rc": probe.returncode}
        """
    )
    function = deploy(tmp_path, source)
    request = RunRequest(
        function=function, code_dir=tmp_path / "code-f1-1", request_id="c", event="{}",
        timeout_s=30,
    )  # fmt: skip
    outcome = await pool.run(request, Logs())
    assert outcome.status is Status.SUCCEEDED, outcome.error
    result = json.loads(outcome.result or "")
    assert Path(result["child"]).parent == Path(result["me"]).parent  # python3 and python
    assert result["starlette_rc"] != 0
