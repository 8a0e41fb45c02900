"""One-shot Desktop exports end to end: launch, a real RQ worker, the report, the files."""

from __future__ import annotations

import hashlib
import shutil
import sqlite3
from pathlib import Path

import django_rq
import pytest
from django.conf import settings
from django.core.files.storage import storages

from exports import actions
from exports.actions import queue_run
from exports.demo import build_demo_database
from exports.jobs import RunCancelled, _Progress
from exports.models import Database, Export, Run, refresh_datasets
from tests.conftest import start_worker_in_background, wait_until_running
from tests.exports.readback import normalise_rows, read_file

pytestmark = pytest.mark.django_db(transaction=True)


def make_export(owner, dataset, **fields) -> Export:
    fields.setdefault("name", "Test export")
    return Export.objects.create(owner=owner, dataset=dataset, **fields)


def delivered_paths(run: Run) -> list[Path]:
    storage = storages["exports"]
    return [Path(storage.path(f.path)) for f in run.files.order_by("part")]


def read_run(run: Run, export: Export) -> list[dict]:
    rows = []
    for path in delivered_paths(run):
        rows += read_file(path, export.file_format, delimiter=export.csv_delimiter)
    return rows


def source_rows(path: Path, sql: str, params=()) -> list[dict]:
    with sqlite3.connect(path) as conn:
        conn.row_factory = sqlite3.Row
        return [dict(row) for row in conn.execute(sql, params)]


def columns_of(dataset, names=None) -> list[dict]:
    return [c for c in dataset.columns if names is None or c["name"] in names]


def test_it_exports_a_whole_table_as_gzip_csv(users, demo_database, demo_path, worker):
    dataset = demo_database.datasets.get(name="interactions")
    export = make_export(users["owner"], dataset, file_format="csv", compression="gzip")
    run = queue_run(export, user=users["owner"])
    assert run.status == Run.Status.QUEUED
    worker()
    run.refresh_from_db()
    assert run.status == Run.Status.SUCCEEDED, run.error_message
    assert run.row_count == 5_000 == dataset.estimated_rows
    assert run.started_at <= run.finished_at
    assert run.duration.total_seconds() >= 0
    [run_file] = run.files.all()
    assert run_file.name.endswith("-1.csv.gz")
    assert run_file.rows == 5_000
    columns = columns_of(dataset)
    exported = normalise_rows(read_run(run, export), columns, milliseconds=True)
    expected = normalise_rows(source_rows(demo_path, "SELECT * FROM interactions"), columns, milliseconds=True)
    assert exported == expected
    export.refresh_from_db()
    assert export.status == Export.Status.FINISHED


@pytest.mark.parametrize(
    ("file_format", "compression", "extension"),
    [
        ("ndjson", "gzip", "json.gz"),
        ("parquet", "none", "parquet"),
        ("parquet", "gzip", "gz.parquet"),
        ("csv", "none", "csv"),
    ],
)
def test_it_exports_filtered_columns_in_every_format(
    users, demo_database, demo_path, worker, file_format, compression, extension
):
    dataset = demo_database.datasets.get(name="interactions")
    names = ["id", "occurred_at", "channel", "campaign", "revenue"]
    export = make_export(
        users["owner"],
        dataset,
        file_format=file_format,
        compression=compression,
        rows_per_file=700,
        columns=names,
        csv_delimiter=";",
        filters=[
            {"column": "channel", "operator": "in", "value": "email, sms, web"},
            {"column": "occurred_at", "operator": "gte", "value": "2025-06-01"},
            {"column": "id", "operator": "lte", "value": "4500"},
        ],
    )
    queue_run(export, user=users["owner"])
    worker()
    run = export.runs.get()
    assert run.status == Run.Status.SUCCEEDED, run.error_message
    expected_rows = source_rows(
        demo_path,
        "SELECT id, occurred_at, channel, campaign, revenue FROM interactions WHERE channel IN ('email','sms','web') "
        "AND strftime('%Y-%m-%dT%H:%M:%f', occurred_at) >= '2025-06-01T00:00:00.000' AND id <= 4500",
    )
    assert 700 < len(expected_rows) < 4500  # the filters bite, and several parts are needed
    files = list(run.files.order_by("part"))
    assert [f.part for f in files] == list(range(1, len(files) + 1))
    assert all(f.name.endswith(f"-{f.part}.{extension}") for f in files)
    assert all(f.rows == 700 for f in files[:-1])
    assert 0 < files[-1].rows <= 700
    assert run.row_count == len(expected_rows) == sum(f.rows for f in files)
    exported = read_run(run, export)
    assert list(exported[0]) == names
    columns = [dataset.column(name) for name in names]
    assert normalise_rows(exported, columns, milliseconds=True) == normalise_rows(
        expected_rows, columns, milliseconds=True
    )


