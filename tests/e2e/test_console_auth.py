"""Sign-in is required for every console page and action, and CSRF tokens are checked."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from console_browser import sign_in
from cumulo_server import ServerProcess
from playwright.sync_api import Page, expect

pytestmark = pytest.mark.e2e

PAGES = [
    "/console/",
    "/console/ns/default/functions",
    "/console/ns/default/functions/new",
    "/console/ns/default/functions/hello",
    "/console/ns/default/functions/hello/build",
    "/console/ns/default/functions/hello/builds/00000000-0000-4000-8000-000000000000/logs",
    "/console/ns/default/invocations",
]
ACTIONS = [
    "/console/logout",
    "/console/ns/default/functions/new",
    "/console/ns/default/functions/hello/config",
    "/console/ns/default/functions/hello/code",
    "/console/ns/default/functions/hello/invoke",
    "/console/ns/default/functions/hello/delete",
    "/console/ns/default/invocations/00000000-0000-4000-8000-000000000000/terminate",
]


def test_every_page_sends_a_stranger_to_sign_in(page: Page, console_server: ServerProcess) -> None:
    for path in PAGES:
        page.goto(console_server.url + path)
        expect(page).to_have_url(re.compile(r"/console/login\?next="))
        expect(page.locator("#token")).to_be_visible()


def test_every_action_refuses_a_stranger(console_server: ServerProcess) -> None:
    for path in ACTIONS:
        answer = httpx.post(console_server.url + path, data={"csrf": "x"})
        assert answer.status_code in (401, 403), path


def test_sign_in_then_out(
    page: Page, console_server: ServerProcess, shoot: Callable[[Page, str], Path]
) -> None:
    page.goto(console_server.url + "/console/ns/default/functions")
    shoot(page, "sign-in")
    page.fill("#token", "cum_not-the-token")
    page.click("button[type=submit]")
    expect(page.locator("#error")).to_contain_text("AuthFailure")
    page.fill("#token", console_server.token)
    page.click("button[type=submit]")
    expect(page).to_have_url(re.compile(r"/console/ns/default/functions$"))
    expect(page.locator("#functions")).to_contain_text("hello")
    cookie = next(c for c in page.context.cookies() if c["name"] == "cumulo_console")
    assert cookie["httpOnly"] is True and cookie["sameSite"] == "Strict"
    page.click("form.signout button")
    expect(page).to_have_url(re.compile(r"/console/login"))
    page.goto(console_server.url + "/console/ns/default/functions")
    expect(page).to_have_url(re.compile(r"/console/login"))


def test_a_post_without_the_csrf_token_is_refused(
    page: Page, console_server: ServerProcess
) -> None:
    sign_in(page, console_server)
    session = {c["name"]: c["value"] for c in page.context.cookies()}
    cookies = {"cumulo_console": session["cumulo_console"]}
    for path in ACTIONS:
        answer = httpx.post(console_server.url + path, data={"name": "x"}, cookies=cookies)
        assert answer.status_code == 403, path
        assert "CSRF" in answer.text, path
        forged = httpx.post(console_server.url + path, data={"csrf": "forged"}, cookies=cookies)
        assert forged.status_code == 403, path
    # The session is still good: the refusals changed nothing.
    page.goto(console_server.url + "/console/ns/default/functions")
    expect(page.locator("#functions")).to_contain_text("hello")


def test_an_api_key_signs_in_to_its_namespace_only(
    page: Page, console_server: ServerProcess
) -> None:
    headers = {"Authorization": f"Bearer {console_server.token}"}
    httpx.post(console_server.url + "/v1/namespaces", json={"name": "team-a"}, headers=headers)
    key = httpx.post(
        console_server.url + "/v1/keys", json={"namespace": "team-a"}, headers=headers
    ).json()
    page.goto(console_server.url + "/console/login")
    page.click("details summary")
    page.fill("#secret_id", key["secret_id"])
    page.fill("#secret_key", key["secret_key"])
    page.click("button[type=submit]")
    expect(page).to_have_url(re.compile(r"/console/ns/team-a/functions$"))
    answer = page.goto(console_server.url + "/console/ns/default/functions")
    assert answer is not None and answer.status == 403
