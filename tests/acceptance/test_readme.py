"""The README's two commands, on a fresh clone of this repository."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import httpx
import pytest
from cumulo_server import free_port

ROOT = Path(__file__).resolve().parents[2]


def readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    block = re.search(r"```bash\n(.*?)```", text, re.S)
    assert block is not None, "the README starts with a bash block"
    return [line.split("#")[0].strip() for line in block.group(1).splitlines() if line.strip()]


def test_readme_has_exactly_two_commands_and_ci_runs_the_test_one() -> None:
    commands = readme_commands()
    assert commands == ["bash scripts/serve.sh", "bash scripts/test.sh"]
    assert "bash scripts/test.sh" in (ROOT / ".ci" / "run").read_text()


@pytest.mark.slow
def test_serve_command_works_on_a_fresh_clone(tmp_path: Path) -> None:
    if not (ROOT / ".git").exists():
        pytest.fail("needs a git checkout to clone")
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CUMULO_", "VIRTUAL_ENV"))}
    log = open(tmp_path / "serve.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        ["bash", "scripts/serve.sh", "--port", str(port)],
        cwd=clone,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 400
        while time.monotonic() < deadline:
            assert proc.poll() is None, (tmp_path / "serve.log").read_text()
            try:
                if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.5)
        else:
            raise AssertionError("no server:\n" + (tmp_path / "serve.log").read_text())
        token = (clone / ".cumulo" / "admin.token").read_text().strip()
        assert token in (tmp_path / "serve.log").read_text()  # printed on first start
        headers = {"Authorization": f"Bearer {token}"}
        names = {f["name"] for f in httpx.get(url + "/v1/namespaces/default/functions",
                                               headers=headers).json()["items"]}  # fmt: skip
        assert {"hello", "etl", "fail", "graceful"} <= names
        r = httpx.post(url + "/v1/namespaces/default/functions/hello/invocations",
                       json={"name": "readme"}, headers=headers, timeout=30)  # fmt: skip
        assert r.status_code == 200 and r.json()["status"] == "succeeded"
    finally:
        log.close()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)
