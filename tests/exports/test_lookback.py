"""The lookback's arithmetic: how far below the high-water mark a run re-reads, what it
remembers, and what it skips. The end-to-end proof is tests/exports/test_late_commits.py."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pytest
from django.urls import reverse

from exports.forms import ScheduleStepForm
from exports.incremental import Lookback, Window, dump_memory, key_array, window_for
from exports.models import Export, IncrementalMemory, Run
from exports.sources import TransactionHorizon
from tests.exports.test_incremental import _FakeReader

pytestmark = pytest.mark.django_db

NOON = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def incremental(dataset, cursor, watermark=None):
    return Export(
        dataset=dataset,
        export_type=Export.Type.INCREMENTAL,
        cursor_column=cursor,
        watermark={"column": cursor, "value": watermark} if watermark else None,
    )


def memory_of(export, settled, history=(), **changes):
    fields = {
        "dataset_id": export.dataset_id,
        "column": export.cursor_column,
        "cursor_type": export.dataset.column(export.cursor_column)["type"],
        "key_columns": ["id"],
        "watermark": export.watermark["value"],
        "settled": settled,
        "history": list(history),
        "keys": b"",
    }
    return IncrementalMemory(**{**fields, **changes})


def entry(clock, high, blocking):
    return {"clock": clock.isoformat(), "high": high, "blocking": blocking}


def test_a_timestamp_lookback_reaches_back_past_the_oldest_open_transaction(interactions, settings):
    settings.EXPORT_LOOKBACK_SECONDS = 300
    export = incremental(interactions, "occurred_at", "2026-11-23T11:00:00+00:00")
    horizon = TransactionHorizon(NOON, NOON - timedelta(minutes=10))
    memory = memory_of(export, "2026-11-23T10:55:00+00:00")
    window = window_for(export, lambda: _FakeReader("2026-11-23T12:00:00+00:00", ["id"], horizon), NOON, memory)
    # Read from the last run's settled mark; the next one settles 5 + 10 minutes below the mark.
    assert window.filters() == [
        {"column": "occurred_at", "operator": "gt", "value": "2026-11-23T10:55:00+00:00"},
        {"column": "occurred_at", "operator": "lte", "value": "2026-11-23T12:00:00+00:00"},
    ]
    assert (window.low, window.lookback_from, window.settled) == (
        "2026-11-23T11:00:00+00:00",
        "2026-11-23T10:55:00+00:00",
        "2026-11-23T11:45:00+00:00",
    )
    assert window.remembers
    assert window.warning == ""
    # A mark ahead of the source's clock (a future-dated row) settles from the clock.
    window = window_for(export, lambda: _FakeReader("2026-11-23T18:00:00+00:00", ["id"], horizon), NOON, memory)
    assert window.settled == "2026-11-23T11:45:00+00:00"


def test_naive_timestamps_keep_their_style_and_the_settled_mark_never_goes_back(interactions):
    export = incremental(interactions, "occurred_at", "2026-11-23T11:58:00")
    memory = memory_of(export, "2026-11-23T11:57:00")
    window = window_for(export, lambda: _FakeReader("2026-11-23T11:59:00.250", ["id"]), NOON, memory)
    # 11:59:00.250 minus 300 s is below the last settled mark: rows there were final.
    assert window.settled == "2026-11-23T11:57:00"
    memory = memory_of(export, "2026-11-23T11:00:00")
    window = window_for(export, lambda: _FakeReader("2026-11-23T11:59:00.250", ["id"]), NOON, memory)
    assert window.settled == "2026-11-23T11:54:00.250000"


def test_an_id_mark_settles_once_the_transactions_it_could_not_see_have_ended(profiles, settings):
    settings.EXPORT_LOOKBACK_IDS, settings.EXPORT_LOOKBACK_MAX_SECONDS = 1_000, 86_400
    export = incremental(profiles, "id", "45000")
    history = [entry(NOON - timedelta(hours=3), "40000", 80), entry(NOON - timedelta(hours=1), "45000", 95)]
    memory = memory_of(export, "20000", history)

    def window(oldest_xid):
        reader = _FakeReader("50000", ["id"], blocking=100, oldest_xid=oldest_xid)
        return window_for(export, lambda: reader, NOON, memory)

    # SQLite: one writer at a time, nothing unseen.
    assert window(None).settled == "49000"
    # Transaction 100, running when the mark was read, and every older one have ended.
    assert window(101).settled == "49000"
    # Transaction 90 still runs: it began after the run at 09:00 read its mark (whose
    # newest was 80), so it may hold ids above 40,000 but none below.
    assert window(90).settled == "39000"
    # Transaction 70 began before every mark we know: stay at the last settled mark.
    stuck = window(70)
    assert (stuck.lookback_from, stuck.settled, stuck.warning) == ("20000", "20000", "")
    assert [item["high"] for item in stuck.history] == ["40000", "45000", "50000"]


def test_a_transaction_that_holds_the_lookback_back_too_long_is_let_go_with_a_warning(profiles, settings):
    settings.EXPORT_LOOKBACK_IDS, settings.EXPORT_LOOKBACK_MAX_SECONDS = 0, 3600
    export = incremental(profiles, "id", "45000")
    history = [entry(NOON - timedelta(hours=3), "40000", 80), entry(NOON - timedelta(minutes=30), "45000", 95)]
    memory = memory_of(export, "20000", history)
    window = window_for(export, lambda: _FakeReader("50000", ["id"], blocking=100, oldest_xid=70), NOON, memory)
    assert window.settled == "40000"
    assert "has held the lookback back that long: rows it commits at or below 40000" in window.warning
    # The history keeps what a later run may settle at: the newest entry over an hour old on.
    assert [item["high"] for item in window.history] == ["40000", "45000", "50000"]


def test_a_timestamp_transaction_older_than_the_longest_lookback_is_reported(interactions, settings):
    settings.EXPORT_LOOKBACK_SECONDS, settings.EXPORT_LOOKBACK_MAX_SECONDS = 300, 3600
    horizon = TransactionHorizon(NOON, NOON - timedelta(hours=5), hidden_sessions=2)
    export = incremental(interactions, "occurred_at", "2026-11-23T10:00:00+00:00")
    window = window_for(export, lambda: _FakeReader("2026-11-23T12:00:00+00:00", ["id"], horizon), NOON)
    assert window.settled == "2026-11-23T11:00:00+00:00"  # an hour, no more
    assert "a transaction open on the source since 2026-11-23 07:00:00 UTC" in window.warning
    assert "is older than the lookback (60 min)" in window.warning
    assert "2 session(s) on the source hide their transactions from its user: grant it pg_read_all_stats" in (
        window.warning
    )


def test_without_a_primary_key_the_window_is_plain(interactions):
    export = incremental(interactions, "occurred_at", "2026-11-23T11:00:00+00:00")
    window = window_for(export, lambda: _FakeReader("2026-11-23T12:00:00+00:00"), NOON)
    assert window == Window("occurred_at", "2026-11-23T11:00:00+00:00", "2026-11-23T12:00:00+00:00")
    assert not window.remembers


@pytest.mark.parametrize(
    "change",
    [
        {"watermark": "30000"},  # reset or edited since
        {"dataset_id": 0},  # another dataset
        {"key_columns": ["id", "email"]},  # another key
        {"cursor_type": "timestamp"},  # the column changed type
    ],
)
def test_a_memory_that_no_longer_applies_is_ignored_and_nothing_is_read_twice(profiles, change):
    export = incremental(profiles, "id", "45000")
    memory = memory_of(export, "20000", **change)
    window = window_for(export, lambda: _FakeReader("45500", ["id"]), NOON, memory)
    assert window.lookback_from is None
    assert window.read_from == "45000"
    # What this run remembers starts at the watermark: the next run re-reads nothing it
    # can't tell apart.
    assert window.settled == "45000"


def test_the_lookback_skips_rows_delivered_as_they_are_and_counts_late_ones():
    window = Window("id", "100", "130", lookback_from="90", settled="120", key=("id",), cursor_type="integer")
    remembered = pa.table({"cursor": pa.array([91, 95, 100], pa.int64()), "key": pa.array([91, 95, 100], pa.int64())})
    lookback = Lookback(window, dump_memory(remembered))
    batch = pa.record_batch({"id": pa.array(list(range(91, 131)), pa.int64())})
    out = lookback(batch)
    assert 91 not in out.column("id").to_pylist()
    assert 95 not in out.column("id").to_pylist()
    assert out.num_rows == 40 - 3
    assert lookback.late_rows == 10 - 3  # 92..99 but 95, and nothing else at or below 100
    keys, count = lookback.memory()
    assert count == 10  # 121..130
    assert pa.ipc.open_stream(keys).read_all().column("key").to_pylist() == list(range(121, 131))


def test_an_updated_row_or_a_reused_key_is_delivered_again():
    window = Window(
        "updated_at",
        "2026-11-23T11:00:00+00:00",
        "2026-11-23T12:00:00+00:00",
        lookback_from="2026-11-23T10:00:00+00:00",
        settled="2026-11-23T11:00:00+00:00",
        key=("id",),
        cursor_type="timestamp",
    )
    at = [datetime(2026, 11, 23, 10, minute, tzinfo=UTC) for minute in (10, 20, 30)]
    remembered = pa.table({"cursor": pa.array(at, pa.timestamp("us", tz="UTC")), "key": pa.array([1, 2, 3])})
    lookback = Lookback(window, dump_memory(remembered))
    batch = pa.record_batch(
        {
            "id": pa.array([1, 2, 3, 4]),
            "updated_at": pa.array(
                [at[0], at[1] + timedelta(minutes=5), datetime(2026, 11, 23, 11, 30, tzinfo=UTC), at[2]],
                pa.timestamp("us", tz="UTC"),
            ),
        }
    )
    # 1 unchanged: skipped. 2 updated within the lookback, 3 updated above the watermark,
    # 4 late: delivered.
    assert lookback(batch).column("id").to_pylist() == [2, 3, 4]
    assert lookback.late_rows == 2


def test_a_composite_key_tells_rows_apart_by_all_its_columns():
    batch = pa.record_batch({"shop": ["a", "a", "b", None, "x\x1fy"], "n": pa.array([1, 2, 1, 1, 1], pa.int64())})
    keys = key_array(batch, ("shop", "n")).to_pylist()
    assert keys[:4] == ["a\x1f1", "a\x1f2", "b\x1f1", "\\N\x1f1"]
    assert len(set(keys)) == 5
    assert (
        key_array(pa.record_batch({"shop": ["x", "x\x1fy"], "n": ["y\x1f1", "1"]}), ("shop", "n")).to_pylist()[0]
        != (key_array(pa.record_batch({"shop": ["x", "x\x1fy"], "n": ["y\x1f1", "1"]}), ("shop", "n")).to_pylist()[1])
    )


def test_the_report_shows_the_lookback_its_late_rows_and_a_warning(client, users, profiles):
    export = Export.objects.create(
        name="Feed", owner=users["owner"], dataset=profiles, export_type=Export.Type.INCREMENTAL, cursor_column="id"
    )
    run = Run.objects.create(
        export=export,
        status=Run.Status.SUCCEEDED,
        row_count=12,
        window_from="100",
        window_to="110",
        lookback_from="90",
        late_rows=2,
        warning="a transaction open on the source since 2026-11-23 07:00:00 UTC is older than the lookback",
    )
    client.force_login(users["owner"])
    page = client.get(reverse("runs-detail", args=[run.id])).content.decode()
    assert "re-read from <code>90</code> to catch rows that committed late: <strong>2</strong> late rows caught" in page
    assert 'id="run-warning">a transaction open on the source since 2026-11-23 07:00:00 UTC' in page
    Run.objects.filter(id=run.id).update(lookback_from=None, late_rows=None, warning="")
    page = client.get(reverse("runs-detail", args=[run.id])).content.decode()
    assert "none: rows that commit late below the watermark are not caught" in page
    assert 'id="run-warning"' not in page


def test_the_schedule_step_says_when_a_dataset_has_no_primary_key(users, profiles):
    export = Export(dataset=profiles, owner=users["owner"])
    assert "no primary key" not in ScheduleStepForm(instance=export).fields["cursor_column"].help_text
    profiles.primary_key = []
    assert "profiles has no primary key, so runs can't catch rows that commit late" in (
        ScheduleStepForm(instance=export).fields["cursor_column"].help_text
    )


def test_a_refresh_records_primary_keys(demo_database):
    assert demo_database.datasets.get(name="profiles").primary_key == ["id"]
