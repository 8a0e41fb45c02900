"""A marketer schedules an incremental export every 3 hours to their hosted SFTP
connector in a real Chromium, brings its next run forward with Run now, sees the run
land with its window, unschedules it and finds it back in Draft."""

from __future__ import annotations

import pytest

from exports.models import Export, Profile, Run
from exports.scheduler import tick
from tests.conftest import run_worker
from tests.e2e.conftest import log_in, open_menu

pytestmark = pytest.mark.django_db(transaction=True)


def test_schedule_run_now_and_unschedule_an_incremental_export(page, live_server, users, demo_database, tmp_path):
    owner = users["owner"]
    Profile.objects.create(user=owner, time_zone="Europe/Brussels")
    # An admin adds the destination (admins manage destinations); the marketer uses it.
    log_in(page, live_server.url, users["admin"].username)
    page.goto(f"{live_server.url}/connectors/new/?kind=hosted_sftp")
    page.fill("#id_name", "My drop box")
    page.click("button:has-text('Save')")
    page.wait_for_selector("text=Hosted SFTP access")
    log_in(page, live_server.url, owner.username)

    page.click("text=Create export")
    page.fill("#id_name", "Interactions every 3 hours")
    page.select_option("#id_dataset", str(demo_database.datasets.get(name="interactions").id))
    page.click("button[name=next]")
    page.wait_for_url("**/wizard/file/")
    page.click("button[name=next]")
    page.wait_for_url("**/wizard/destination/")
    page.select_option("#id_connector", label=page.locator("#id_connector option", has_text="My drop box").inner_text())
    page.click("button[name=next]")
    page.wait_for_url("**/wizard/schedule/")
    page.check("input[name=export_type][value=incremental]")
    page.fill("#id_schedule_start", "2030-01-06T06:00")
    page.select_option("#id_cadence", "3h")
    page.select_option("#id_cursor_column", "id")
    page.wait_for_selector("#schedule-preview li:has-text('09:00')")
    times = page.locator("#schedule-preview li").all_inner_texts()
    assert [text.split()[2] for text in times] == ["06:00", "09:00", "12:00", "15:00", "18:00"]
    assert all(text.endswith("CET") for text in times)
    page.screenshot(path=str(tmp_path / "wizard-schedule.png"), full_page=True)
    page.click("button[name=next]")
    page.wait_for_url("**/wizard/summary/")
    assert "every 3 hours" in page.locator("#schedule-summary").inner_text()
    page.click("button[name=schedule]")
    page.wait_for_url("**/exports/?tab=scheduled")
    row = page.locator("#results tr", has_text="Interactions every 3 hours")
    assert row.locator("time").get_attribute("title") == "2030-01-06 06:00:00 CET"  # the exact time, as a tooltip

    row.locator("button:has-text('Run now')").click()
    page.wait_for_selector("text=is running now")  # on the run's own page, at once
    export = Export.objects.get(name="Interactions every 3 hours")
    [run] = export.runs.all()
    assert page.url.endswith(run.get_absolute_url())
    assert tick().created == []  # the scheduler doesn't start it again
    run_worker()
    run.refresh_from_db()
    assert run.status == Run.Status.SUCCEEDED, run.error_message
    page.goto(f"{live_server.url}{run.get_absolute_url()}")
    assert page.locator("#run-status").inner_text() == "Succeeded"
    assert page.locator("#run-window").inner_text() == "id ≤ 5000"
    assert "/unscheduled/" not in page.locator("#run-folder").inner_text()  # a repeating export's folder
    page.screenshot(path=str(tmp_path / "scheduled-run.png"), full_page=True)

    page.goto(f"{live_server.url}/exports/?tab=scheduled")
    open_menu(page.locator("#results tr", has_text="Interactions every 3 hours")).locator(
        "button:has-text('Unschedule')"
    ).click()
    page.wait_for_selector("text=is a draft again")
    page.goto(f"{live_server.url}/exports/?tab=draft")
    assert page.locator("#results tr", has_text="Interactions every 3 hours").count() == 1
    export = Export.objects.get(name="Interactions every 3 hours")
    assert export.status == Export.Status.DRAFT
    assert export.watermark == {"column": "id", "value": "5000"}
