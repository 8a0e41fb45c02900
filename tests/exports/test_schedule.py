"""Schedule arithmetic, for every export type and interval, across daylight-saving
changes in both directions (Europe/Brussels: 2026-03-29 02:00 → 03:00 and 2026-10-25
03:00 → 02:00; America/New_York a few weeks apart)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo

import pytest

from exports.schedule import DAY, HOUR, HOURLY_INTERVALS, Schedule, add_months

BRUSSELS = ZoneInfo("Europe/Brussels")
NEW_YORK = ZoneInfo("America/New_York")


def local(moment: datetime, tz=BRUSSELS) -> datetime:
    return moment.astimezone(tz)


@pytest.mark.parametrize(
    ("start_day", "days"),
    [("2026-03-25", 10), ("2026-10-21", 10)],  # across spring-forward, across fall-back
)
def test_a_daily_schedule_keeps_its_local_time_across_dst(start_day, days):
    start = datetime.fromisoformat(f"{start_day}T06:00").replace(tzinfo=BRUSSELS)
    plan = Schedule(start=start, unit=DAY, interval=1, tz=BRUSSELS)
    runs = plan.upcoming(start - timedelta(seconds=1), count=days)
    assert [local(run).strftime("%H:%M") for run in runs] == ["06:00"] * days
    assert [local(run).date() for run in runs] == [start.date() + timedelta(days=n) for n in range(days)]
    offsets = {run.astimezone(UTC).hour for run in runs}
    assert offsets == {4, 5}  # 06:00 is 05:00 UTC in winter, 04:00 in summer


def test_a_daily_time_that_does_not_exist_runs_just_after_the_gap():
    start = datetime(2026, 3, 27, 2, 30, tzinfo=BRUSSELS)
    plan = Schedule(start=start, unit=DAY, interval=1, tz=BRUSSELS)
    runs = plan.upcoming(start - timedelta(seconds=1), count=4)
    assert [local(run).strftime("%m-%d %H:%M") for run in runs] == [
        "03-27 02:30",
        "03-28 02:30",
        "03-29 03:30",  # 02:30 doesn't exist that night
        "03-30 02:30",
    ]


def test_a_daily_time_that_happens_twice_runs_once_at_the_first():
    start = datetime(2026, 10, 24, 2, 30, tzinfo=BRUSSELS)
    plan = Schedule(start=start, unit=DAY, interval=1, tz=BRUSSELS)
    runs = plan.upcoming(start - timedelta(seconds=1), count=3)
    assert [run.astimezone(UTC).strftime("%m-%d %H:%M") for run in runs] == [
        "10-24 00:30",
        "10-25 00:30",  # 02:30 CEST, the first of the two 02:30s
        "10-26 01:30",
    ]


@pytest.mark.parametrize("hours", HOURLY_INTERVALS)
@pytest.mark.parametrize(
    "start", [datetime(2026, 3, 28, 20, 0, tzinfo=BRUSSELS), datetime(2026, 10, 24, 20, 0, tzinfo=BRUSSELS)]
)
def test_an_hourly_schedule_keeps_exact_intervals_across_dst(hours, start):
    plan = Schedule(start=start, unit=HOUR, interval=hours, tz=BRUSSELS)
    runs = plan.upcoming(start - timedelta(seconds=1), count=12)
    assert runs[0] == start
    assert {later - earlier for earlier, later in pairwise(runs)} == {timedelta(hours=hours)}


@pytest.mark.parametrize("interval", [1, 2, 7])
def test_slots_are_anchored_on_the_start_and_never_drift(interval):
    start = datetime(2026, 1, 1, 6, 0, tzinfo=NEW_YORK)
    plan = Schedule(start=start, unit=DAY, interval=interval, tz=NEW_YORK)
    # Ask at odd moments, as a late scheduler would: the answer is always a slot.
    moment = start
    for _ in range(60):
        moment += timedelta(hours=17, minutes=13)
        following = plan.next_after(moment)
        assert following > moment
        assert local(following, NEW_YORK).strftime("%H:%M") == "06:00"
        assert (local(following, NEW_YORK).date() - start.date()).days % interval == 0


def test_missed_slots_collapse_into_the_latest_one():
    start = datetime(2026, 5, 1, 0, 0, tzinfo=UTC)
    plan = Schedule(start=start, unit=HOUR, interval=3, tz=UTC)
    last_done = start + timedelta(hours=3)
    now = start + timedelta(hours=20)  # the scheduler was down for 17 hours
    assert plan.latest_due(last_done, now) == start + timedelta(hours=18)
    assert plan.latest_due(start + timedelta(hours=18), now) is None
    assert plan.next_after(now) == start + timedelta(hours=21)


def test_nothing_is_due_before_the_start_or_after_the_end():
    start = datetime(2026, 5, 1, 6, 0, tzinfo=UTC)
    plan = Schedule(start=start, unit=DAY, interval=1, end=start + timedelta(days=2, hours=1), tz=UTC)
    assert plan.latest_due(None, start - timedelta(minutes=1)) is None
    assert plan.next_after(start - timedelta(minutes=1)) == start
    assert plan.upcoming(start - timedelta(minutes=1), count=10) == [start + timedelta(days=n) for n in range(3)]
    assert plan.next_after(start + timedelta(days=2)) is None
    # Long after the end, the last slot within it is the one still owed.
    assert plan.latest_due(start, start + timedelta(days=30)) == start + timedelta(days=2)


def test_a_one_shot_with_a_start_has_one_slot():
    start = datetime(2026, 5, 1, 6, 0, tzinfo=UTC)
    plan = Schedule(start=start)
    assert plan.upcoming(start - timedelta(days=1)) == [start]
    assert plan.latest_due(None, start + timedelta(hours=1)) == start
    assert plan.latest_due(start, start + timedelta(hours=1)) is None
    assert plan.next_after(start) is None


def test_six_months_later_keeps_the_wall_time_and_clamps_the_day():
    assert add_months(datetime(2026, 8, 31, 6, 0, tzinfo=BRUSSELS), 6) == datetime(2027, 2, 28, 6, 0, tzinfo=BRUSSELS)
    assert add_months(datetime(2026, 1, 15, 9, 30, tzinfo=UTC), 6) == datetime(2026, 7, 15, 9, 30, tzinfo=UTC)
    assert add_months(datetime(2026, 11, 30, 0, 0, tzinfo=UTC), 3) == datetime(2027, 2, 28, 0, 0, tzinfo=UTC)
