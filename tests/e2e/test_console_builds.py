"""Function dependencies on the console in a real Chromium, against the real installer (uv,
with this host's pip index settings): a function whose requirements.txt installs shows
"building" and its build log live, then turns active; a requirement that does not exist
shows failed with the installer's reason; code deployed from the Code panel (a zip, the
editor) starts a build the page follows, and a failed one leaves the last good code serving.

So that the page is seen while the build still runs, the packages hold ``slowpkg``, a source
folder whose in-tree build backend takes ``SLOW_BUILD_S`` to build its wheel (no download,
no setuptools); ``six==1.16.0`` comes from the index.
"""

from __future__ import annotations

import io
import os
import re
import zipfile
from collections.abc import Callable, Mapping
from pathlib import Path

import httpx
import pytest
from cumulo_server import ServerProcess
from playwright.sync_api import Page, expect

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

Shoot = Callable[[Page, str], Path]
#: How long slowpkg's wheel takes to build.
SLOW_BUILD_S = 4
#: A build, resolution and install included, ends well within this.
BUILD_TIMEOUT_MS = 90_000

HANDLER = """
import six

def main_handler(event, context):
    return {"six": six.__version__}
"""
PLAIN_HANDLER = """
def main_handler(event, context):
    return {"plain": True}
"""
SLOW_PYPROJECT = """
[build-system]
requires = []
build-backend = "slow_backend"
backend-path = ["."]

[project]
name = "slowpkg"
version = "0.1"
"""
SLOW_BACKEND = f'''
"""A build backend that takes its time, so that a test sees the build running."""
import base64
import hashlib
import time
import zipfile

DIST = "slowpkg-0.1.dist-info"
FILES = {{
    "slowpkg/__init__.py": "VALUE = 42\\n",
    DIST + "/METADATA": "Metadata-Version: 2.1\\nName: slowpkg\\nVersion: 0.1\\n",
    DIST + "/WHEEL": "Wheel-Version: 1.0\\nRoot-Is-Purelib: true\\nTag: py3-none-any\\n",
}}


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    time.sleep({SLOW_BUILD_S})
    name = "slowpkg-0.1-py3-none-any.whl"
    record = []
    with zipfile.ZipFile(wheel_directory + "/" + name, "w") as zf:
        for path, text in FILES.items():
            data = text.encode()
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
            zf.writestr(path, data)
            record.append(f"{{path}},sha256={{digest.decode()}},{{len(data)}}")
        zf.writestr(DIST + "/RECORD", "\\n".join([*record, DIST + "/RECORD,,"]) + "\\n")
    return name
'''
SLOW_FILES = {"slowpkg/pyproject.toml": SLOW_PYPROJECT, "slowpkg/slow_backend.py": SLOW_BACKEND}
MISSING = "cumulo-no-such-package-e2e"


def unique(prefix: str) -> str:
    return f"{prefix}-{os.urandom(3).hex()}"


def create(server: ServerProcess, name: str, files: Mapping[str, str]) -> dict[str, object]:
    answer = httpx.post(
        f"{server.url}/v1/namespaces/default/functions",
        json={"name": name, "code": {"files": dict(files)}},
        headers={"Authorization": f"Bearer {server.token}"},
    )
    assert answer.status_code == 201, answer.text
    created: dict[str, object] = answer.json()
    return created