def test_it_records_size_and_sha256_of_every_file(users, demo_database, worker):
    export = make_export(
        users["owner"],
        demo_database.datasets.get(name="orders"),
        file_format="parquet",
        compression="snappy",
        rows_per_file=100,
    )
    queue_run(export, user=users["owner"])
    worker()
    run = export.runs.get()
    assert run.status == Run.Status.SUCCEEDED, run.error_message
    for run_file, path in zip(run.files.order_by("part"), delivered_paths(run), strict=True):
        assert run_file.size_bytes == path.stat().st_size
        assert run_file.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert run.bytes == sum(f.size_bytes for f in run.files.all())


def test_a_duplicated_job_does_nothing(users, demo_database, worker):
    export = make_export(users["owner"], demo_database.datasets.get(name="subscriptions"))
    run = queue_run(export, user=users["owner"])
    queue = django_rq.get_queue(settings.EXPORTS_QUEUE)
    duplicate = queue.enqueue("exports.jobs.run_export", str(run.id), job_id=f"{run.id}-again")
    worker()
    run.refresh_from_db()
    assert run.status == Run.Status.SUCCEEDED
    assert run.files.count() == 1
    duplicate.refresh()
    assert duplicate.return_value() == "skipped"
    assert Run.objects.filter(export=export).count() == 1


def test_a_second_launch_while_running_is_refused_with_the_same_run(users, demo_database):
    export = make_export(users["owner"], demo_database.datasets.get(name="orders"))
    first = actions.launch(users["owner"], export)
    with pytest.raises(actions.ActionRefused) as refused:
        actions.launch(users["owner"], export)
    assert (refused.value.code, refused.value.run_id, refused.value.already) == ("ALREADY_RUNNING", first.id, True)
    # Past the checks, the partial unique index still refuses a second active run.
    with pytest.raises(actions.ActionRefused, match="already has a run"):
        queue_run(export, user=users["owner"])
    assert export.runs.count() == 1
    assert django_rq.get_queue(settings.EXPORTS_QUEUE).count == 1


def _assert_failed_cleanly(run: Run, code: str, words: str):
    run.refresh_from_db()
    assert run.status == Run.Status.FAILED
    assert run.error_code == code
    assert words in run.error_message
    assert run.files.count() == 0
    assert not run.is_downloadable
    folder = Path(storages["exports"].path(f"{run.export_id}/{run.id}"))
    assert not folder.exists() or not any(folder.iterdir())
    assert not (settings.EXPORT_WORK_DIR / str(run.id)).exists()


def test_a_missing_source_file_fails_with_source_unavailable(users, demo_database, demo_path, tmp_path, worker):
    copy = tmp_path / "gone.sqlite3"
    shutil.copy(demo_path, copy)
    database = Database.objects.create(name="Soon gone", url=f"sqlite:///{copy}")
    refresh_datasets(database)
    export = make_export(users["owner"], database.datasets.get(name="orders"))
    run = queue_run(export, user=users["owner"])
    copy.unlink()
    worker()
    _assert_failed_cleanly(run, "SOURCE_UNAVAILABLE", "does not exist")
    assert not copy.exists()  # reading never creates an empty database in its place


def test_an_unreachable_postgresql_source_fails_with_source_unavailable(users, demo_database, worker):
    database = Database.objects.create(name="Down", url="postgresql://postgres@127.0.0.1:1/nowhere")
    dataset = database.datasets.create(name="t", columns=[{"name": "id", "type": "integer"}])
    export = make_export(users["owner"], dataset)
    run = queue_run(export, user=users["owner"])
    worker()
    _assert_failed_cleanly(run, "SOURCE_UNAVAILABLE", "cannot connect")


def _copy_of_demo(demo_path, tmp_path, name) -> tuple[Database, Path]:
    copy = tmp_path / f"{name}.sqlite3"
    shutil.copy(demo_path, copy)
    database = Database.objects.create(name=name, url=f"sqlite:///{copy}")
    refresh_datasets(database)
    return database, copy


