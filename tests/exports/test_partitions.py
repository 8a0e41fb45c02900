"""Partitioned runs: a large export split into key ranges that several real workers
read at once, with one TNF once every range is delivered; a killed partition is retried
alone, a cancel stops them all."""

from __future__ import annotations

import csv
import gzip
import io
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from datetime import timedelta

import django_rq
import pytest
from django.conf import settings
from django.core.files.storage import storages
from django.utils import timezone
from rq import Worker

from exports import actions, partitions
from exports.actions import queue_run
from exports.models import Database, Export, Run, RunPartition, refresh_datasets
from exports.scheduler import tick
from tests.conftest import BASE_DIR, _test_database_url
from tests.services import children_of, events_file
from tests.stores import S3_BUCKET

ROWS_PER_PARTITION = "25000"


# --- the split points: pure ---------------------------------------------------------------


def test_integer_ranges_split_evenly_without_statistics():
    assert partitions.split_points("1", "101", "integer", 4, []) == ["26", "51", "76"]
    # Fewer distinct keys than ranges: only the cuts that separate values.
    assert partitions.split_points("1", "2", "integer", 5, []) == ["2"]
    assert partitions.split_points("7", "7", "integer", 3, []) == []


def test_ranges_follow_the_statistics_quantiles_when_there_are_enough():
    # A skewed key: half the rows below 10, the rest spread to 1,000,000.
    quantiles = ["1", "3", "5", "7", "10", "1000", "10000", "100000", "1000000"]
    assert partitions.split_points("1", "1000000", "integer", 2, quantiles) == ["10"]
    assert partitions.split_points("1", "1000000", "integer", 4, quantiles) == ["5", "10", "10000"]


def test_timestamp_ranges_keep_the_form_the_source_gave():
    aware = partitions.split_points("2026-01-01T00:00:00+00:00", "2026-01-05T00:00:00+00:00", "timestamp", 4, [])
    assert aware == ["2026-01-02T00:00:00+00:00", "2026-01-03T00:00:00+00:00", "2026-01-04T00:00:00+00:00"]
    naive = partitions.split_points("2026-01-01T00:00:00.000", "2026-01-01T00:00:01.000", "timestamp", 2, [])
    assert naive == ["2026-01-01T00:00:00.500000"]
    assert partitions.split_points("2026-01-01", "2026-01-09", "date", 2, []) == ["2026-01-05"]


# --- real workers --------------------------------------------------------------------------


def _env(**more) -> dict:
    return dict(
        os.environ,
        DATABASE_URL=_test_database_url(),
        DJANGO_SETTINGS_MODULE="tests.settings",
        EXPORT_PARTITION_ROWS=ROWS_PER_PARTITION,
        **more,
    )


def start_worker() -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "manage.py", "rqworker", "--skip-checks", settings.EXPORTS_QUEUE],
        cwd=BASE_DIR,
        env=_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def stop(process: subprocess.Popen, sig=signal.SIGTERM) -> None:
    if process.poll() is None:
        os.killpg(process.pid, sig)
        process.wait(timeout=60)


def burst_worker() -> None:
    result = subprocess.run(
        [sys.executable, "manage.py", "rqworker", "--burst", "--skip-checks", settings.EXPORTS_QUEUE],
        cwd=BASE_DIR,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]


