"""The real server as a subprocess on a temp data dir (imported by the tests as a module)."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path

import httpx

from cumulo.client import Client

REPO_EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def light_examples(into: Path) -> Path:
    """A copy of the repository's examples without those that install requirements (torch,
    pandas, ffmpeg: minutes of installs a test of something else does not need)."""
    into.mkdir(parents=True, exist_ok=True)
    for folder in REPO_EXAMPLES.iterdir():
        if (folder / "cumulo.json").is_file() and not (folder / "requirements.txt").exists():
            shutil.copytree(folder, into / folder.name)
    return into


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ServerProcess:
    def __init__(
        self,
        data_dir: Path,
        extra_args: list[str] | None = None,
        tls: tuple[Path, Path] | None = None,
    ) -> None:
        """``tls``: (certificate, key) PEM files: the server then speaks HTTPS only."""
        self.data_dir = data_dir
        self.port = free_port()
        self.tls = tls
        scheme = "https" if tls else "http"
        self.url = f"{scheme}://127.0.0.1:{self.port}"
        self.extra_args = list(extra_args or [])
        if tls is not None:
            self.extra_args += ["--tls-cert", str(tls[0]), "--tls-key", str(tls[1])]
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = data_dir.parent / f"server-{self.port}.log"

    @property
    def verify(self) -> ssl.SSLContext | bool:
        """What an HTTP client should trust: the test certificate under TLS."""
        return ssl.create_default_context(cafile=str(self.tls[0])) if self.tls else True

    @property
    def token(self) -> str:
        return (self.data_dir / "admin.token").read_text().strip()

    def start(self, timeout_s: float = 30.0) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("CUMULO_")}
        env["SERVER_ONLY_SECRET"] = "must-not-leak"
        log = open(self.log_path, "ab")  # noqa: SIM115 - closed with the process
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "cumulo", "server", "--data-dir", str(self.data_dir),
             "--port", str(self.port), *self.extra_args],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )  # fmt: skip
        log.close()
        try:
            self._wait_ready(timeout_s)
        except BaseException:
            self.stop()  # a server that did not come up must not outlive the test
            raise

    def _wait_ready(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited at start:\n{self.log_path.read_text()}")
            with contextlib.suppress(httpx.HTTPError):
                if (
                    httpx.get(self.url + "/healthz", timeout=1, verify=self.verify).status_code
                    == 200
                ):
                    return
            time.sleep(0.05)
        raise RuntimeError(f"server did not answer in {timeout_s} s:\n{self.log_path.read_text()}")

    def kill9(self) -> None:
        """``kill -9`` the server process alone (its instances must die with it)."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            self._reap_group()
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        self._reap_group()

    def _reap_group(self) -> None:
        if self.proc is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, signal.SIGKILL)

    def client(self, **kwargs: object) -> Client:
        return Client(self.url, self.token, **kwargs)  # type: ignore[arg-type]

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")