def test_a_dropped_table_fails_with_a_clear_message(users, demo_database, demo_path, tmp_path, worker):
    database, copy = _copy_of_demo(demo_path, tmp_path, "dropped")
    export = make_export(users["owner"], database.datasets.get(name="orders"))
    run = queue_run(export, user=users["owner"])
    with sqlite3.connect(copy) as conn:
        conn.execute("DROP TABLE orders")
    worker()
    _assert_failed_cleanly(run, "SOURCE_QUERY_FAILED", "the table orders no longer exists")


def test_a_dropped_column_fails_with_a_clear_message(users, demo_database, demo_path, tmp_path, worker):
    database, copy = _copy_of_demo(demo_path, tmp_path, "dropped-column")
    export = make_export(users["owner"], database.datasets.get(name="orders"), columns=["id", "coupon_code"])
    run = queue_run(export, user=users["owner"])
    with sqlite3.connect(copy) as conn:
        conn.execute("ALTER TABLE orders DROP COLUMN coupon_code")
    worker()
    _assert_failed_cleanly(run, "SOURCE_QUERY_FAILED", "coupon_code")


def test_an_invalid_stored_filter_fails_the_run_with_its_reason(users, demo_database, worker):
    export = make_export(
        users["owner"],
        demo_database.datasets.get(name="orders"),
        filters=[{"column": "total_amount", "operator": "gt", "value": "a lot"}],
    )
    run = queue_run(export, user=users["owner"])
    worker()
    _assert_failed_cleanly(run, "SOURCE_QUERY_FAILED", "'a lot' is not a decimal number")


def test_a_failure_after_some_files_were_written_leaves_no_file(users, db, tmp_path, worker):
    path = tmp_path / "bad.sqlite3"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE events (id INTEGER PRIMARY KEY, at TIMESTAMP)")
        conn.executemany(
            "INSERT INTO events VALUES (?, ?)",
            ((i, "not a time" if i == 150_000 else "2026-01-01 00:00:00") for i in range(1, 200_001)),
        )
    database = Database.objects.create(name="Bad data", url=f"sqlite:///{path}")
    refresh_datasets(database)
    export = make_export(users["owner"], database.datasets.get(name="events"), rows_per_file=20_000)
    run = queue_run(export, user=users["owner"])
    worker()
    _assert_failed_cleanly(run, "SOURCE_QUERY_FAILED", "'not a time'")


def test_progress_is_recorded_and_a_cancelled_run_stops(users, demo_database):
    export = make_export(users["owner"], demo_database.datasets.get(name="orders"))
    run = queue_run(export, user=users["owner"])
    run = Run.claim(run.id)
    progress = _Progress(run.report_progress, interval=0)
    progress(1_234)
    run.refresh_from_db()
    assert run.rows_done == 1_234
    assert run.progress_percent is not None
    Run.objects.filter(id=run.id).update(status=Run.Status.CANCELLED)
    with pytest.raises(RunCancelled):
        progress(2_000)
    assert Run.claim(run.id) is None  # nothing claims a run that is not queued


def test_cancelling_a_running_export_stops_it_with_nothing_delivered(users, db, tmp_path):
    path = tmp_path / "big.sqlite3"
    build_demo_database(path, profiles=1_000, interactions=600_000)
    database = Database.objects.create(name="Big", url=f"sqlite:///{path}")
    refresh_datasets(database)
    export = make_export(
        users["owner"],
        database.datasets.get(name="interactions"),
        file_format="ndjson",
        compression="gzip",
        rows_per_file=50_000,
    )
    run = queue_run(export, user=users["owner"])
    worker = start_worker_in_background()
    try:
        wait_until_running(run)
        assert 0 < run.rows_done < 600_000, run.rows_done
        assert actions.cancel(users["owner"], run).status == Run.Status.CANCELLED
        _, stderr = worker.communicate(timeout=120)
    finally:
        if worker.poll() is None:
            worker.kill()
    assert worker.returncode == 0, stderr[-2000:]
    run.refresh_from_db()
    assert run.status == Run.Status.CANCELLED
    assert run.error_code == "CANCELLED"
    assert run.files.count() == 0
    assert run.row_count is None
    folder = Path(storages["exports"].path(f"{export.id}/{run.id}"))
    assert not folder.exists() or not any(folder.iterdir())
    assert not (settings.EXPORT_WORK_DIR / str(run.id)).exists()
