"""The scheduler as it runs in production, several at once, with real workers on the
real Redis; a worker killed mid-run; and Redis losing its jobs."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta

import django_rq
import pytest
from django.conf import settings

from exports.actions import queue_run
from exports.models import Database, Export, Run, SkippedSlot, refresh_datasets
from exports.schedule import for_export
from exports.scheduler import tick
from tests.conftest import BASE_DIR, _test_database_url

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


def children_of(pid: int) -> list[int]:
    """Direct children, from /proc (RQ's work horse runs in a session of its own)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as fh:
                    fields = fh.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(entry))
    return found


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
    path = tmp_path / "slow.sqlite3"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE events (id INTEGER PRIMARY KEY, payload TEXT NOT NULL)")
        conn.execute(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 300000) "
            "INSERT INTO events SELECT i, hex(randomblob(100)) FROM n"
        )
    database = Database.objects.create(name="Slow", url=f"sqlite:///{path}")
    refresh_datasets(database)
    return database.datasets.get(name="events")


def test_a_worker_killed_mid_run_is_lost_then_retried_into_one_complete_delivery(users, slow_dataset, s3):
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
        for pid in horses:  # the work horse running the export, then the worker itself
            os.kill(pid, signal.SIGKILL)
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait()
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
