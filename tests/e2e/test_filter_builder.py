"""The wizard's filter builder in a real Chromium: the column is chosen from the
dataset's columns, the operators and the value inputs follow its type, a date-time is
picked in the user's time zone, and the exported file holds exactly the rows that match
(compared with the source)."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from django.urls import reverse

from exports.models import Export, Profile
from tests.conftest import run_worker
from tests.e2e.conftest import log_in
from tests.exports.readback import normalise_rows, read_file
from tests.exports.test_runs import source_rows

pytestmark = pytest.mark.django_db(transaction=True)

PARIS = ZoneInfo("Europe/Paris")


def options(page, selector: str) -> list[str]:
    return page.eval_on_selector_all(f"{selector} option", "options => options.map(o => o.value).filter(v => v)")


def test_a_marketer_builds_filters_from_the_columns_and_gets_exactly_the_matching_rows(
    page, live_server, users, demo_database, demo_path, tmp_path
):
    Profile.objects.update_or_create(user=users["owner"], defaults={"time_zone": "Europe/Paris"})
    page.set_viewport_size({"width": 1400, "height": 900})
    log_in(page, live_server.url, users["owner"].username)
    page.click("text=Create export")
    page.fill("#id_name", "Spring in Germany and France")
    dataset = demo_database.datasets.get(name="interactions")
    page.select_option("#id_dataset", str(dataset.id))
    page.wait_for_selector("input[name=columns][value=occurred_at]")
    # The column is a choice of the dataset's columns, each with its type.
    assert set(options(page, "#id_filters-0-column")) == {column["name"] for column in dataset.columns}
    assert page.locator("#id_filters-0-column option[value=occurred_at]").inner_text() == "occurred_at (timestamp)"

    # A timestamp: the ordered operators, no text ones, and date-time pickers.
    page.select_option("#id_filters-0-column", "occurred_at")
    page.wait_for_selector("#filter-row-0[data-column=occurred_at] #id_filters-0-value[type=datetime-local]")
    timestamp_operators = options(page, "#id_filters-0-operator")
    assert "between" in timestamp_operators
    assert "contains" not in timestamp_operators
    page.select_option("#id_filters-0-operator", "between")
    page.wait_for_selector("#filter-row-0[data-operator=between] .second-value:not(.unused)")
    page.fill("#id_filters-0-value", "2025-03-01T00:00:00")
    page.fill("#id_filters-0-value_to", "2025-06-30T23:59:59")

    # Text: contains and starts with; "is one of" takes a list.
    page.select_option("#id_filters-1-column", "country_code")
    page.wait_for_selector("#filter-row-1[data-column=country_code]")
    assert {"contains", "starts_with", "in", "is_empty"} <= set(options(page, "#id_filters-1-operator"))
    page.select_option("#id_filters-1-operator", "in")
    page.wait_for_selector("#filter-row-1[data-operator=in] textarea#id_filters-1-value")
    page.fill("#id_filters-1-value", "DE\nFR")
    # What was typed in the first row survived the second row's refits.
    assert page.input_value("#id_filters-0-value") == "2025-03-01T00:00"  # Chromium drops :00 seconds
    page.screenshot(path=str(tmp_path / "wizard-filters-1400.png"), full_page=True)

    page.click("button[name=next]")
    page.wait_for_url("**/wizard/file/")
    export = Export.objects.get(name="Spring in Germany and France")
    # Stored in UTC: midnight in Paris on 1 March is 23:00 the day before.
    assert export.filters[0]["value"] == "2025-02-28T23:00:00Z"
    assert export.filters[0]["value_to"] == "2025-06-30T21:59:59Z"
    assert export.filters[1]["value"] == "DE\nFR"
    page.select_option("#id_file_format", "csv")
    page.click("button[name=next]")
    page.wait_for_url("**/wizard/destination/")
    page.click("button[name=next]")
    page.wait_for_url("**/wizard/schedule/")
    page.click("button[name=next]")
    page.wait_for_url("**/wizard/summary/")
    page.click("button[name=launch]")
    page.wait_for_url("**/runs/**")
    worker = threading.Thread(target=run_worker)
    worker.start()
    page.wait_for_selector("#run-status:has-text('Succeeded')", timeout=60_000)
    worker.join()
    with page.expect_download() as caught:
        page.click("#download")
    saved = Path(tmp_path / caught.value.suggested_filename)
    caught.value.save_as(saved)

    low = datetime(2025, 3, 1, tzinfo=PARIS).astimezone(UTC)
    high = datetime(2025, 6, 30, 23, 59, 59, tzinfo=PARIS).astimezone(UTC)
    wanted = [
        row
        for row in source_rows(demo_path, "SELECT * FROM interactions")
        if row["country_code"] in {"DE", "FR"} and low <= datetime.fromisoformat(row["occurred_at"]) <= high
    ]
    columns = dataset.columns
    exported = normalise_rows(read_file(saved, "csv"), columns, milliseconds=True)
    assert exported == normalise_rows(wanted, columns, milliseconds=True)
    assert 50 < len(exported) < 1000  # both filters bit: neither everything nor nothing

    # Editing the draft again shows the saved times back in Paris time.
    copy = export.copy(name="Spring again", owner=users["owner"])
    page.goto(live_server.url + reverse("exports-wizard", args=[copy.id, "source"]))
    assert page.input_value("#id_filters-0-value") == "2025-03-01T00:00"  # Chromium drops :00 seconds
    assert page.input_value("#id_filters-1-value") == "DE\nFR"