def wait_until(condition, timeout=120, what="the condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def events(tmp_path):
    """100,000 rows in `events(id INTEGER PRIMARY KEY, payload)`: four partitions of 25,000."""
    path = events_file(tmp_path / "events.sqlite3", 100_000, payload_bytes=20)
    database = Database.objects.create(name="Events", url=f"sqlite:///{path}")
    refresh_datasets(database)
    return database.datasets.get(name="events")


def _ids_in_csv(payloads: list[bytes]) -> list[int]:
    ids = []
    for payload in payloads:
        text = gzip.decompress(payload).decode() if payload[:2] == b"\x1f\x8b" else payload.decode()
        ids += [int(row["id"]) for row in csv.DictReader(io.StringIO(text))]
    return ids


@pytest.mark.django_db(transaction=True)
@pytest.mark.slow
def test_a_large_run_splits_into_ranges_that_deliver_once_with_one_tnf(users, events, s3):
    connector = s3.connector(users["owner"], base_path="split")
    export = Export.objects.create(
        name="split",
        owner=users["owner"],
        dataset=events,
        connector=connector,
        file_format=Export.Format.CSV,
        compression=Export.Compression.GZIP,
        rows_per_file=10_000,
    )
    run = queue_run(export, user=users["owner"])
    burst_worker()  # the run's job splits it; the same worker then takes every partition
    run.refresh_from_db()
    assert run.status == Run.Status.SUCCEEDED, run.error_message
    parts = list(run.partitions.order_by("number"))
    assert run.partition_count == len(parts) == 5  # four ranges, and the rows whose key is empty
    assert [(p.low, p.high, p.empty_keys) for p in parts] == [
        ("", "25001", False),
        ("25001", "50001", False),
        ("50001", "75000", False),
        ("75000", "", False),
        ("", "", True),
    ]
    assert all(p.status == RunPartition.Status.SUCCEEDED and p.attempt == 1 and p.worker for p in parts)
    assert [p.row_count for p in parts] == [25_000, 25_000, 24_999, 25_001, 0]
    assert parts[-1].files == []  # an empty range delivers no file
    assert run.row_count == run.rows_done == 100_000
    # Numbered across the run: 1..12 (three files of 10,000 and one of the rest per partition).
    files = list(run.files.order_by("part"))
    assert [f.part for f in files] == list(range(1, 13))
    assert sorted(f.name for f in files) == sorted(f"{run.plan['name_stem']}-{n}.csv.gz" for n in range(1, 13))

    objects = s3.objects(f"split/{export.id}/")
    tnfs = [item for item in objects if "/tnfs/" in item.path]
    assert [item.path for item in tnfs] == [run.tnf_path]
    document = json.loads(tnfs[0].data)
    assert (document["RowCount"], document["FileCount"]) == (100_000, 12)
    assert sorted(entry["Path"] for entry in document["Files"]) == sorted(f.path for f in files)
    data = [item for item in objects if "/tnfs/" not in item.path]
    assert sorted(item.path for item in data) == sorted(f.path for f in files)
    assert sorted(_ids_in_csv([item.data for item in data])) == list(range(1, 100_001))


@pytest.mark.django_db(transaction=True)
@pytest.mark.slow
def test_rows_whose_key_is_empty_get_a_partition_of_their_own(users, tmp_path):
    """SQLite lets a primary key that is not INTEGER hold NULL: the ranges never match
    those rows, the empty-key partition does."""
    path = tmp_path / "nullkey.sqlite3"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE hits (seen BIGINT PRIMARY KEY, label TEXT)")
        conn.execute(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 60000) "
            "INSERT INTO hits SELECT CASE WHEN i % 100 = 0 THEN NULL ELSE i END, 'row ' || i FROM n"
        )
    database = Database.objects.create(name="Null key", url=f"sqlite:///{path}")
    refresh_datasets(database)
    dataset = database.datasets.get(name="hits")
    export = Export.objects.create(
        name="null key",
        owner=users["owner"],
        dataset=dataset,
        file_format=Export.Format.CSV,
        compression=Export.Compression.NONE,
        rows_per_file=1_000_000,
    )
    run = queue_run(export, user=users["owner"])
    burst_worker()
    run.refresh_from_db()
    assert run.status == Run.Status.SUCCEEDED, run.error_message
    parts = list(run.partitions.order_by("number"))
    assert (len(parts), parts[-1].empty_keys, parts[-1].row_count) == (4, True, 600)
    storage = storages["exports"]
    labels = []
    for run_file in run.files.order_by("part"):
        with storage.open(run_file.path, "rb") as fh:
            labels += [row["label"] for row in csv.DictReader(io.StringIO(fh.read().decode()))]
    assert sorted(labels) == sorted(f"row {i}" for i in range(1, 60_001))


