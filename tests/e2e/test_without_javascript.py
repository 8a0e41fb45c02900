"""With JavaScript off, Manage Exports still works through plain links and forms."""

from __future__ import annotations

import pytest
from django.utils import timezone

from exports.models import Export, Run
from tests.e2e.conftest import log_in, open_menu

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
    open_menu(row).locator("text=Delete").click()
    page.wait_for_url("**/delete/**")
    assert "can't be undone" in page.content()
    page.click("button:has-text('Delete')")
    page.wait_for_url("**/exports/**")
    assert "Deleted the draft" in page.content()
    assert not Export.objects.filter(name="Orders draft").exists()


def test_the_filter_builder_works_without_javascript(browser_no_js, live_server, users, demo_database):
    """Each submit shows the rows again with what the chosen columns allow."""
    page = browser_no_js
    log_in(page, live_server.url, users["owner"].username)
    page.click("text=Create export")
    page.fill("#id_name", "Big orders")
    orders = demo_database.datasets.get(name="orders")
    page.select_option("#id_dataset", str(orders.id))
    page.click("text=Show columns")  # no htmx: the step comes back with the dataset's columns
    page.select_option("#id_filters-0-column", "total_amount")
    page.click("text=Add a filter row")
    operators = page.eval_on_selector_all("#id_filters-0-operator option", "options => options.map(o => o.value)")
    assert "between" in operators
    assert "contains" not in operators  # a decimal column: no text operators
    assert page.get_attribute("#id_filters-0-value", "type") == "number"
    page.select_option("#id_filters-0-operator", "gte")
    page.fill("#id_filters-0-value", "100")
    page.select_option("#id_filters-1-column", "status")
    page.select_option("#id_filters-1-operator", "contains")
    page.click("button[name=next]")  # the second row has no value: the validation's own message
    assert "a value is needed for 'status' contains" in page.content()
    page.fill("#id_filters-1-value", "paid")
    page.click("button[name=next]")
    page.wait_for_url("**/wizard/file/")
    export = Export.objects.get(name="Big orders")
    assert [(f["column"], f["operator"], f["value"]) for f in export.filters] == [
        ("total_amount", "gte", "100"),
        ("status", "contains", "paid"),
    ]
