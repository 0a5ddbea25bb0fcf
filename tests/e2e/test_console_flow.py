"""The console's main path in a real Chromium: create an async-run function from the ETL
template through Advanced Settings, invoke it from the Test panel, watch its logs arrive
live, terminate a second run, and see the errors of bad input. Screenshots of the main
pages are taken on the way (see conftest)."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest
from cumulo_server import ServerProcess
from playwright.sync_api import Page, expect

pytestmark = pytest.mark.e2e

Shoot = Callable[[Page, str], Path]


def create_etl(page: Page, server: ServerProcess, name: str) -> None:
    page.goto(server.url + "/console/ns/default/functions/new")
    page.click("[data-template=etl]")
    page.fill("#fn-name", name)
    page.click("#advanced-settings summary")
    if not page.is_checked("#async-execution"):
        page.check("#async-execution")
    expect(page.locator("#fn-timeout")).to_have_attribute("max", "86400")
    expect(page.locator("#timeout-help")).to_contain_text("24 h")
    page.click("#create-button")
    expect(page).to_have_url(re.compile(rf"/console/ns/default/functions/{name}$"))


def invoke_from_test_panel(page: Page, event: str) -> str:
    page.fill("#test-event", event)
    page.click("#invoke-button")
    link = page.locator("#test-request-link")
    expect(link).to_be_visible(timeout=3_000)
    href = link.get_attribute("href")
    assert href is not None
    return href


def test_create_invoke_and_watch_live_logs(
    signed_in: Page, console_server: ServerProcess, shoot: Shoot
) -> None:
    page = signed_in
    shoot(page, "functions")
    page.goto(console_server.url + "/console/ns/default/functions/new")
    page.click("[data-template=etl]")
    page.click("#advanced-settings summary")
    shoot(page, "create")
    create_etl(page, console_server, "etl-console")

    # Async execution is read-only once the function exists, and says why.
    toggle = page.locator("#async-execution")
    expect(toggle).to_be_disabled()
    expect(toggle).to_be_checked()
    expect(page.locator("body")).to_contain_text("can never change")

    href = invoke_from_test_panel(page, '{"seconds": 4}')
    assert re.search(r"/console/ns/default/invocations/[0-9a-f-]{36}$", href)
    page.click("#test-request-link")
    log = page.locator("#log")
    expect(log).not_to_be_empty(timeout=10_000)
    # The first lines are there while the run is still going.
    expect(page.locator("#inv-status")).to_have_attribute("data-status", "running")
    shoot(page, "invocation-live")
    ended = page.locator("#run-ended")
    expect(ended).to_contain_text("succeeded", timeout=20_000)
    expect(page.locator("#inv-status")).to_have_attribute("data-status", "succeeded")
    lines = log.inner_text().splitlines()
    assert len(lines) >= 4, lines
    shoot(page, "invocation")
    page.goto(console_server.url + "/console/ns/default/functions/etl-console")
    expect(page.locator("#function-invocations")).to_contain_text("succeeded")
    shoot(page, "function")


def test_terminate_a_running_invocation(
    signed_in: Page, console_server: ServerProcess, shoot: Shoot
) -> None:
    page = signed_in
    create_etl(page, console_server, "etl-stop")
    href = invoke_from_test_panel(page, '{"seconds": 120}')
    page.goto(console_server.url + href)
    expect(page.locator("#log")).not_to_be_empty(timeout=10_000)
    page.check("#terminate-force")
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("#terminate-button")
    expect(page.locator("#inv-status")).to_have_attribute(
        "data-status", "terminated", timeout=15_000
    )
    expect(page.locator("#run-ended")).to_contain_text("terminated", timeout=15_000)

    page.goto(console_server.url + "/console/ns/default/invocations?function=etl-stop")
    expect(page.locator("#invocations")).to_contain_text("terminated")
    shoot(page, "invocations")


def test_bad_input_shows_its_error(signed_in: Page, console_server: ServerProcess) -> None:
    page = signed_in
    page.goto(console_server.url + "/console/ns/default/functions/new")
    page.fill("#fn-name", "9-starts-with-a-digit")
    page.click("#create-button")
    expect(page.locator("#error")).to_contain_text("InvalidParameterValue")
    expect(page.locator("#fn-name")).to_have_value("9-starts-with-a-digit")

    page.goto(console_server.url + "/console/ns/default/functions/hello")
    page.fill("#test-event", "{not json")
    page.click("#invoke-button")
    expect(page.locator("#test-result")).to_contain_text("InvalidParameterValue", timeout=5_000)


def test_the_console_reads_at_narrow_widths(
    signed_in: Page, console_server: ServerProcess, shoot: Shoot
) -> None:
    page = signed_in
    page.set_viewport_size({"width": 375, "height": 800})
    page.goto(console_server.url + "/console/ns/default/functions")
    table = page.locator("#functions")
    expect(table).to_be_visible()
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 375 + 1, f"the page scrolls sideways: {width} px"
    shoot(page, "narrow")


def test_the_console_can_be_driven_by_keyboard(
    signed_in: Page, console_server: ServerProcess
) -> None:
    page = signed_in
    page.goto(console_server.url + "/console/ns/default/functions/hello")
    page.focus("#test-event")
    page.keyboard.press("Control+a")
    page.keyboard.type('{"name": "keyboard"}')
    # Leave the editor and reach the Invoke button with Tab alone.
    for _ in range(12):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.id") == "invoke-button":
            break
    assert page.evaluate("document.activeElement.id") == "invoke-button"
    page.keyboard.press("Enter")
    expect(page.locator("#test-result")).to_contain_text("keyboard", timeout=10_000)
