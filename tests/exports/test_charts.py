"""The run history picture (exports/charts.py, _run_history.html): a time axis with
dates, labelled axes for rows and duration, failures in the error colour with their
code, a tooltip and a link on every bar, and a sensible look with 0, 1, 2 and 30 runs."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from django.template.loader import render_to_string
from django.utils import timezone

from exports import charts
from exports.models import Run

START = datetime(2026, 11, 2, 6, 0, tzinfo=UTC)


def runs(count: int, *, every: timedelta = timedelta(days=1)) -> list[Run]:
    """`count` finished runs, oldest first; every fifth failed, one cancelled."""
    made = []
    for number in range(count):
        finished = START + every * number
        failed = number % 5 == 4
        made.append(
            Run(
                id=uuid.uuid4(),
                status=Run.Status.FAILED if failed else Run.Status.SUCCEEDED,
                error_code="SOURCE_QUERY_FAILED" if failed else "",
                row_count=None if failed else 1000 * (number + 1),
                started_at=finished - timedelta(seconds=30 + number),
                finished_at=finished,
            )
        )
    return made


def drawn(count: int, **kwargs) -> tuple[dict, str]:
    chart = charts.run_history(runs(count, **kwargs), now=START + timedelta(days=40))
    return chart, render_to_string("exports/_run_history.html", {"chart": chart})


def texts(svg: str, css_class: str) -> list[str]:
    return re.findall(rf'<text class="{css_class}"[^>]*>([^<]+)</text>', svg)


@pytest.mark.parametrize("count", [0, 1, 2, 30])
def test_every_count_has_axes_dates_and_a_title_on_each_bar(count):
    with timezone.override("Europe/Paris"):
        chart, svg = drawn(count)
    assert svg.count("<svg") == 1
    assert ">Rows</text>" in svg  # both axes labelled
    assert ">Duration</text>" in svg
    dates = texts(svg, "time")
    assert len(dates) >= 3, dates  # the time axis says when
    assert all(re.search(r"\d", date) for date in dates), dates
    assert len(re.findall(r'<a href="[^"]*/runs/[^"]+" class="run', svg)) == count  # each bar links to its report...
    assert svg.count("<title>") == count  # ...and has a tooltip
    assert svg.count('<title id="chart-title">') == 1
    if count == 0:
        assert "No finished runs yet" in svg
    for bar in chart["bars"]:
        assert charts.LEFT <= bar.x
        assert bar.x + chart["bar_width"] <= charts.WIDTH - charts.RIGHT + 0.01
        assert charts.TOP - 0.01 <= bar.y <= chart["baseline"]


def test_one_run_is_a_slim_bar_in_the_middle_not_a_slab():
    chart, _ = drawn(1)
    [bar] = chart["bars"]
    assert chart["bar_width"] <= charts.MAX_BAR
    assert abs(bar.centre - chart["centre"]) < 1
    two, _ = drawn(2)
    left, right = two["bars"]
    assert left.centre < chart["centre"] < right.centre


def test_bars_sit_on_a_time_axis():
    """Runs a day apart, then a gap of ten days: the gap shows."""
    made = [
        *runs(3),
        Run(
            id=uuid.uuid4(),
            status="succeeded",
            row_count=5,
            started_at=START + timedelta(days=12),
            finished_at=START + timedelta(days=12, seconds=5),
        ),
    ]
    chart = charts.run_history(made)
    centres = [bar.centre for bar in chart["bars"]]
    assert centres == sorted(centres)
    assert centres[3] - centres[2] > 8 * (centres[1] - centres[0])


def test_failures_are_in_the_error_colour_with_their_code_and_values():
    chart, svg = drawn(30)
    failed = [bar for bar in chart["bars"] if bar.failed]
    assert len(failed) == 6
    assert all(bar.height == chart["baseline"] - charts.TOP for bar in failed)  # full height, not short
    assert svg.count('class="bar failed"') == 6
    assert svg.count("SOURCE_QUERY_FAILED") >= 12  # in each failed bar's tooltip and the list below
    assert "29,000 rows" in svg  # the values, with their separators
    assert ">30k</text>" in svg  # the rows axis' top, short
    assert re.search(r"<title>2026-11-\d\d \d\d:\d\d \w+ · Succeeded · 1,000 rows · 30 s</title>", svg)


def test_only_the_last_30_finished_runs_are_drawn():
    made = runs(40)
    made.append(Run(id=uuid.uuid4(), status="running", started_at=START + timedelta(days=41)))
    chart = charts.run_history(made)
    assert chart["count"] == 30
    assert chart["bars"][-1].label.startswith(f"{timezone.localtime(made[39].finished_at):%Y-%m-%d %H:%M}")
