"""Helpers for the console's browser tests (imported by the tests as a module)."""

from __future__ import annotations

from cumulo_server import ServerProcess
from playwright.sync_api import Page


def sign_in(page: Page, server: ServerProcess, target: str = "/console/") -> None:
    page.goto(server.url + target)
    page.fill("#token", server.token)
    page.click("button[type=submit]")
    page.wait_for_load_state("networkidle")
