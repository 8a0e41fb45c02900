"""The run history picture: the last runs on a time axis, rows as bars (left axis) and
duration as dots (right axis), failures in the error colour with their code. Inline
SVG whose coordinates are computed here: no JavaScript, no chart library, nothing from
a CDN. Each bar links to its run's report and says its values in a `<title>`."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.utils import timezone

WIDTH, HEIGHT = 1080, 250
# The plot's box inside the picture: room for the axes' labels on every side.
LEFT, RIGHT, TOP, BOTTOM = 58, 64, 16, 40
LAST_RUNS = 30
MAX_BAR = 22  # px: one run is a bar, not a slab across the card
FAILED = {"failed", "cancelled"}


@dataclass
class Bar:
    x: float  # the bar's left edge
    centre: float
    y: float
    height: float
    dot_y: float
    status: str
    failed: bool
    code: str
    url: str
    label: str  # the tooltip: every value of the run


@dataclass
class Tick:
    at: float
    label: str


def _nice_ceiling(value: float) -> float:
    """The smallest round number (1, 1.5, 2, 2.5, 3, 4, 5, 6 or 8 times a power of ten) at least `value`."""
    if value <= 0:
        return 1
    power = 10 ** math.floor(math.log10(value))
    for step in (1, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10):
        if value <= step * power:
            return step * power
    return 10 * power  # pragma: no cover - the loop ends at 10


def short_number(value: float) -> str:
    """An axis' count: 950, 12k, 2.5M."""
    for size, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if value >= size:
            return f"{value / size:.1f}".rstrip("0").rstrip(".") + suffix
    return f"{value:,.0f}"


def short_duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.0f} s" if seconds >= 10 or seconds == 0 else f"{seconds:.1f} s"
    if seconds < 3600:
        return f"{seconds / 60:.0f} min" if seconds >= 600 else f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def _time_label(moment: datetime, span: timedelta) -> str:
    local = timezone.localtime(moment)
    if span <= timedelta(days=1):
        return f"{local:%H:%M}"
    if span <= timedelta(days=3):
        return f"{local:%d %b %H:%M}"
    if span <= timedelta(days=400):
        return f"{local:%d %b}"
    return f"{local:%b %Y}"


def run_history(runs, *, now: datetime | None = None) -> dict:
    """`runs` oldest first; the finished among the last LAST_RUNS are drawn. Always a
    picture: with no finished run, the empty axes up to `now` and a line saying so."""
    runs = [run for run in runs if run.finished_at][-LAST_RUNS:]
    now = now or timezone.now()
    plot_width, plot_height = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    baseline = TOP + plot_height
    most_rows = _nice_ceiling(max((run.row_count or 0) for run in runs) if runs else 0)
    durations = [run.duration.total_seconds() if run.duration else 0.0 for run in runs]
    longest = _nice_ceiling(max(durations) if durations else 0)

    # The time axis: from the first run to the last, with half a bar of room at each end;
    # one run, or runs at one instant, sit in the middle of an hour.
    first = runs[0].finished_at if runs else now - timedelta(days=1)
    last = runs[-1].finished_at if runs else now
    if last - first < timedelta(minutes=1):
        first, last = first - timedelta(minutes=30), last + timedelta(minutes=30)
    span = last - first
    bar_width = max(3.0, min(MAX_BAR, plot_width / max(len(runs), 1) * 0.6))
    usable = plot_width - bar_width

    def x_of(moment: datetime) -> float:
        return LEFT + bar_width / 2 + usable * ((moment - first) / span)

    bars = []
    for run, seconds in zip(runs, durations, strict=True):
        failed = run.status in FAILED
        rows = run.row_count or 0
        height = plot_height if failed else plot_height * rows / most_rows
        centre = x_of(run.finished_at)
        local = timezone.localtime(run.finished_at)
        details = [f"{local:%Y-%m-%d %H:%M %Z}", run.get_status_display()]
        if run.error_code:
            details.append(run.error_code)
        details += [f"{rows:,} rows", short_duration(seconds)]
        bars.append(
            Bar(
                x=centre - bar_width / 2,
                centre=centre,
                y=baseline - height,
                height=height,
                dot_y=baseline - plot_height * seconds / longest,
                status=run.status,
                failed=failed,
                code=run.error_code or run.get_status_display(),
                url=run.get_absolute_url(),
                label=" · ".join(details),
            )
        )
    count = 5 if span > timedelta(hours=2) else 3
    times = [
        Tick(x_of(first + span * i / (count - 1)), _time_label(first + span * i / (count - 1), span))
        for i in range(count)
    ]
    rows_ticks = [Tick(baseline - plot_height * i / 2, short_number(most_rows * i / 2)) for i in range(3)]
    duration_ticks = [Tick(baseline - plot_height * i / 2, short_duration(longest * i / 2)) for i in range(3)]
    return {
        "width": WIDTH,
        "height": HEIGHT,
        "left": LEFT,
        "right": WIDTH - RIGHT,
        "top": TOP,
        "baseline": baseline,
        "middle": TOP + plot_height / 2,
        "centre": LEFT + plot_width / 2,
        "bar_width": bar_width,
        "bars": bars,
        "failures": [bar for bar in bars if bar.failed],
        "times": times,
        "rows_ticks": rows_ticks,
        "duration_ticks": duration_ticks,
        "empty": not bars,
        "count": len(bars),
    }
