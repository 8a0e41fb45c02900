"""The run history picture: rows (bars) and duration (dots) per run, as inline SVG
coordinates computed on the server. No JavaScript, nothing from a CDN."""

from __future__ import annotations

from dataclasses import dataclass

WIDTH, HEIGHT, PAD = 640, 160, 24


@dataclass
class Point:
    x: float
    dot_x: float
    bar_y: float
    bar_height: float
    dot_y: float | None
    label: str
    status: str


def run_history(runs) -> dict | None:
    """`runs` oldest first. None when there is nothing to draw."""
    runs = [run for run in runs if run.finished_at]
    if not runs:
        return None
    most_rows = max((run.row_count or 0) for run in runs) or 1
    durations = [run.duration.total_seconds() for run in runs]
    longest = max(durations) or 1
    step = (WIDTH - 2 * PAD) / len(runs)
    plot = HEIGHT - 2 * PAD
    points = []
    for index, (run, seconds) in enumerate(zip(runs, durations, strict=True)):
        bar = plot * (run.row_count or 0) / most_rows
        points.append(
            Point(
                x=PAD + index * step,
                dot_x=PAD + index * step + step * 0.35,
                bar_y=PAD + plot - bar,
                bar_height=bar,
                dot_y=PAD + plot - plot * seconds / longest,
                label=f"{run.finished_at:%Y-%m-%d %H:%M} · {run.get_status_display()} · "
                f"{run.row_count or 0:,} rows · {seconds:.1f} s",
                status=run.status,
            )
        )
    return {
        "width": WIDTH,
        "height": HEIGHT,
        "bar_width": max(step * 0.7, 1),
        "points": points,
        "most_rows": most_rows,
        "longest": longest,
        "baseline": HEIGHT - PAD,
        "pad": PAD,
    }
