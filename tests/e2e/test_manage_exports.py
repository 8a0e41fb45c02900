"""A marketer's whole path through Manage Exports in Chromium: the wizard, search and
filters, edit, copy, delete with confirmation, launch, In progress, Finished, the report,
the download, and relaunching a failed run. Screenshots of each tab go to the test's
output folder."""

from __future__ import annotations

import threading

import pytest
from django.utils import timezone

from exports.models import Export, Run
from tests.conftest import run_worker
from tests.e2e.conftest import log_in, open_menu

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_marketer_manages_exports_from_draft_to_finished(page, live_server, users, demo_database, tmp_path):
    base = live_server.url
    log_in(page, base, users["owner"].username)

    # The wizard, saved as a draft from its summary.
    page.click("text=Create export")
    page.fill("#id_name", "Weekly orders report")
    page.select_option("#id_dataset", str(demo_database.datasets.get(name="orders").id))
    page.wait_for_selector("input[name=columns][value=total_amount]")
    page.check("input[name=columns][value=id]")
    page.check("input[name=columns][value=total_amount]")
    for step in ("file", "destination", "schedule", "summary"):
        page.click("button[name=next]")
        page.wait_for_url(f"**/wizard/{step}/")
    page.click("button[name=save]")
    page.wait_for_url("**tab=draft**")
    page.screenshot(path=str(tmp_path / "tab-draft.png"), full_page=True)

    # Search and each filter, through htmx; the URL follows.
    page.fill("#search", "weekly")
    page.wait_for_function("() => location.search.includes('q=weekly')")
    assert "Weekly orders report" in page.inner_text("#results")
    page.check("input[name=data_type][value=profile]")
    page.wait_for_function("() => location.search.includes('data_type=profile')")
    assert "Weekly orders report" not in page.inner_text("#results")
    page.check("input[name=data_type][value=order]")
    page.wait_for_selector("#results >> text=Weekly orders report")
    page.check(f"input[name=database][value='{demo_database.id}']")
    page.check("input[name=export_type][value=one_shot]")
    page.wait_for_function("() => location.search.includes('export_type=one_shot')")
    assert "Weekly orders report" in page.inner_text("#results")
    page.click("text=Clear filters")

    # Edit, then copy under a new name, then delete the copy after confirming.
    row = page.locator("tr", has_text="Weekly orders report")
    row.locator("text=Edit").click()
    page.wait_for_url("**/wizard/source/")
    page.fill("#id_name", "Weekly orders")
    page.click("button[name=next]")
    page.wait_for_url("**/wizard/file/")
    page.goto(f"{base}/exports/")
    open_menu(page.locator("tr", has_text="Weekly orders")).get_by_role("link", name="Copy", exact=True).click()
    page.wait_for_selector("dialog #copy-name")
    page.fill("#copy-name", "Weekly orders copy")
    page.click("dialog button[type=submit]")
    page.wait_for_url("**/wizard/source/")
    assert Export.objects.filter(name="Weekly orders copy", copied_from__name="Weekly orders").exists()
    page.goto(f"{base}/exports/")
    open_menu(page.locator("tr", has_text="Weekly orders copy")).locator("text=Delete").click()
    page.wait_for_selector("dialog >> text=can't be undone")
    page.click("dialog button.danger")
    page.wait_for_selector("text=Deleted the draft")
    assert not Export.objects.filter(name="Weekly orders copy").exists()

    # The In progress tab follows a running export by itself.
    nightly = Export.objects.create(
        name="Nightly profiles",
        owner=users["owner"],
        dataset=demo_database.datasets.get(name="profiles"),
        status=Export.Status.FINISHED,
    )
    running = Run.objects.create(
        export=nightly, status=Run.Status.RUNNING, started_at=timezone.now(), rows_done=500, estimated_rows=5_000
    )
    page.goto(f"{base}/exports/?tab=in_progress")
    assert page.get_attribute("#results progress", "value") == "10"
    running.report_progress(3_000)
    page.wait_for_selector("#results progress[value='60']")
    Run.objects.filter(id=running.id).update(status=Run.Status.SUCCEEDED, finished_at=timezone.now(), row_count=5_000)
    page.wait_for_selector("#results >> text=No runs in progress")

    # Launch the original, see it in progress, then finished.
    page.goto(f"{base}/exports/?tab=draft")
    open_menu(page.locator("tr", has_text="Weekly orders")).locator("button:has-text('Launch')").click()
    page.wait_for_url("**/runs/**")
    page.goto(f"{base}/exports/?tab=in_progress")
    assert page.locator("#results progress").count() == 1
    page.screenshot(path=str(tmp_path / "tab-in-progress.png"), full_page=True)
    worker = threading.Thread(target=run_worker)
    worker.start()
    page.wait_for_selector("#results >> text=No runs in progress", timeout=60_000)  # the tab polled by itself
    worker.join()
    page.click("#tab-finished")
    page.wait_for_selector("#results >> text=Weekly orders")
    page.screenshot(path=str(tmp_path / "tab-finished.png"), full_page=True)
    open_menu(page.locator("tr", has_text="Weekly orders")).locator("text=View report").click()
    page.wait_for_selector("#run-status:has-text('Succeeded')")
    with page.expect_download() as caught:
        page.click("#download")
    assert caught.value.suggested_filename.startswith("Weekly_orders_")

    # A run that failed for a reason a relaunch can fix is relaunched from Finished.
    export = Export.objects.get(name="Weekly orders")
    failed = Run.objects.create(
        export=export,
        status=Run.Status.FAILED,
        error_code="SOURCE_UNAVAILABLE",
        error_message="the source was down",
        started_at=timezone.now(),
        finished_at=timezone.now(),
    )
    page.goto(f"{base}/exports/?tab=finished")
    page.check("input[name=status][value=failed]")
    page.wait_for_function("() => location.search.includes('status=failed')")
    assert "Succeeded" not in page.inner_text("#results")
    page.locator("tr", has_text="SOURCE_UNAVAILABLE").locator("button:has-text('Relaunch')").click()
    page.wait_for_url("**/runs/**")
    assert Run.objects.get(relaunch_of=failed).status == Run.Status.QUEUED
    page.goto(f"{base}/exports/?tab=scheduled")
    page.screenshot(path=str(tmp_path / "tab-scheduled.png"), full_page=True)
