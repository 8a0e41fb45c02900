"""The scheduler as it runs in production, several at once, with real workers on the
real Redis; a worker killed mid-run; and Redis losing its jobs."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta

import django_rq
import psycopg
import pytest
from django.conf import settings

from exports.actions import queue_run
from exports.models import Database, Export, Run, SkippedSlot, refresh_datasets
from exports.schedule import for_export
from exports.scheduler import tick
from tests.conftest import BASE_DIR, _test_database_url
from tests.services import children_of, events_file

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

START = datetime(2026, 3, 27, 0, 0, tzinfo=UTC)


def _env() -> dict:
    return dict(os.environ, DATABASE_URL=_test_database_url(), DJANGO_SETTINGS_MODULE="tests.settings")


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


def scheduler_at(moments: list[datetime]) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "manage.py", "scheduler", "--at", ",".join(moment.isoformat() for moment in moments)],
        cwd=BASE_DIR,
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_until(condition, timeout=120, what="the condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def test_two_schedulers_and_two_workers_make_exactly_one_run_per_due_slot(users, demo_database):
    dataset = demo_database.datasets.get(name="profiles")
    cadences = [("day", 1, "Europe/Brussels"), ("hour", 3, "UTC"), ("hour", 6, "America/New_York"), ("hour", 12, "UTC")]
    exports = []
    for unit, interval, zone in cadences:
        export = Export.objects.create(
            name=f"every {interval} {unit}",
            owner=users["owner"],
            dataset=dataset,
            export_type=Export.Type.INCREMENTAL if unit == "hour" else Export.Type.PERIODIC_FULL,
            cursor_column="id",
            schedule_unit=unit,
            schedule_interval=interval,
            schedule_start=START,
            schedule_end=START + timedelta(days=10),
            schedule_timezone=zone,
            status=Export.Status.SCHEDULED,
            next_run_at=START,
        )
        exports.append(export)
    # Two simulated days (across the spring-forward night) in 30-minute ticks. Each batch
    # of ticks spans under 3 hours, so it holds at most one slot per export, and the
    # workers finish its runs before the next batch: no slot finds its previous run going.
    moments = [START + timedelta(minutes=30 * n) for n in range(96)]
    workers = [start_worker(), start_worker()]
    try:
        for batch_start in range(0, len(moments), 6):
            batch = moments[batch_start : batch_start + 6]
            schedulers = [scheduler_at(batch), scheduler_at(batch)]
            for process in schedulers:
                _out, err = process.communicate(timeout=300)
                assert process.returncode == 0, err[-3000:]
            wait_until(
                lambda: not Run.objects.filter(status__in=Run.ACTIVE).exists(), what="the workers to finish the runs"
            )
    finally:
        for process in workers:
            stop(process)

    end = moments[-1]
    for export in exports:
        expected = set()
        plan = for_export(export)
        cursor = START - timedelta(seconds=1)
        while (following := plan.next_after(cursor)) is not None and following <= end:
            expected.add(following)
            cursor = following
        slots = list(export.runs.values_list("scheduled_for", flat=True))
        skipped = set(SkippedSlot.objects.filter(export=export).values_list("scheduled_for", flat=True))
        assert len(slots) == len(set(slots)), f"{export.name}: a slot ran twice"
        assert set(slots) | skipped == expected, export.name
        assert not skipped, f"{export.name}: skipped {skipped}"
        assert set(export.runs.values_list("status", flat=True)) == {Run.Status.SUCCEEDED}
    assert Run.objects.count() == 2 * 1 + 16 + 8 + 4  # 2 days: daily 2, every 3 h 16, 6 h 8, 12 h 4


@pytest.fixture
def slow_dataset(tmp_path):
    """300,000 rows of 200 characters: several seconds to export as gzip CSV."""
    path = events_file(tmp_path / "slow.sqlite3", 300_000)
    database = Database.objects.create(name="Slow", url=f"sqlite:///{path}")
    refresh_datasets(database)
    return database.datasets.get(name="events")


def test_a_worker_whose_machine_vanished_is_lost_then_retried_into_one_complete_delivery(users, slow_dataset, s3):
    """The worker and its horse die together (the machine stopped): nobody saw the horse
    die, so the run's silent heartbeat tells the reconciler."""
    connector = s3.connector(users["owner"], base_path="killed")
    export = Export.objects.create(
        name="slow",
        owner=users["owner"],
        dataset=slow_dataset,
        connector=connector,
        rows_per_file=100_000,
        compression=Export.Compression.GZIP,
    )
    first = queue_run(export, user=users["owner"])
    worker = start_worker()
    try:
        wait_until(lambda: Run.objects.get(id=first.id).rows_done > 0, timeout=60, what="the run to start writing rows")
        horses = children_of(worker.pid)
        assert horses, "the worker has no work horse"
        os.killpg(worker.pid, signal.SIGKILL)  # the worker first: it would notice its horse's death
        worker.wait()
        for pid in horses:
            os.kill(pid, signal.SIGKILL)
        assert Run.objects.get(id=first.id).status == Run.Status.RUNNING
        wait_until(lambda: bool(tick().lost), timeout=30, what="the reconciler to notice")
        first.refresh_from_db()
        assert first.status == Run.Status.FAILED
        assert first.error_code == Run.ErrorCode.WORKER_LOST
        tick()  # retries come after the backoff (none in the tests), on this tick or the last
        retry = Run.objects.get(relaunch_of=first)
        assert retry.relaunch_of_id == first.id
        assert retry.attempt == 2
        assert retry.trigger == Run.Trigger.RETRY
        worker = start_worker()
        wait_until(lambda: Run.objects.get(id=retry.id).status not in Run.ACTIVE, what="the retry to finish")
    finally:
        stop(worker, signal.SIGKILL)
    retry.refresh_from_db()
    assert retry.status == Run.Status.SUCCEEDED, retry.error_message
    objects = s3.objects(f"killed/{export.id}/")
    tnfs = [item for item in objects if "/tnfs/" in item.path]
    assert [item.path for item in tnfs] == [retry.tnf_path]  # the broken attempt left no TNF
    assert retry.row_count == 300_000
    assert first.files.count() == 0
    assert not (settings.EXPORT_WORK_DIR / str(first.id)).exists()


