"""An incremental custom export in Chromium: a marketer sees it typed as such, reads its
definition with the note, and copies it into a draft of their own; an admin unschedules
it after the warning, and it is a standard draft. Screenshots go to the test's folder."""

from __future__ import annotations

import pytest

from exports.models import Export
from tests.custom_exports import incremental_custom_export
from tests.e2e.conftest import log_in, open_menu

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def custom_export(users, demo_database) -> Export:
    return incremental_custom_export(users, demo_database, "Clicks for the client")


def test_a_marketer_copies_an_incremental_custom_export_and_an_admin_unschedules_it(
    page, browser, live_server, users, custom_export, tmp_path
):
    base = live_server.url
    log_in(page, base, users["owner"].username)
    page.goto(f"{base}/exports/?tab=scheduled")
    row = page.locator("#results tr", has_text="Clicks for the client")
    assert row.locator("td", has_text="Incremental custom").count() == 1
    assert row.locator("text=Custom export: operators manage it").count() == 1
    assert row.locator("a", has_text="Edit").count() == 0
    assert row.locator("text=Delete").count() == 0
    assert row.locator("text=Unschedule").count() == 0  # an admin's, as for any export
    page.screenshot(path=str(tmp_path / "scheduled-marketer.png"), full_page=True)

    open_menu(row).locator("a", has_text="View definition").click()
    page.wait_for_selector("#modal #custom-definition")
    assert "Some of their customisations may not show" in page.inner_text("#modal")
    assert "country_code" in page.inner_text("#modal")
    page.screenshot(path=str(tmp_path / "definition.png"), full_page=True)
    page.goto(f"{base}/exports/?tab=scheduled")

    open_menu(page.locator("#results tr", has_text="Clicks for the client")).locator("a", has_text="Copy").click()
    page.wait_for_selector("#modal input[name=name]")
    page.fill("#modal input[name=name]", "My clicks")
    page.click("#modal button[type=submit]")
    page.wait_for_url("**/wizard/**")
    copy = Export.objects.get(name="My clicks")
    assert (copy.managed, copy.status, copy.owner) == (False, "draft", users["owner"])
    assert (copy.columns, copy.filters, copy.cursor_column) == (
        custom_export.columns,
        custom_export.filters,
        "id",
    )

    admin = browser.new_page()
    log_in(admin, base, users["admin"].username)
    admin.goto(f"{base}/exports/?tab=scheduled")
    open_menu(admin.locator("#results tr", has_text="Clicks for the client")).locator(
        "a", has_text="Unschedule"
    ).click()
    admin.wait_for_selector("#modal #custom-warning")
    warning = admin.inner_text("#modal")
    assert "becomes a standard export" in warning
    assert "operators no longer manage" in warning
    admin.screenshot(path=str(tmp_path / "unschedule-warning.png"), full_page=True)
    admin.click("#modal button:has-text('Unschedule and make it standard')")
    admin.wait_for_url("**/exports/**")
    custom_export.refresh_from_db()
    assert (custom_export.managed, custom_export.status) == (False, "draft")
    admin.goto(f"{base}/exports/?tab=draft")
    row = admin.locator("#results tr", has_text="Clicks for the client")
    assert row.locator("td", has_text="Incremental").first.inner_text() == "Incremental"
    assert row.locator("a", has_text="Edit").count() == 1
    admin.screenshot(path=str(tmp_path / "draft-admin.png"), full_page=True)
    admin.close()
