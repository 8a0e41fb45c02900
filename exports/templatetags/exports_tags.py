from __future__ import annotations

from datetime import datetime, timedelta

from django import template
from django.utils import timezone
from django.utils.html import format_html

register = template.Library()


@register.filter
def duration(value: timedelta | None) -> str:
    """A run's duration as people read it: 0.4 s, 12 s, 3 min 05 s, 2 h 14 min."""
    if value is None:
        return "—"
    seconds = value.total_seconds()
    if seconds < 10:
        return f"{seconds:.1f} s"
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def _ago(moment: datetime, now: datetime) -> str:
    seconds = (now - moment).total_seconds()
    ahead, seconds = seconds < 0, abs(seconds)
    if seconds < 45:
        return "in a moment" if ahead else "just now"
    if seconds < 3_600:
        amount, unit = max(1, round(seconds / 60)), "min"
    elif seconds < 86_400:
        amount, unit = round(seconds / 3_600), "h"
    elif seconds < 7 * 86_400:
        amount, unit = round(seconds / 86_400), "d"
    else:
        local = timezone.localtime(moment)
        return f"{local:%d %b}" if local.year == timezone.localtime(now).year else f"{local:%d %b %Y}"
    return f"in {amount} {unit}" if ahead else f"{amount} {unit} ago"


@register.simple_tag
def moment(value: datetime | None, *, absolute: bool = False) -> str:
    """A time as one short line: relative ("2 h ago", "in 3 h", a date past a week), or
    absolute ("2026-11-05 09:30"), with the exact time in the user's time zone as a
    tooltip and in `<time datetime>`."""
    if value is None:
        return "—"
    local = timezone.localtime(value)
    exact = f"{local:%Y-%m-%d %H:%M:%S %Z}"
    shown = f"{local:%Y-%m-%d %H:%M}" if absolute else _ago(value, timezone.now())
    return format_html('<time datetime="{}" title="{}">{}</time>', value.isoformat(), exact, shown)
