"""Server flags that a cluster needs: a given admin token, a shorter lease."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
from cumulo_server import ServerProcess, free_port


def test_a_given_admin_token_is_the_one_accepted(tmp_path: Path) -> None:
    token = "cum_given_" + "x" * 24
    srv = ServerProcess(tmp_path / "data", ["--admin-token", token])
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "admin.token").write_text(token + "\n")  # for the harness only
    srv.start()
    try:
        ok = httpx.get(srv.url + "/v1/namespaces", headers={"Authorization": f"Bearer {token}"})
        assert ok.status_code == 200
        other = httpx.get(srv.url + "/v1/namespaces", headers={"Authorization": "Bearer nope"})
        assert other.status_code == 401
    finally:
        srv.stop()


def test_a_short_admin_token_stops_the_start(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "cumulo", "server", "--data-dir", str(tmp_path / "data"),
         "--port", str(free_port()), "--admin-token", "short"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode != 0
    assert "InvalidParameterValue.AdminToken" in done.stdout + done.stderr
    assert not (tmp_path / "data" / "admin.token").exists()
