"""A user's whole path through the API, over real HTTP with nothing but a token: find a
dataset and a connector, create an incremental export to S3 (moto), schedule it, force a
run, poll it to Success while a real RQ worker runs it, download every file through its
signed URL and compare it with the source; then new source rows, a second forced run,
and only those rows delivered."""

from __future__ import annotations

import gzip
import hashlib
import json
import shutil
import sqlite3
import threading
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta

import pytest

from exports.models import ApiToken, Database, refresh_datasets
from tests.conftest import run_worker
from tests.exports.readback import normalise_rows, read_zip_or_file
from tests.exports.test_runs import source_rows

pytestmark = pytest.mark.django_db(transaction=True)


class Http:
    """JSON over HTTP with a bearer token, like any program outside the product would."""

    def __init__(self, base: str, token: str):
        self.base = base
        self.token = token

    def __call__(self, method: str, path: str, body=None) -> tuple[int, dict]:
        request = urllib.request.Request(
            f"{self.base}/api/v1/{path}",
            data=json.dumps(body).encode() if body is not None else None,
            method=method,
            headers={"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, json.loads(response.read() or b"null")
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read())


def fetch(url: str) -> bytes:
    """A signed URL needs no token and no session."""
    with urllib.request.urlopen(url, timeout=30) as response:
        assert response.headers["Content-Type"] == "application/octet-stream"
        return response.read()


def poll_until_finished(http: Http, run_id: str, timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    seen = []
    while time.monotonic() < deadline:
        status, run = http("GET", f"runs/{run_id}")
        assert status == 200
        seen.append(run["Status"])
        if run["Status"] not in {"Pending", "Processing"}:
            return run | {"seen": seen}
        time.sleep(0.2)
    raise AssertionError(f"run {run_id} still {seen[-1]} after {timeout} s")


def force_run_and_wait(http: Http, export_id: str) -> dict:
    status, run = http("POST", f"exports/{export_id}/run-now")
    assert status == 202, run
    assert run["Status"] == "Pending"
    assert run["ExportId"] == export_id
    worker = threading.Thread(target=run_worker)
    worker.start()
    try:
        return poll_until_finished(http, run["Id"])
    finally:
        worker.join()


def delivered_rows(run: dict, dataset_columns: list[dict]) -> list[tuple]:
    rows = []
    for file in sorted(run["Files"], key=lambda f: f["Part"]):
        data = fetch(file["Url"])
        assert len(data) == file["SizeInBytes"]
        assert hashlib.sha256(data).hexdigest() == file["Sha256"]
        part = read_zip_or_file(data, file["Name"], "csv")
        assert len(part) == file["Rows"]
        rows += part
    return normalise_rows(rows, dataset_columns, milliseconds=True)


def test_an_incremental_export_to_s3_through_the_api_alone(live_server, users, demo_path, tmp_path, s3, settings):
    settings.SITE_URL = live_server.url  # signed URLs are built from the site's address
    # What an admin set up in the UI: a source and a connector. The rest is HTTP.
    source = tmp_path / "crm.sqlite3"
    shutil.copy(demo_path, source)
    refresh_datasets(Database.objects.create(name="CRM", url=f"sqlite:///{source}"))
    connector = s3.connector(users["owner"], base_path=f"api-e2e/{tmp_path.name}")
    _, token = ApiToken.issue(users["owner"], "BI sync")
    http = Http(live_server.url, token)

    status, datasets = http("GET", "datasets?data_type=interaction")
    assert status == 200
    dataset = next(d for d in datasets["Items"] if d["Database"] == "CRM" and d["Name"] == "interactions")
    assert {"Name": "id", "Type": "integer", "Nullable": False} in dataset["Columns"]
    status, connectors = http("GET", "connectors")
    assert any(c["Id"] == str(connector.id) and c["Location"].startswith("s3://") for c in connectors["Items"])

    start = (datetime.now(UTC) + timedelta(hours=1)).replace(microsecond=0)
    status, export = http(
        "POST",
        "exports",
        {
            "Name": "Interactions to the lake",
            "DatasetId": dataset["Id"],
            "ExportType": "incremental",
            "Cadence": "3h",
            "Start": start.isoformat(),
            "CursorColumn": "id",
            "FileFormat": "csv",
            "RowsPerFile": 2_000,
            "ConnectorId": str(connector.id),
            "FolderTemplate": "%DATETIME(YYYYMMdd_HHmmss)%_%DELIVERY_ID%",
        },
    )
    assert status == 201, export
    assert export["Status"] == "Draft"
    assert export["Compression"] == "gzip"
    assert export["End"] is not None

    status, export = http("POST", f"exports/{export['Id']}/schedule")
    assert status == 200, export
    assert export["Status"] == "Scheduled"
    assert datetime.fromisoformat(export["NextRunUtc"]) == start

    first = force_run_and_wait(http, export["Id"])
    assert first["Status"] == "Success", first
    assert first["Trigger"] == "api"
    assert first["ExpiresUtc"] is None  # files live in the customer's bucket
    assert first["DeliveryFolder"].startswith(f"api-e2e/{tmp_path.name}/{export['Id']}/")
    assert len(first["Files"]) == 3  # 5,000 rows, 2,000 per file
    columns = [
        {"name": c["Name"], "type": c["Type"], "scale": 2 if c["Name"] == "revenue" else 0} for c in dataset["Columns"]
    ]
    expected = normalise_rows(source_rows(source, "SELECT * FROM interactions ORDER BY id"), columns, milliseconds=True)
    assert delivered_rows(first, columns) == expected

    # New rows arrive; the next forced run delivers them, and only them.
    with sqlite3.connect(source) as conn:
        conn.executemany(
            "INSERT INTO interactions (id, profile_id, occurred_at, channel, event_type) "
            "VALUES (?, 1, ?, 'email', 'open')",
            [(100_000 + n, "2026-01-01 00:00:00") for n in range(25)],
        )
    status, export = http("GET", f"exports/{export['Id']}")
    assert export["Watermark"] == "5000"
    assert export["LastRunStatus"] == "Success"
    second = force_run_and_wait(http, export["Id"])
    assert second["Status"] == "Success", second
    new_rows = source_rows(source, "SELECT * FROM interactions WHERE id >= 100000 ORDER BY id")
    assert delivered_rows(second, columns) == normalise_rows(new_rows, columns, milliseconds=True)

    status, runs = http("GET", f"exports/{export['Id']}/runs?status=Success")
    assert [run["Id"] for run in runs["Items"]] == [second["Id"], first["Id"]]
    # The files are in the bucket exactly where the API says.
    stored = {item.path for item in s3.objects(f"api-e2e/{tmp_path.name}/")}
    assert {f["Path"] for f in first["Files"] + second["Files"]} <= stored
    assert gzip.decompress(fetch(second["Files"][0]["Url"])).startswith(b'"id","profile_id"')

    # Someone removed a file from the bucket: its URL says so instead of failing.
    s3.client().delete_object(Bucket=connector.options["bucket"], Key=second["Files"][0]["Path"])
    with pytest.raises(urllib.error.HTTPError) as gone:
        fetch(second["Files"][0]["Url"])
    assert gone.value.code == 410
    assert json.loads(gone.value.read())["Code"] == "FILE_GONE"
