"""A new user's whole path in a real Chromium: log in, create a one-shot export of the
demo interactions as gzip CSV, launch it, watch it finish, open the report, download."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from tests.conftest import PASSWORD, run_worker
from tests.exports.readback import normalise_rows, read_file
from tests.exports.test_runs import source_rows

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_new_user_exports_interactions_and_downloads_them(
    page, live_server, users, demo_database, demo_path, tmp_path
):
    page.goto(f"{live_server.url}/")
    page.fill("#id_username", users["owner"].username)
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url("**/exports/")
    assert "No draft exports" in page.content()

    page.click("text=Create export")
    page.fill("#id_name", "Interactions for the BI team")
    dataset = demo_database.datasets.get(name="interactions")
    page.select_option("#id_dataset", str(dataset.id))
    page.wait_for_selector("input[name=columns][value=occurred_at]")  # htmx loaded the columns
    page.screenshot(path=str(tmp_path / "wizard-source.png"), full_page=True)
    page.click("button[name=next]")
    page.wait_for_url("**/wizard/file/")
    page.select_option("#id_file_format", "csv")
    page.select_option("#id_compression", "gzip")
    page.click("button[name=next]")
    page.wait_for_url("**/wizard/destination/")
    page.fill("#id_folder_template", "%EXPORT_NAME%")
    page.wait_for_selector("#folder-preview:has-text('Interactions_for_the_BI_team')")
    page.screenshot(path=str(tmp_path / "wizard-destination.png"), full_page=True)
    page.click("button[name=next]")
    page.wait_for_url("**/wizard/schedule/")
    page.click("button[name=next]")
    page.wait_for_url("**/wizard/summary/")
    assert "Interactions for the BI team" in page.content()
    page.click("button[name=launch]")
    page.wait_for_url("**/runs/**")
    run_url = page.url.removeprefix(live_server.url)
    assert page.locator("#run-status").inner_text() in {"Queued", "Running"}

    # The worker runs while the page is open; the page updates by itself.
    worker = threading.Thread(target=run_worker)
    worker.start()
    page.wait_for_selector("#run-status:has-text('Succeeded')", timeout=60_000)
    worker.join()
    assert page.locator("#run-rows").inner_text() == "5,000"

    # The Manage Exports page lists the run under Finished; tabs switch through htmx.
    page.goto(f"{live_server.url}/exports/")
    page.click("#tab-finished")
    page.wait_for_selector("#results >> text=Interactions for the BI team")
    assert "tab=finished" in page.url
    page.screenshot(path=str(tmp_path / "finished-tab.png"), full_page=True)
    page.go_back()
    page.goto(live_server.url + run_url)
    assert "-1.csv.gz" in page.locator("#run-files").inner_text()
    page.screenshot(path=str(tmp_path / "report.png"), full_page=True)

    with page.expect_download() as caught:
        page.click("#download")
    download = caught.value
    saved = Path(tmp_path / download.suggested_filename)
    download.save_as(saved)
    assert saved.name.startswith("Interactions_for_the_BI_team_")
    assert saved.name.endswith("-1.csv.gz")
    columns = dataset.columns
    exported = normalise_rows(read_file(saved, "csv"), columns, milliseconds=True)
    expected = normalise_rows(source_rows(demo_path, "SELECT * FROM interactions"), columns, milliseconds=True)
    assert exported == expected
    assert len(exported) == 5_000
