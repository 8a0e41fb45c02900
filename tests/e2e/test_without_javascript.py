"""With JavaScript off, Manage Exports still works through plain links and forms."""

from __future__ import annotations

import pytest
from django.utils import timezone

from exports.models import Export, Run
from tests.e2e.conftest import log_in

pytestmark = pytest.mark.django_db(transaction=True)


def test_tabs_filters_and_actions_work_without_javascript(browser_no_js, live_server, users, demo_database, tmp_path):
    orders = demo_database.datasets.get(name="orders")
    profiles = demo_database.datasets.get(name="profiles")
    Export.objects.create(name="Orders draft", owner=users["owner"], dataset=orders)
    Export.objects.create(name="Profiles draft", owner=users["owner"], dataset=profiles)
    done = Export.objects.create(
        name="Finished orders", owner=users["owner"], dataset=orders, status=Export.Status.FINISHED
    )
    Run.objects.create(
        export=done,
        status=Run.Status.FAILED,
        error_code="TIMEOUT",
        started_at=timezone.now(),
        finished_at=timezone.now(),
    )
    page = browser_no_js
    log_in(page, live_server.url, users["owner"].username)

    # Filters: tick a box and submit the form with its (noscript) button.
    page.check("input[name=data_type][value=profile]")
    page.click("text=Apply filters")
    page.wait_for_url("**data_type=profile**")
    assert "Profiles draft" in page.inner_text("#results")
    assert "Orders draft" not in page.inner_text("#results")

    # Tabs are links that keep the filters.
    page.click("text=Clear filters")
    page.click("#tab-finished")
    page.wait_for_url("**tab=finished**")
    assert "Finished orders" in page.inner_text("#results")
    page.screenshot(path=str(tmp_path / "no-js-finished.png"), full_page=True)

    # Delete asks on a page of its own, then goes back to the list.
    page.click("#tab-draft")
    page.wait_for_url("**tab=draft**")
    row = page.locator("tr", has_text="Orders draft")
    row.locator("text=Delete").click()
    page.wait_for_url("**/delete/**")
    assert "can't be undone" in page.content()
    page.click("button:has-text('Delete')")
    page.wait_for_url("**/exports/**")
    assert "Deleted the draft" in page.content()
    assert not Export.objects.filter(name="Orders draft").exists()
