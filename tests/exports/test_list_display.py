"""What the dense lists and the filter builder show: relative times with the exact one
beside them, and date-times read and shown in the user's time zone (pure functions)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.utils import timezone

from exports.forms import FilterForm, _local_text, _utc_text
from exports.templatetags.exports_tags import moment

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
PARIS = ZoneInfo("Europe/Paris")


@pytest.mark.parametrize(
    ("ago", "shown"),
    [
        (timedelta(seconds=10), "just now"),
        (timedelta(minutes=12), "12 min ago"),
        (timedelta(hours=2, minutes=10), "2 h ago"),
        (timedelta(days=3), "3 d ago"),
        (timedelta(days=20), "13 Nov"),
        (timedelta(days=400), "29 Oct 2025"),
        (-timedelta(hours=3), "in 3 h"),
    ],
)
def test_a_time_reads_short_with_the_exact_time_beside_it(ago, shown):
    with time_machine.travel(NOW, tick=False), timezone.override("Europe/Paris"):
        html = moment(NOW - ago)
    assert f">{shown}</time>" in html
    assert f'datetime="{(NOW - ago).isoformat()}"' in html
    assert 'title="20' in html  # the exact time, in the user's zone
    assert moment(None) == "—"


def test_picked_times_are_read_in_the_users_zone_and_stored_in_utc():
    assert _utc_text("2025-03-01T00:00", PARIS) == "2025-02-28T23:00:00Z"
    assert _utc_text("2025-07-01T00:00:00+02:00", PARIS) == "2025-06-30T22:00:00Z"  # a zone given is kept
    assert _utc_text("2025-03-01", PARIS) == "2025-02-28T23:00:00Z"  # a date alone: its midnight there
    assert _utc_text("soon", PARIS) == "soon"  # left for the validation to name
    assert _utc_text("2025-01-01T00:00\n2025-07-01T00:00", PARIS) == "2024-12-31T23:00:00Z\n2025-06-30T22:00:00Z"
    assert _local_text("2025-02-28T23:00:00Z", PARIS) == "2025-03-01T00:00:00"
    assert _local_text("2025-02-28 23:00", PARIS) == "2025-03-01T00:00:00"  # stored with no zone: UTC


def test_a_filter_row_fits_its_column():
    columns = [
        {"name": "occurred_at", "type": "timestamp"},
        {"name": "country_code", "type": "text"},
        {"name": "active", "type": "boolean"},
        {"name": "revenue", "type": "decimal"},
    ]

    def row(column: str, operator: str = "") -> FilterForm:
        return FilterForm(
            {"f-column": column, "f-operator": operator, "f-value": "", "f-value_to": ""}, prefix="f", columns=columns
        )

    def operators(form: FilterForm) -> set[str]:
        return {value for value, _ in form.fields["operator"].widget.choices if value}

    assert {"contains", "starts_with"} <= operators(row("country_code"))
    assert "gt" in operators(row("country_code"))  # text compares too (codes, ISO dates stored as text)
    assert {"gt", "between", "is_empty"} <= operators(row("revenue"))
    assert "contains" not in operators(row("revenue"))
    assert operators(row("active")) == {"eq", "neq", "in", "is_empty", "is_not_empty"}
    assert row("occurred_at").fields["value"].widget.input_type == "datetime-local"
    assert row("revenue").fields["value"].widget.input_type == "number"
    assert row("country_code", "in").fields["value"].widget.__class__.__name__ == "Textarea"
    assert row("active").fields["value"].widget.__class__.__name__ == "Select"
    # A column the dataset no longer has stays shown, so the error names it and nothing is lost.
    gone = row("shipped_at")
    assert ("shipped_at", "shipped_at (not in this dataset)") in gone.fields["column"].widget.choices
    # A saved timestamp comes back in the user's time zone.
    stored = {"column": "occurred_at", "operator": "gte", "value": "2025-02-28T23:00:00Z"}
    saved = FilterForm(prefix="f", columns=columns, time_zone="Europe/Paris", initial=stored)
    assert saved.initial["value"] == "2025-03-01T00:00:00"
    assert stored["value"] == "2025-02-28T23:00:00Z"  # the export's own filter is left as it is
