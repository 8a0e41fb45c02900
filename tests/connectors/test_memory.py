"""A 200 MB export to S3 keeps the worker's memory bounded: part files are uploaded from
disk in 8 MB multipart chunks, never read whole.

The worker records its peak resident memory on the run (`Run.peak_rss_bytes`, taken
after the upload). The same export with the data only a tenth as large must peak at
about the same height, and the large one stays far below the data's size.
"""

from __future__ import annotations

import sqlite3

import pytest

from exports.actions import queue_run
from exports.models import Database, Export, Run, refresh_datasets

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]
MB = 1024 * 1024


@pytest.fixture(scope="module")
def wide_table(tmp_path_factory):
    """1,000,000 rows of about 210 bytes of CSV each: 200 MB uncompressed."""
    path = tmp_path_factory.mktemp("wide") / "wide.sqlite3"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE events (id INTEGER PRIMARY KEY, payload TEXT NOT NULL)")
        conn.execute(
            """
            WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1000000)
            INSERT INTO events SELECT i, printf('%0200d', i * 7919) FROM n
            """
        )
    return path


def _export_to_s3(users, dataset, connector, worker, **fields) -> Run:
    export = Export.objects.create(
        name="wide",
        owner=users["owner"],
        dataset=dataset,
        connector=connector,
        file_format=Export.Format.CSV,
        compression=Export.Compression.NONE,
        **fields,
    )
    run = queue_run(export, user=users["owner"])
    worker(timeout=900)
    run.refresh_from_db()
    assert run.status == Run.Status.SUCCEEDED, run.error_message
    return run


def test_a_200_mb_export_to_s3_keeps_the_worker_memory_bounded(users, wide_table, worker, s3):
    database = Database.objects.create(name="Wide", url=f"sqlite:///{wide_table}")
    refresh_datasets(database)
    dataset = database.datasets.get(name="events")
    connector = s3.connector(users["owner"], base_path="memory")
    small = _export_to_s3(
        users, dataset, connector, worker, filters=[{"column": "id", "operator": "lte", "value": "100000"}]
    )
    large = _export_to_s3(users, dataset, connector, worker)

    assert large.row_count == 1_000_000
    assert large.bytes >= 200 * MB
    uploaded = s3.client().head_object(Bucket="exports-bucket", Key=large.files.get().path)
    assert uploaded["ContentLength"] == large.bytes
    print(
        f"\npeak RSS exporting to S3: {small.bytes / MB:.0f} MB file {small.peak_rss_bytes / MB:.0f} MB, "
        f"{large.bytes / MB:.0f} MB file {large.peak_rss_bytes / MB:.0f} MB"
    )
    assert large.peak_rss_bytes <= small.peak_rss_bytes + 48 * MB
    assert large.peak_rss_bytes < large.bytes
