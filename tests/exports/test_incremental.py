"""Incremental exports with rows being inserted while the runs happen: across all
deliveries, every row exactly once, on SQLite and on PostgreSQL. A failed delivery
doesn't move the watermark."""

from __future__ import annotations

import csv
import sqlite3
import threading
import time
from datetime import UTC, datetime
from itertools import pairwise

import psycopg
import pytest
from django.core import mail
from django.core.files.storage import storages

from exports.actions import queue_run
from exports.incremental import window_for
from exports.models import Database, Export, Run, refresh_datasets
from exports.notify import notify_run
from exports.sources import HighWaterMark, TransactionHorizon

pytestmark = pytest.mark.django_db(transaction=True)


class Inserter(threading.Thread):
    """Inserts one row at a time, each in its own transaction, until stopped."""

    def __init__(self, insert_one):
        super().__init__(daemon=True)
        self.insert_one = insert_one
        self.stopped = threading.Event()
        self.count = 0

    def run(self):
        while not self.stopped.is_set():
            self.insert_one()
            self.count += 1
            time.sleep(0.002)

    def stop(self):
        self.stopped.set()
        self.join(timeout=30)


def delivered_ids(run: Run) -> list[int]:
    storage = storages["exports"]
    ids = []
    for run_file in run.files.order_by("part"):
        with storage.open(run_file.path, "rb") as fh:
            ids += [int(row["id"]) for row in csv.DictReader(line.decode() for line in fh)]
    return ids


def run_incremental_while_inserting(users, dataset, worker, inserter: Inserter, all_ids) -> list[Run]:
    export = Export.objects.create(
        name="Events feed",
        owner=users["owner"],
        dataset=dataset,
        export_type=Export.Type.INCREMENTAL,
        cursor_column="id",
        file_format=Export.Format.CSV,
        compression=Export.Compression.NONE,
        file_template="events_%DELIVERY_ID%",
    )
    runs = []
    inserter.start()
    try:
        for _ in range(5):
            run = queue_run(export, user=users["owner"])
            worker()
            runs.append(run)
            time.sleep(0.2)
    finally:
        inserter.stop()
    run = queue_run(export, user=users["owner"])  # picks up the last inserted rows
    worker()
    runs.append(run)
    for run in runs:
        run.refresh_from_db()
        assert run.status == Run.Status.SUCCEEDED, run.error_message
    assert inserter.count > 50, "the inserter hardly ran: the test proves nothing"

    seen = [row_id for run in runs for row_id in delivered_ids(run)]
    expected = all_ids()
    assert len(seen) == len(set(seen)), "a row was delivered twice"
    assert sorted(seen) == expected, f"{len(set(expected) - set(seen))} rows were never delivered"
    assert runs[0].window_from is None
    for earlier, later in pairwise(runs):
        assert later.window_from == earlier.window_to  # windows are contiguous
    export.refresh_from_db()
    assert export.watermark["value"] == str(expected[-1])
    return runs


def test_no_row_is_missed_or_repeated_while_rows_arrive_on_sqlite(users, worker, tmp_path):
    path = tmp_path / "events.sqlite3"
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("CREATE TABLE events (id INTEGER PRIMARY KEY AUTOINCREMENT, payload TEXT NOT NULL)")
        conn.executemany("INSERT INTO events (payload) VALUES (?)", [(f"seed {n}",) for n in range(2_000)])
    database = Database.objects.create(name="Events", url=f"sqlite:///{path}")
    refresh_datasets(database)
    writer = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=30)

    def insert_one():
        writer.execute("INSERT INTO events (payload) VALUES ('live')")

    def all_ids():
        with sqlite3.connect(path) as conn:
            return [row[0] for row in conn.execute("SELECT id FROM events ORDER BY id")]

    run_incremental_while_inserting(users, database.datasets.get(name="events"), worker, Inserter(insert_one), all_ids)
    writer.close()


