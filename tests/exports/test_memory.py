"""Memory stays bounded by the batch size, whatever the table size.

The worker records the peak resident memory of the process that ran the export
(`Run.peak_rss_bytes`). Exporting 1,000,000 rows must peak no higher than exporting
300,000 rows (a few batches in, once buffers have warmed up), give or take allocator
noise, and stay far below the data's size.
"""

from __future__ import annotations

import pytest

from exports.actions import queue_run
from exports.demo import build_demo_database
from exports.models import Database, Export, Run, refresh_datasets

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]
MB = 1024 * 1024


@pytest.fixture(scope="module")
def million_rows(tmp_path_factory):
    path = tmp_path_factory.mktemp("million") / "million.sqlite3"
    build_demo_database(path, profiles=2_000, interactions=1_000_000)
    return path


def _export(users, dataset, worker, **fields) -> Run:
    export = Export.objects.create(name="big", owner=users["owner"], dataset=dataset, **fields)
    run = queue_run(export, user=users["owner"])
    worker(timeout=600)
    run.refresh_from_db()
    assert run.status == Run.Status.SUCCEEDED, run.error_message
    return run


def test_peak_memory_does_not_grow_with_row_count(users, million_rows, worker):
    database = Database.objects.create(name="Million", url=f"sqlite:///{million_rows}")
    refresh_datasets(database)
    dataset = database.datasets.get(name="interactions")
    small = _export(
        users,
        dataset,
        worker,
        file_format="csv",
        compression="gzip",
        filters=[{"column": "id", "operator": "lte", "value": "300000"}],
    )
    large = _export(users, dataset, worker, file_format="csv", compression="gzip")
    parquet = _export(users, dataset, worker, file_format="parquet", compression="snappy")
    assert small.row_count == 300_000
    assert large.row_count == parquet.row_count == 1_000_000
    print(
        f"\npeak RSS: 300k rows csv.gz {small.peak_rss_bytes / MB:.0f} MB, "
        f"1M rows csv.gz {large.peak_rss_bytes / MB:.0f} MB, 1M rows parquet {parquet.peak_rss_bytes / MB:.0f} MB; "
        f"1M rows of csv.gz are {large.bytes / MB:.0f} MB"
    )
    assert large.peak_rss_bytes <= small.peak_rss_bytes * 1.10 + 8 * MB
    assert large.peak_rss_bytes < 300 * MB
    assert parquet.peak_rss_bytes < 300 * MB