@pytest.mark.django_db
def test_only_a_primary_key_splits_a_full_export(users, tmp_path):
    """A cursor (an `updated_at`) may move while the partitions read at different times:
    a full export never splits on it, an incremental window may. Nor custom queries, nor
    SQLite timestamps (compared as text)."""
    path = tmp_path / "keys.sqlite3"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE events (id INTEGER PRIMARY KEY, seen INTEGER, at TIMESTAMP)")
        conn.execute("CREATE TABLE logs (seen INTEGER, at TIMESTAMP PRIMARY KEY)")
        conn.execute("CREATE TABLE nokey (seen INTEGER)")
    database = Database.objects.create(name="Keys", url=f"sqlite:///{path}")
    refresh_datasets(database)

    def key(table, **fields):
        export = Export(owner=users["owner"], dataset=database.datasets.get(name=table), **fields)
        column = partitions.partition_key(export)
        return column["name"] if column else None

    incremental = {"export_type": Export.Type.INCREMENTAL, "cursor_column": "seen"}
    assert key("events") == "id"
    assert key("events", **incremental) == "id"
    assert key("nokey") is None
    assert key("nokey", **incremental) == "seen"
    assert key("logs") is None  # a SQLite timestamp key
    custom = database.datasets.get(name="events")
    custom.kind = custom.Kind.QUERY
    assert partitions.partition_key(Export(owner=users["owner"], dataset=custom)) is None


@pytest.mark.django_db
def test_an_attempt_taken_for_lost_changes_nothing_of_its_successor(users, events):
    export = Export.objects.create(name="superseded", owner=users["owner"], dataset=events)
    run = Run.objects.create(export=export, status=Run.Status.RUNNING, partition_count=1, plan={"folder": "x"})
    RunPartition.objects.create(run=run, number=1, key_column="id", status=RunPartition.Status.RUNNING)
    old = RunPartition.objects.get(run=run)
    # The reconciler: lost, then queued again on attempt 2, which a worker claims.
    assert partitions.failed(old, Run.ErrorCode.WORKER_LOST, "stale")
    assert (
        partitions.retry(RunPartition.objects.get(id=old.id), delay=3600) == "queued"
    )  # the reconciler enqueues it later
    RunPartition.objects.filter(id=old.id).update(status=RunPartition.Status.RUNNING)
    for step in (
        lambda: partitions.report_progress(old, 10),
        lambda: partitions.note(old, ["a"]),
        lambda: partitions.reserve_parts(old, 1),
        lambda: partitions.succeed(old, [], 0),
    ):
        with pytest.raises(partitions.Superseded):
            step()
    assert not partitions.failed(old, Run.ErrorCode.SOURCE_UNAVAILABLE, "late")
    current = RunPartition.objects.get(id=old.id)
    assert (current.attempt, current.status, current.rows_done, current.partial_paths) == (
        2,
        RunPartition.Status.RUNNING,
        0,
        [],
    )


@pytest.mark.django_db
def test_a_partition_left_failed_under_a_running_run_is_retried_by_the_reconciler(users, events):
    export = Export.objects.create(name="left failed", owner=users["owner"], dataset=events)
    run = Run.objects.create(
        export=export, status=Run.Status.RUNNING, partition_count=1, plan={"folder": "x"}, heartbeat_at=timezone.now()
    )
    partition = RunPartition.objects.create(
        run=run,
        number=1,
        key_column="id",
        status=RunPartition.Status.FAILED,
        error_code=Run.ErrorCode.WORKER_LOST,
        error_message="its worker died",
        finished_at=timezone.now() - timedelta(minutes=5),
    )
    tick()
    partition.refresh_from_db()
    assert (partition.status, partition.attempt) == (RunPartition.Status.QUEUED, 2)


@pytest.fixture
def slow_events(tmp_path):
    """200,000 rows of 400 characters: several seconds per partition of 25,000 as gzip CSV."""
    path = events_file(tmp_path / "slow.sqlite3", 200_000, payload_bytes=200)
    database = Database.objects.create(name="Slow", url=f"sqlite:///{path}")
    refresh_datasets(database)
    return database.datasets.get(name="events")


def _horse_of(worker_name: str) -> int:
    """The work horse of the RQ worker named in `worker_name` (machine:RQ worker)."""
    name = worker_name.rsplit(":", 1)[1]
    connection = django_rq.get_connection(settings.EXPORTS_QUEUE)
    [worker] = [worker for worker in Worker.all(connection=connection) if worker.name == name]
    # Between two jobs a worker may have no horse for a moment, or one leaving and one coming.
    return wait_until(lambda: len(children_of(worker.pid)) == 1 and children_of(worker.pid)[0], 10, "one horse")