def test_no_row_is_missed_or_repeated_while_rows_arrive_on_postgresql(users, worker, pg_source_url, pg_table):
    with psycopg.connect(pg_source_url, autocommit=True) as conn:
        conn.execute(f'CREATE TABLE "{pg_table}" (id bigserial PRIMARY KEY, payload text NOT NULL)')
        conn.execute(f"INSERT INTO \"{pg_table}\" (payload) SELECT 'seed ' || n FROM generate_series(1, 2000) n")
    database = Database.objects.create(name="Events PG", url=pg_source_url)
    refresh_datasets(database)
    writer = psycopg.connect(pg_source_url, autocommit=True)

    def insert_one():
        writer.execute(f"INSERT INTO \"{pg_table}\" (payload) VALUES ('live')")

    def all_ids():
        with psycopg.connect(pg_source_url) as conn:
            return [row[0] for row in conn.execute(f'SELECT id FROM "{pg_table}" ORDER BY id')]

    dataset = database.datasets.get(name=pg_table)
    run_incremental_while_inserting(users, dataset, worker, Inserter(insert_one), all_ids)
    writer.close()


def test_a_failed_delivery_leaves_the_watermark_where_it_was(users, demo_database, worker, s3):
    connector = s3.connector(users["owner"], base_path="watermark")
    connector.set_secrets({"secret_access_key": "wrong"})
    connector.save()
    export = Export.objects.create(
        name="Profiles feed",
        owner=users["owner"],
        dataset=demo_database.datasets.get(name="profiles"),
        connector=connector,
        export_type=Export.Type.INCREMENTAL,
        cursor_column="id",
        watermark={"column": "id", "value": "100"},
    )
    run = queue_run(export, user=users["owner"])
    worker()
    run.refresh_from_db()
    assert run.status == Run.Status.FAILED
    assert run.error_code == Run.ErrorCode.DESTINATION_AUTH_FAILED
    assert (run.window_from, run.window_to) == ("100", "400")
    export.refresh_from_db()
    assert export.watermark == {"column": "id", "value": "100"}
    assert s3.objects(f"watermark/{export.id}/") == []


class _FakeReader:
    """Stands in for the source: its high-water mark (with the first transaction id it
    could not see), primary key, oldest running transaction and open transactions."""

    def __init__(self, high, key=(), horizon=None, *, blocking=None, oldest_xid=None):
        self.mark = HighWaterMark(high, blocking)
        self.key = list(key)
        self.oldest_xid = oldest_xid
        self.horizon = horizon or TransactionHorizon(datetime(2026, 11, 23, 12, 0, tzinfo=UTC), None)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def max_value(self, column):
        return self.mark

    def primary_key(self):
        return self.key

    def wait_for_transactions(self, blocking, seconds):
        return self.oldest_xid

    def transaction_horizon(self):
        return self.horizon


def test_the_safety_lag_leaves_the_newest_timestamps_for_the_next_run(users, demo_database):
    interactions = demo_database.datasets.get(name="interactions")
    export = Export(
        dataset=interactions,
        export_type=Export.Type.INCREMENTAL,
        cursor_column="occurred_at",
        safety_lag_seconds=600,
        watermark={"value": "2026-11-23T11:00:00+00:00"},
    )
    now = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
    window = window_for(export, lambda: _FakeReader("2026-11-23T11:58:00+00:00"), now)
    assert (window.low, window.high) == ("2026-11-23T11:00:00+00:00", "2026-11-23T11:50:00+00:00")
    assert window.filters() == [
        {"column": "occurred_at", "operator": "gt", "value": "2026-11-23T11:00:00+00:00"},
        {"column": "occurred_at", "operator": "lte", "value": "2026-11-23T11:50:00+00:00"},
    ]
    # Nothing older than the lag is new: the window is empty and the watermark stays.
    window = window_for(export, lambda: _FakeReader("2026-11-23T10:00:00+00:00"), now)
    assert window.high == window.low == window.next_watermark == "2026-11-23T11:00:00+00:00"


def test_a_successful_run_mails_only_when_asked(users, demo_database, settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    export = Export.objects.create(
        name="Nightly",
        owner=users["owner"],
        dataset=demo_database.datasets.get(name="profiles"),
        report_recipients="bi@example.com",
    )
    run = Run.objects.create(export=export, status=Run.Status.SUCCEEDED, row_count=400)
    assert not notify_run(run)
    assert mail.outbox == []
    export.notify_on_success = True
    export.save()
    run.refresh_from_db()
    assert notify_run(run)
    [message] = mail.outbox
    assert message.subject == "[Exports] Nightly: run succeeded"
    assert "Rows:         400" in message.body
    # The link names the run's sandbox, whichever the reader was last in.
    assert f"/o/default/production/runs/{run.id}/" in message.body