def zipped(files: Mapping[str, str]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as zf:
        for path, text in files.items():
            zf.writestr(path, text)
    return out.getvalue()


def function_page(page: Page, server: ServerProcess, name: str) -> None:
    page.goto(f"{server.url}/console/ns/default/functions/{name}")


def expect_state(page: Page, state: str) -> None:
    expect(page.locator("#fn-state")).to_have_attribute(
        "data-state", state, timeout=BUILD_TIMEOUT_MS
    )


def test_a_build_is_followed_live_until_the_function_is_active(
    signed_in: Page, console_server: ServerProcess, shoot: Shoot
) -> None:
    page = signed_in
    name = unique("six")
    files = {"index.py": HANDLER, "requirements.txt": "six==1.16.0\n./slowpkg\n", **SLOW_FILES}
    assert create(console_server, name, files)["state"] == "pending"
    function_page(page, console_server, name)

    # While it builds: the badge, the notice, and the first lines of the log, live.
    badge = page.locator("#fn-state")
    expect(badge).to_have_text("building")
    expect(page.locator("#fn-state-notice")).to_contain_text("can run once the build succeeds")
    expect(page.locator("#build-status")).to_have_text("building")
    expect(page.locator("#function-facts")).to_contain_text("not built yet")
    log = page.locator("#build-log")
    expect(log).to_contain_text("resolving 2 requirement(s)")
    expect(page.locator("#build-log-state")).to_have_text("live")
    expect(badge).to_have_text("building")

    # The end: the status under the log, and the badge and facts swapped in without a reload.
    expect(page.locator("#build-ended")).to_have_text("Build succeeded", timeout=BUILD_TIMEOUT_MS)
    expect_state(page, "active")
    expect(badge).to_have_text("active")
    expect(page.locator("#fn-state-notice")).to_be_empty()
    expect(page.locator("#function-facts")).not_to_contain_text("not built yet")
    expect(page.locator("#build-status")).to_have_text("succeeded")
    expect(page.locator("#build-packages")).to_contain_text("six==1.16.0")
    expect(page.locator("#build-installed")).to_have_text(re.compile(r"^\d+(\.\d)? (KB|MB)$"))
    expect(page.locator("#build-environment")).to_contain_text("newly installed")
    expect(log).to_contain_text("+ six==1.16.0")
    expect(log).to_contain_text("build succeeded")
    expect(page.locator("#build-log-state")).to_have_text(re.compile(r"^\d+ lines$"))
    shoot(page, "build")

    page.fill("#test-event", "{}")
    page.click("#invoke-button")
    expect(page.locator("#test-result")).to_contain_text("1.16.0", timeout=15_000)

    page.goto(f"{console_server.url}/console/ns/default/functions")
    expect(page.locator(f'tr[data-function="{name}"] .badge.state')).to_have_text("active")


def test_a_requirement_that_does_not_exist_shows_failed_with_the_reason(
    signed_in: Page, console_server: ServerProcess
) -> None:
    page = signed_in
    name = unique("missing")
    create(console_server, name, {"index.py": HANDLER, "requirements.txt": f"{MISSING}==1.0\n"})
    function_page(page, console_server, name)
    expect_state(page, "failed")
    expect(page.locator("#fn-state")).to_have_text("failed")
    reason = page.locator("#fn-state-reason")
    expect(reason).to_contain_text(MISSING)
    expect(reason).to_contain_text("not found")
    expect(page.locator("#fn-state-serving")).to_contain_text("cannot run until a build succeeds")
    expect(page.locator("#build-status")).to_have_text("failed")
    expect(page.locator("#build-ended")).to_contain_text("Build failed", timeout=BUILD_TIMEOUT_MS)
    expect(page.locator("#build-log")).to_contain_text("build failed")

    page.goto(f"{console_server.url}/console/ns/default/functions")
    row = page.locator(f'tr[data-function="{name}"]')
    expect(row).to_have_attribute("data-state", "failed")
    expect(row.locator(".badge.state")).to_have_text("failed")


def test_code_deployed_from_the_page_builds_and_a_failed_build_keeps_the_last_good_code(
    signed_in: Page, console_server: ServerProcess
) -> None:
    page = signed_in
    name = unique("deploy")
    assert create(console_server, name, {"index.py": PLAIN_HANDLER})["state"] == "active"
    function_page(page, console_server, name)
    expect(page.locator("#fn-state")).to_have_text("active")
    expect(page.locator("#build")).to_have_count(0)
    expect(page.locator("#function-deps")).to_contain_text("no requirements.txt")

    # A zip with a requirements.txt: the page comes back pending, with the build's log.
    files = {"index.py": HANDLER, "requirements.txt": "six==1.16.0\n./slowpkg\n", **SLOW_FILES}
    page.click("#code-upload summary")
    page.set_input_files(
        "#code-zip",
        {"name": "code.zip", "mimeType": "application/zip", "buffer": zipped(files)},
    )
    page.click("#deploy-button")
    expect(page).to_have_url(re.compile(rf"/functions/{name}(\?[^#]*)?#code$"))
    expect(page.locator("#notice")).to_contain_text("being installed")
    expect(page.locator("#fn-state")).to_have_text("building")
    expect(page.locator("#fn-state-notice")).to_contain_text("previous code serves")
    expect(page.locator("#code-latest-upload")).to_be_visible()
    expect(page.locator("#build-log")).to_contain_text("resolving 2 requirement(s)")
    expect_state(page, "active")
    expect(page.locator("#build-ended")).to_have_text("Build succeeded")

    # Break requirements.txt in the editor: the build fails, the last good code serves.
    page.goto(f"{console_server.url}/console/ns/default/functions/{name}?file=requirements.txt")
    expect(page.locator("#code-editor")).to_have_value(re.compile("six==1.16.0"))
    page.fill("#code-editor", f"{MISSING}==1.0\n")
    page.click("#deploy-button")
    expect_state(page, "failed")
    expect(page.locator("#fn-state-reason")).to_contain_text(MISSING)
    expect(page.locator("#fn-state-serving")).to_contain_text("last good code still serves")
    page.reload()
    expect(page.locator("#code-latest-upload")).to_contain_text("failed")
    expect(page.locator("#code-editor")).to_have_value(re.compile(MISSING))
    page.fill("#test-event", "{}")
    page.click("#invoke-button")
    expect(page.locator("#test-result")).to_contain_text("1.16.0", timeout=15_000)