def test_runs_queued_when_redis_lost_its_jobs_still_run(users, demo_database, worker):
    dataset = demo_database.datasets.get(name="profiles")
    runs = []
    for n in range(3):
        export = Export.objects.create(name=f"queued {n}", owner=users["owner"], dataset=dataset)
        runs.append(queue_run(export, user=users["owner"]))
    django_rq.get_connection(settings.EXPORTS_QUEUE).flushdb()  # Redis restarted empty
    assert django_rq.get_queue(settings.EXPORTS_QUEUE).count == 0

    report = tick()

    # The two its organisation had with the workers (EXPORT_MAX_RUNS_PER_ORG) go back to
    # Redis; the third still waits its turn in the database, and goes when one ends.
    assert {run.id for run in report.requeued} == {runs[0].id, runs[1].id}
    assert Run.objects.get(id=runs[2].id).dispatched_at is None
    worker()
    assert set(Run.objects.filter(id__in=[run.id for run in runs]).values_list("status", flat=True)) == {
        Run.Status.SUCCEEDED
    }
    assert tick().requeued == []


def test_a_killed_work_horse_is_lost_at_once_and_its_retry_delivers_once(users, slow_dataset, s3):
    """RQ sees its horse die the moment it happens: the run is WORKER_LOST within a
    second or two, long before a heartbeat could go stale, and what it had uploaded is gone."""
    connector = s3.connector(users["owner"], base_path="horse")
    export = Export.objects.create(
        name="slow",
        owner=users["owner"],
        dataset=slow_dataset,
        connector=connector,
        rows_per_file=10_000,
        compression=Export.Compression.NONE,
    )
    first = queue_run(export, user=users["owner"])
    worker = start_worker()
    try:
        # Killed while it uploads its parts: some are in the bucket already.
        wait_until(
            lambda: len(Run.objects.get(id=first.id).partial_paths) > 1, timeout=90, what="the run to upload parts"
        )
        [horse] = children_of(worker.pid)
        os.kill(horse, signal.SIGKILL)
        killed_at = time.monotonic()
        wait_until(
            lambda: Run.objects.get(id=first.id).status == Run.Status.FAILED, timeout=10, what="the run to be lost"
        )
        noticed_in = time.monotonic() - killed_at
        # Lost first, then its partial upload removed (a run that ended meanwhile keeps its files).
        wait_until(lambda: not Run.objects.get(id=first.id).partial_paths, timeout=30, what="the cleanup")
        first.refresh_from_db()
        assert first.error_code == Run.ErrorCode.WORKER_LOST
        assert "signal 9" in first.error_message
        assert noticed_in < settings.EXPORT_HEARTBEAT_TIMEOUT, "noticed by the heartbeat, not by RQ"
        assert s3.objects(f"horse/{export.id}/") == []  # its partial upload was removed
        assert worker.poll() is None, "the worker itself keeps serving"
        retry = tick().retried[0]
        assert (retry.relaunch_of_id, retry.attempt, retry.trigger) == (first.id, 2, Run.Trigger.RETRY)
        wait_until(lambda: Run.objects.get(id=retry.id).status not in Run.ACTIVE, what="the retry to finish")
    finally:
        stop(worker, signal.SIGKILL)
    retry.refresh_from_db()
    assert retry.status == Run.Status.SUCCEEDED, retry.error_message
    objects = s3.objects(f"horse/{export.id}/")
    assert sorted(item.path for item in objects if "/tnfs/" in item.path) == [retry.tnf_path]
    assert sorted(item.path for item in objects if "/tnfs/" not in item.path) == sorted(
        retry.files.values_list("path", flat=True)
    )
    assert retry.row_count == 300_000


