"""The console in a real browser: Debian's Chromium driven by Playwright (``executable_path``;
no browser download), against the real server as a subprocess.

Screenshots: every test may call ``shoot(page, "name")``; they go to a temporary folder, or
to ``$CUMULO_SCREENSHOT_DIR`` when set (``scripts/screenshots.sh`` points it at
``docs/images`` to refresh the pictures in the README).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from console_browser import sign_in
from cumulo_server import ServerProcess, light_examples
from playwright.sync_api import Browser, Page, sync_playwright

CHROMIUM = os.environ.get("CUMULO_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Per module: Playwright's sync API keeps an event loop running in this thread while it
    is open, which the async tests of other modules (run later) would trip over."""
    if not Path(CHROMIUM).exists():
        pytest.fail(f"Chromium is not installed at {CHROMIUM}: apt-get install chromium")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-dev-shm-usage"]
        )
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture(scope="module")
def console_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    root = tmp_path_factory.mktemp("console")
    examples = light_examples(root / "examples")
    srv = ServerProcess(root / "data", ["--examples", str(examples)])
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 860})
    context.set_default_timeout(15_000)
    opened = context.new_page()
    try:
        yield opened
    finally:
        context.close()


@pytest.fixture
def signed_in(page: Page, console_server: ServerProcess) -> Page:
    sign_in(page, console_server)
    return page


@pytest.fixture(scope="session")
def shoot(tmp_path_factory: pytest.TempPathFactory) -> Callable[[Page, str], Path]:
    folder = Path(os.environ.get("CUMULO_SCREENSHOT_DIR") or tmp_path_factory.mktemp("shots"))
    folder.mkdir(parents=True, exist_ok=True)

    def take(page: Page, name: str) -> Path:
        path = folder / f"console-{name}.png"
        page.screenshot(path=str(path), full_page=True)
        return path

    return take
