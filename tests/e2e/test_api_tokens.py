"""A user's path through API tokens in Chromium: create one on the profile page, call the
API with it, see the secret gone on reload, revoke it in the modal, and see the API
refuse it."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest

from tests.e2e.conftest import log_in

pytestmark = pytest.mark.django_db(transaction=True)


def call_api(base_url: str, secret: str) -> tuple[int, dict]:
    request = urllib.request.Request(f"{base_url}/api/v1/exports", headers={"Authorization": f"Bearer {secret}"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        return error.code, json.load(error)


def test_a_user_creates_uses_and_revokes_an_api_token(page, live_server, users):
    base = live_server.url
    log_in(page, base, users["owner"].username)

    page.goto(f"{base}/profile/")
    page.fill("#id_token_name", "nightly BI sync")
    page.click("button:has-text('Create token')")
    secret = page.input_value("#new-token")
    assert secret.startswith("exs_")
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    page.click("button[data-copy='#new-token']")  # hidden without JavaScript, shown with it
    page.wait_for_selector("button[data-copy='#new-token']:has-text('Copied')")
    assert page.evaluate("() => navigator.clipboard.readText()") == secret

    status, body = call_api(base, secret)
    assert status == 200, body
    assert "Items" in body

    page.goto(f"{base}/profile/")
    assert page.locator("#new-token").count() == 0
    assert secret not in page.content()
    row = page.locator("#api-tokens tr", has_text="nightly BI sync")
    assert "active" in row.inner_text()

    row.locator("text=Revoke").click()
    page.wait_for_selector("#modal dialog >> text=Revoke the token")
    page.click("#modal dialog button:has-text('Revoke')")
    page.wait_for_selector("text=Revoked the token")
    assert "revoked" in page.locator("#api-tokens tr", has_text="nightly BI sync").inner_text()

    status, body = call_api(base, secret)
    assert status == 401
    assert body["Code"] == "INVALID_TOKEN"