@pytest.mark.django_db(transaction=True)
@pytest.mark.slow
def test_a_killed_partition_is_retried_alone_and_the_run_delivers_each_row_once(users, slow_events, s3):
    connector = s3.connector(users["owner"], base_path="killed-partition")
    export = Export.objects.create(
        name="killed partition",
        owner=users["owner"],
        dataset=slow_events,
        connector=connector,
        file_format=Export.Format.CSV,
        compression=Export.Compression.GZIP,
        rows_per_file=10_000,
    )
    run = queue_run(export, user=users["owner"])
    workers = [start_worker(), start_worker()]
    try:
        # Once one partition is delivered, kill the horse of another one mid-read.
        victim = wait_until(
            lambda: (
                run.partitions.filter(status=RunPartition.Status.SUCCEEDED).exists()
                and run.partitions.filter(status=RunPartition.Status.RUNNING, rows_done__gt=0).first()
            ),
            what="a partition delivered and another one reading",
        )
        horse = _horse_of(victim.worker)
        killed = RunPartition.objects.get(id=victim.id)
        os.kill(horse, signal.SIGKILL)
        if killed.status != RunPartition.Status.RUNNING:  # it had just finished: the horse ran the next one
            killed = None
        wait_until(lambda: Run.objects.get(id=run.id).status not in Run.ACTIVE, timeout=240, what="the run to finish")
        assert all(worker.poll() is None for worker in workers), "the workers themselves keep serving"
    finally:
        for worker in workers:
            stop(worker)  # idle by now: a warm stop, that holds no lock of the dispatcher's
    run.refresh_from_db()
    assert run.status == Run.Status.SUCCEEDED, run.error_message
    parts = {p.number: p for p in run.partitions.all()}
    assert len(parts) == 9  # eight ranges, and the empty keys
    assert sorted(p.attempt for p in parts.values()) == [1] * 8 + [2], "only the killed one ran again"
    if killed is not None:
        assert parts[killed.number].attempt == 2
    assert all(p.status == RunPartition.Status.SUCCEEDED for p in parts.values())

    objects = s3.objects(f"killed-partition/{export.id}/")
    assert [item.path for item in objects if "/tnfs/" in item.path] == [run.tnf_path]
    data = [item for item in objects if "/tnfs/" not in item.path]
    assert sorted(item.path for item in data) == sorted(run.files.values_list("path", flat=True))
    assert sorted(_ids_in_csv([item.data for item in data])) == list(range(1, 200_001))
    assert run.row_count == 200_000


@pytest.mark.django_db(transaction=True)
@pytest.mark.slow
def test_cancelling_a_partitioned_run_stops_every_partition_and_leaves_nothing(users, slow_events, s3):
    connector = s3.connector(users["owner"], base_path="cancelled-partitions")
    export = Export.objects.create(
        name="cancelled",
        owner=users["owner"],
        dataset=slow_events,
        connector=connector,
        file_format=Export.Format.CSV,
        compression=Export.Compression.GZIP,
        rows_per_file=10_000,
    )
    run = queue_run(export, user=users["owner"])
    workers = [start_worker(), start_worker()]
    try:
        wait_until(
            lambda: run.partitions.filter(status=RunPartition.Status.SUCCEEDED).exists(),
            what="a partition delivered",
        )
        run.refresh_from_db()
        assert 0 < run.rows_done < 200_000  # the sum of the partitions'
        actions.cancel(users["owner"], run)
        wait_until(
            lambda: (
                not run.partitions.filter(status__in=[RunPartition.Status.RUNNING, RunPartition.Status.QUEUED]).exists()
            ),
            what="every partition to stop",
        )
        tick()  # clears what the partitions still held, if they had not yet
        prefix = f"cancelled-partitions/{export.id}/"
        wait_until(
            lambda: not s3.client().list_objects_v2(Bucket=S3_BUCKET, Prefix=prefix).get("Contents"),
            timeout=30,
            what="the delivered partitions' files to be removed",
        )
    finally:
        for worker in workers:
            stop(worker)
    run.refresh_from_db()
    assert run.status == Run.Status.CANCELLED
    assert s3.objects(prefix) == []
    assert all(not p.files for p in run.partitions.all())
    assert {p.status for p in run.partitions.all()} <= {RunPartition.Status.SUCCEEDED, RunPartition.Status.CANCELLED}
