"""A full work disk: refused before reading when the estimate can't fit, WORK_DISK_FULL
when the disk fills while writing; either way the work folder is emptied and the run is
retried later. The disk is a real one: a small tmpfs (root only, as on CI)."""

from __future__ import annotations

import os
import subprocess
import uuid

import pytest

from exports import actions
from exports.actions import queue_run
from exports.jobs import run_export
from exports.models import Database, Export, Run, refresh_datasets
from exports.sources import connection_lost
from tests.services import events_file

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def small_disk(tmp_path):
    """A 1 MiB disk, mounted for the test."""
    mount = tmp_path / "disk"
    mount.mkdir()
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)], capture_output=True)
    if result.returncode != 0:
        if os.environ.get("CI"):
            pytest.fail(f"cannot mount a tmpfs: {result.stderr.decode()}")
        pytest.skip(f"cannot mount a tmpfs (needs root): {result.stderr.decode().strip()}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=True)


@pytest.fixture
def events(tmp_path, db):
    """20,000 rows of 200 characters: 4 MB as CSV."""
    path = events_file(tmp_path / "events.sqlite3", 20_000)
    database = Database.objects.create(name="Events", url=f"sqlite:///{path}")
    refresh_datasets(database)
    return database.datasets.get(name="events")


def test_a_disk_that_fills_while_writing_fails_the_run_with_work_disk_full_and_it_is_retried(
    users, events, small_disk, settings
):
    settings.EXPORT_WORK_DIR = small_disk
    settings.EXPORT_WORK_MIN_FREE_BYTES = 0  # let it start: the estimate alone fits
    leftover = small_disk / str(uuid.uuid4())  # a killed worker's folder
    leftover.mkdir()
    (leftover / "part-1.csv").write_bytes(b"x" * 1000)
    export = Export.objects.create(
        name="too big",
        owner=users["owner"],
        dataset=events,
        compression=Export.Compression.NONE,
    )
    run = queue_run(export, user=users["owner"])

    run_export(str(run.id))

    run.refresh_from_db()
    assert run.status == Run.Status.FAILED
    assert run.error_code == Run.ErrorCode.WORK_DISK_FULL
    assert "disk filled up" in run.error_message
    assert list(small_disk.iterdir()) == []  # its own folder and the leftover are gone
    assert run.is_relaunchable
    retry = actions.retry(run, run.finished_at)  # EXPORT_RETRY_BACKOFF is 0 in the tests
    assert (retry.trigger, retry.attempt) == (Run.Trigger.RETRY, 2)


def test_a_run_whose_estimate_does_not_fit_is_refused_before_it_reads(users, events, small_disk, settings):
    settings.EXPORT_WORK_DIR = small_disk
    export = Export.objects.create(
        name="too big", owner=users["owner"], dataset=events, compression=Export.Compression.NONE
    )
    run = queue_run(export, user=users["owner"])

    run_export(str(run.id))

    run.refresh_from_db()
    assert run.error_code == Run.ErrorCode.WORK_DISK_FULL
    assert "needs about" in run.error_message
    assert "kept free" in run.error_message
    assert run.rows_done == 0
    assert list(small_disk.iterdir()) == []
    assert settings.EXPORT_WORK_MIN_FREE_BYTES > 1024**2


@pytest.mark.parametrize(
    "message",
    [
        "[libpq] Execution error [PGRES_FATAL_ERROR]: FATAL: terminating connection due to administrator command",
        "server closed the connection unexpectedly This probably means the server terminated abnormally",
        "Failed to begin transaction: no connection to the server",
        "could not receive data from server: Connection reset by peer",
        "FATAL: the database system is shutting down",
        "SSL SYSCALL error: EOF detected",
    ],
)
def test_a_dropped_connection_is_told_apart_from_a_query_error(message):
    assert connection_lost(message)


@pytest.mark.parametrize(
    "message",
    [
        'relation "events" does not exist',
        'column "x" does not exist',
        "division by zero",
        'syntax error at or near "FROM"',
        "permission denied for table events",
        "canceling statement due to statement timeout",
    ],
)
def test_a_query_error_is_not_a_dropped_connection(message):
    assert not connection_lost(message)
