"""After-export hooks in Chromium: the owner adds a hook on the export's page and copies
its secret; the run's report shows the failed attempts while the receiver is down, then
Send again delivers a call the receiver verifies."""

from __future__ import annotations

import threading

import pytest
from standardwebhooks import Webhook

from exports.models import Export, HookCall
from tests.conftest import run_worker
from tests.e2e.conftest import log_in
from tests.receiver import Receiver

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_owner_adds_a_hook_and_follows_its_attempts_on_the_report(
    page, live_server, users, demo_database, tmp_path
):
    export = Export.objects.create(
        name="Orders for the ERP", owner=users["owner"], dataset=demo_database.datasets.get(name="orders")
    )
    receiver = Receiver()  # down: nothing listens on its port yet
    log_in(page, live_server.url, users["owner"].username)
    page.goto(live_server.url + export.get_absolute_url())
    page.fill("#hook-url", "http://10.0.0.8/hooks")
    page.click("#hook-form button[type=submit]")
    assert "10.0.0.8 is private" in page.locator("#hook-form .error").inner_text()

    page.fill("#hook-url", receiver.url)
    page.select_option("#hook-events", "both")
    page.click("#hook-form button[type=submit]")
    secret = page.locator("#new-hook-secret").input_value()
    assert secret.startswith("whsec_")
    assert receiver.url in page.locator("#hook-list").inner_text()
    page.screenshot(path=str(tmp_path / "export-hooks.png"), full_page=True)

    page.click("button:has-text('Launch')")
    page.wait_for_url("**/runs/**")
    worker = threading.Thread(target=run_worker)
    worker.start()
    page.wait_for_selector("#run-status:has-text('Succeeded')", timeout=60_000)
    worker.join()
    # The first attempt found nobody listening; the report says so, and when it retries.
    attempts = page.locator("#run-hooks .hook-attempts tbody tr")
    page.wait_for_selector("#run-hooks .hook-attempts td.error", timeout=30_000)
    assert attempts.count() == 1
    first = attempts.first.inner_text()
    assert "could not be reached" in first
    assert "automatic" in first
    assert " ms" in first
    call = HookCall.objects.get(run__export=export)
    assert call.webhook_id in page.locator("#run-hooks").inner_text()
    assert "next attempt at" in page.locator("#run-hooks").inner_text()

    receiver.start()
    try:
        page.click("#run-hooks button.send-again")
        page.wait_for_selector("text=Sending the call to")
        worker = threading.Thread(target=run_worker)
        worker.start()
        page.wait_for_selector("#run-hooks .hook-attempts td.ok:has-text('HTTP 200')", timeout=30_000)
        worker.join()
        assert "Delivered" in page.locator("#run-hooks .badge").first.inner_text()
        second = attempts.nth(1).inner_text()
        assert "Send again (alice)" in second
        page.screenshot(path=str(tmp_path / "run-report-hooks.png"), full_page=True)
        [received] = receiver.wait_for(1)
        payload = Webhook(secret).verify(received.body, received.headers)
        assert payload["data"]["ExportId"] == str(export.id)
        assert received.headers["webhook-id"] == call.webhook_id
    finally:
        receiver.stop()

    # The secret was shown once: the export's page never shows it again.
    page.goto(live_server.url + export.get_absolute_url())
    assert secret not in page.content()