def test_sigterm_puts_the_run_back_in_the_queue_and_another_worker_delivers_it(users, slow_dataset):
    """A deploy: the stopping worker's run goes back to the queue at its next batch,
    keeps its attempt, and the next worker delivers it. No failed run."""
    export = Export.objects.create(
        name="deployed", owner=users["owner"], dataset=slow_dataset, compression=Export.Compression.GZIP
    )
    run = queue_run(export, user=users["owner"])
    old = start_worker()
    try:
        wait_until(lambda: Run.objects.get(id=run.id).rows_done > 0, timeout=60, what="the run to start writing rows")
        os.kill(old.pid, signal.SIGTERM)
        old.wait(timeout=30)  # it stops at the next batch, not at the end of the run
        run.refresh_from_db()
        assert run.status == Run.Status.QUEUED
        assert (run.attempt, run.rows_done, run.started_at) == (1, 0, None)
        assert not (settings.EXPORT_WORK_DIR / str(run.id)).exists()
        # The stopping worker handed it back to the queue (no scheduler tick needed).
        assert run.dispatched_at is not None
        new = start_worker()
        try:
            wait_until(lambda: Run.objects.get(id=run.id).status not in Run.ACTIVE, what="the run to finish")
        finally:
            stop(new)
    finally:
        stop(old, signal.SIGKILL)
    run.refresh_from_db()
    assert run.status == Run.Status.SUCCEEDED, run.error_message
    assert run.row_count == 300_000
    assert Run.objects.filter(export=export).count() == 1  # the same run: no retry, no failure


def test_a_source_connection_cut_mid_run_is_source_unavailable_and_retried(users, pg_source_url, pg_table):
    """An administrator's pg_terminate_backend (a restart, a failover) while the run reads:
    SOURCE_UNAVAILABLE, not a query failure, and the automatic retry delivers every row."""

    view = f"{pg_table}_slow"
    with psycopg.connect(pg_source_url, autocommit=True) as conn:
        conn.execute(
            f'CREATE TABLE "{pg_table}" AS SELECT g AS id, md5(g::text) || md5((g + 1)::text) AS payload '
            "FROM generate_series(1, 600000) AS g"
        )
        # Reading it takes a few seconds: a pause every 20,000 rows.
        conn.execute(
            f'CREATE FUNCTION "{pg_table}_pace"(i int) RETURNS int LANGUAGE plpgsql AS $$ '
            "BEGIN IF i % 20000 = 0 THEN PERFORM pg_sleep(0.1); END IF; RETURN i; END $$"
        )
        conn.execute(f'CREATE VIEW "{view}" AS SELECT "{pg_table}_pace"(id) AS id, payload FROM "{pg_table}"')
    database = Database.objects.create(name="Warehouse", url=pg_source_url)
    refresh_datasets(database)
    export = Export.objects.create(
        name="cut", owner=users["owner"], dataset=database.datasets.get(name=view), rows_per_file=100_000
    )
    first = queue_run(export, user=users["owner"])
    worker = start_worker()
    try:
        wait_until(lambda: Run.objects.get(id=first.id).rows_done > 0, timeout=60, what="the run to read rows")
        with psycopg.connect(pg_source_url, autocommit=True) as admin:
            cut = admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE pid <> pg_backend_pid() AND query LIKE %s",
                [f'%"{view}"%'],
            ).fetchall()
        assert cut, "no reading session found"
        wait_until(lambda: Run.objects.get(id=first.id).status not in Run.ACTIVE, timeout=30, what="the run to fail")
        first.refresh_from_db()
        if first.status == Run.Status.SUCCEEDED:
            pytest.fail("the run finished before its connection was cut: make the table bigger")
        assert first.error_code == Run.ErrorCode.SOURCE_UNAVAILABLE, first.error_message
        assert "connection" in first.error_message
        retry = tick().retried[0]
        wait_until(lambda: Run.objects.get(id=retry.id).status not in Run.ACTIVE, what="the retry to finish")
    finally:
        stop(worker)
        with psycopg.connect(pg_source_url, autocommit=True) as conn:
            conn.execute(f'DROP VIEW IF EXISTS "{view}"')
            conn.execute(f'DROP FUNCTION IF EXISTS "{pg_table}_pace"')
    retry.refresh_from_db()
    assert retry.status == Run.Status.SUCCEEDED, retry.error_message
    assert retry.row_count == 600_000
    assert first.files.count() == 0
