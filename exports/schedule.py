"""Schedule arithmetic: when an export's runs are due. Pure functions of the schedule and
a moment, so they are tested under any clock.

- Daily schedules keep the wall-clock time of their start in the schedule's time zone:
  "every day at 06:00 Europe/Brussels" is 06:00 local in winter and in summer. A time
  that doesn't exist on a spring-forward day runs an hour later (02:30 becomes 03:30); a
  time that happens twice on a fall-back day runs at its first occurrence.
- Hourly schedules (every 3, 6, 9 or 12 hours) count elapsed time from the start, so
  two runs are always exactly that many hours apart, across DST changes too.
- Every slot is computed from the start (slot n = start + n intervals): the times never
  drift, whenever the scheduler happens to tick.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

if TYPE_CHECKING:
    from exports.models import Export

DAY, HOUR = "day", "hour"
HOURLY_INTERVALS = (3, 6, 9, 12)
DEFAULT_DURATION_MONTHS = 6


def add_months(moment: datetime, months: int) -> datetime:
    """The same wall time `months` later (the 31st becomes the month's last day)."""
    month_index = moment.month - 1 + months
    year, month = moment.year + month_index // 12, month_index % 12 + 1
    days_in_month = (date(year + (month == 12), month % 12 + 1, 1) - timedelta(days=1)).day
    return moment.replace(year=year, month=month, day=min(moment.day, days_in_month))


def _resolve(wall: datetime) -> datetime:
    """A wall-clock time in its zone, as UTC. In a spring-forward gap, zoneinfo uses the
    offset from before the change (fold=0), which lands the run just after the gap; in a
    fall-back overlap, fold=0 is the first occurrence."""
    return wall.astimezone(UTC)


UTC_ZONE = ZoneInfo("UTC")


@dataclass(frozen=True)
class Schedule:
    start: datetime  # aware
    unit: str = ""  # "" for a single run at `start`
    interval: int = 1
    end: datetime | None = None
    tz: ZoneInfo = UTC_ZONE

    @property
    def repeats(self) -> bool:
        return self.unit in {DAY, HOUR}

    def slot(self, n: int) -> datetime:
        """The n-th run time (n from 0), in UTC."""
        if self.unit == HOUR:
            # In UTC: Python adds wall-clock time to an aware datetime in its own zone.
            return self.start.astimezone(UTC) + timedelta(hours=n * self.interval)
        if self.unit == DAY:
            local = self.start.astimezone(self.tz)
            day = local.date() + timedelta(days=n * self.interval)
            wall = datetime.combine(day, local.time().replace(fold=0), tzinfo=self.tz)
            return _resolve(wall)
        return self.start.astimezone(UTC)

    def _index_at_or_before(self, moment: datetime) -> int:
        """The largest n with slot(n) <= moment (-1 when moment is before the start)."""
        if moment < self.slot(0):
            return -1
        if not self.repeats:
            return 0
        if self.unit == HOUR:
            elapsed = moment.astimezone(UTC) - self.start.astimezone(UTC)
            n = math.floor(elapsed.total_seconds() / (self.interval * 3600))
        else:
            days = (moment.astimezone(self.tz).date() - self.start.astimezone(self.tz).date()).days
            n = days // self.interval
        while n >= 0 and self.slot(n) > moment:
            n -= 1
        while self.slot(n + 1) <= moment:
            n += 1
        return n

    def _within_end(self, moment: datetime) -> bool:
        return self.end is None or moment <= self.end

    def next_after(self, moment: datetime) -> datetime | None:
        """The first run time strictly after `moment`, or None when none is left."""
        if not self.repeats:
            first = self.slot(0)
            return first if first > moment else None
        candidate = self.slot(self._index_at_or_before(moment) + 1)
        return candidate if self._within_end(candidate) else None

    def latest_due(self, after: datetime | None, now: datetime) -> datetime | None:
        """The latest run time in (after, now]: missed slots collapse into this one."""
        n = self._index_at_or_before(now)
        if n < 0:
            return None
        slot = self.slot(n)
        while n > 0 and not self._within_end(slot):
            n -= 1
            slot = self.slot(n)
        if not self._within_end(slot) or (after is not None and slot <= after):
            return None
        return slot

    def upcoming(self, moment: datetime, count: int = 5) -> list[datetime]:
        times: list[datetime] = []
        cursor = moment
        while len(times) < count:
            following = self.next_after(cursor)
            if following is None:
                break
            times.append(following)
            cursor = following
        return times


def for_export(export: Export) -> Schedule | None:
    """The schedule of an export, or None for a one-shot launched by hand."""
    if export.schedule_start is None:
        return None
    tz = ZoneInfo(export.schedule_timezone or "UTC")
    if export.export_type == export.Type.ONE_SHOT:
        return Schedule(start=export.schedule_start, tz=tz)
    unit = export.schedule_unit or DAY
    return Schedule(
        start=export.schedule_start,
        unit=unit,
        interval=export.schedule_interval or 1,
        end=export.schedule_end,
        tz=tz,
    )
