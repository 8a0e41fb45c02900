from __future__ import annotations

import os
import shutil

import pytest
from playwright.sync_api import sync_playwright

from tests.conftest import PASSWORD

# Playwright's sync API runs an event loop in this thread; the ORM calls the tests make
# around it are still plain synchronous calls.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


@pytest.fixture(scope="session")
def chromium():
    """Debian's Chromium, once per session (Playwright can't download its own here)."""
    if not os.path.exists(CHROMIUM):
        pytest.fail("Chromium is missing: `make test` installs Debian's chromium package")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        yield browser
        browser.close()


@pytest.fixture
def browser(chromium):
    """A fresh context (its own cookies) per test."""
    context = chromium.new_context(accept_downloads=True)
    yield context
    context.close()


@pytest.fixture
def page(browser):
    page = browser.new_page()
    yield page
    page.close()


@pytest.fixture
def browser_no_js(chromium):
    context = chromium.new_context(java_script_enabled=False)
    yield context.new_page()
    context.close()


def log_in(page, base_url: str, username: str) -> None:
    page.goto(f"{base_url}/accounts/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.click("main button[type=submit]")  # not the header's Log out, when someone is signed in
    page.wait_for_url("**/exports/")


def open_menu(row):
    """Open a list row's More menu (a <details>), where its secondary actions are."""
    row.locator("details.menu > summary").click()
    return row
