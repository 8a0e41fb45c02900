"""The demo `interactions` dataset, exported to each of the five stores by a real worker,
then checked from the store's side with the store's own client: the folder layout, every
file's bytes against the TNF, the TNF's DataFolder, and that the TNF came last."""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
import posixpath
import re

import pytest
from django.test import Client

from connectors.storage import open_destination
from exports.actions import queue_run
from exports.api.signing import signed_file_url
from exports.models import Export, Run

# Destinations are managed by admins: in these tests of destinations, the owner (and teammate) are.
pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("destination_admins")]

SIDES = {"s3": "s3", "gcs": "gcs", "azure_blob": "azure", "sftp": "external_sftp", "hosted_sftp": "sftpd"}


def stored_objects(side, connector, prefix: str):
    if connector.is_hosted_sftp:
        return side.objects_of(connector, prefix)
    return side.objects(prefix)


def export_to(connector, owner, dataset, **fields) -> Export:
    fields.setdefault("file_format", Export.Format.CSV)
    fields.setdefault("compression", Export.Compression.GZIP)
    fields.setdefault("rows_per_file", 2_000)
    fields.setdefault("name", "Interactions feed")
    return Export.objects.create(owner=owner, dataset=dataset, connector=connector, **fields)


def run_once(export, owner, worker, **kwargs) -> Run:
    run = queue_run(export, user=owner, **kwargs)
    worker()
    run.refresh_from_db()
    return run


def check_delivery(objects, run: Run, data_folder: str) -> dict:
    """The layout, the TNF and every file's bytes, as a consumer of the store sees them."""
    strip = lambda path: path.lstrip("/")  # noqa: E731 - SFTP paths are absolute in the chroot
    export_root = posixpath.dirname(strip(data_folder))
    tnfs = [item for item in objects if strip(item.path).startswith(f"{export_root}/tnfs/")]
    tnf_item = next(item for item in tnfs if strip(item.path) == strip(run.tnf_path))
    assert re.fullmatch(r"\d{8}T\d{9}Z\.tnf", posixpath.basename(tnf_item.path))
    tnf = json.loads(tnf_item.data)
    assert strip(tnf["DataFolder"]) == strip(data_folder) == strip(run.delivery_folder)
    assert tnf["DeliveryId"] == str(run.id)
    assert tnf["ExportId"] == str(run.export_id)
    in_folder = {
        posixpath.basename(item.path): item
        for item in objects
        if posixpath.dirname(strip(item.path)) == strip(data_folder)
    }
    assert sorted(in_folder) == sorted(entry["Name"] for entry in tnf["Files"])
    for entry in tnf["Files"]:
        item = in_folder[entry["Name"]]
        assert strip(entry["Path"]) == strip(item.path)
        assert len(item.data) == entry["Size"]
        assert hashlib.sha256(item.data).hexdigest() == entry["Sha256"]
        # Written last: the TNF is at least as new as every file it lists.
        assert tnf_item.modified >= item.modified
    assert tnf["RowCount"] == sum(entry["Rows"] for entry in tnf["Files"]) == run.row_count
    assert tnf["FileCount"] == len(tnf["Files"]) == run.files.count()
    return tnf


def csv_gz_rows(data: bytes) -> list[dict]:
    return list(csv.DictReader(io.StringIO(gzip.decompress(data).decode())))


# Marked by hand: it picks its store at run time, which tests/conftest.py can't see.
@pytest.mark.emulator
@pytest.mark.parametrize("kind", list(SIDES))
def test_it_delivers_the_demo_interactions_to_every_store_in_the_documented_layout(
    kind, request, users, demo_database, worker
):
    side = request.getfixturevalue(SIDES[kind])
    owner = users["owner"]
    connector = side.connector(owner)
    dataset = demo_database.datasets.get(name="interactions")
    export = export_to(connector, owner, dataset)

    run = run_once(export, owner, worker)

    assert run.status == Run.Status.SUCCEEDED, run.error_message
    assert run.row_count == 5_000
    assert run.files.count() == 3
    data_folder = posixpath.join(connector.base_path, str(export.id), "unscheduled")
    objects = stored_objects(side, connector, posixpath.join(connector.base_path, str(export.id)))
    tnf = check_delivery(objects, run, data_folder)
    assert len(objects) == 4  # three part files and one TNF, nothing else (no probe, no temp file)
    assert [entry["Name"].rsplit("-", 1)[1] for entry in tnf["Files"]] == ["1.csv.gz", "2.csv.gz", "3.csv.gz"]
    rows = []
    for entry in tnf["Files"]:
        item = next(item for item in objects if item.path.endswith("/" + entry["Name"]))
        part = csv_gz_rows(item.data)
        assert len(part) == entry["Rows"]
        rows += part
    assert len(rows) == 5_000
    assert len({row["id"] for row in rows}) == 5_000
    assert run.destination == connector.location
    check_signed_urls(run, connector)


def check_signed_urls(run: Run, connector) -> None:
    """The API's signed URLs stream each file back from the store, byte for byte; once a
    file is removed from the store, its URL says it is gone."""
    client = Client()
    files = list(run.files.all())
    for run_file in files:
        response = client.get(signed_file_url(run.id, run_file.part))
        assert response.status_code == 200
        assert hashlib.sha256(b"".join(response.streaming_content)).hexdigest() == run_file.sha256
    with open_destination(connector) as destination:
        destination.delete(destination.name_of(files[0].path))
    response = client.get(signed_file_url(run.id, files[0].part))
    assert response.status_code == 410, response.json()
    assert response.json()["Code"] == "FILE_GONE", response.json()


def test_each_run_of_a_repeating_export_gets_its_own_folder_and_tnf(users, demo_database, worker, s3):
    owner = users["owner"]
    connector = s3.connector(owner, base_path="")
    dataset = demo_database.datasets.get(name="profiles")
    export = export_to(
        connector,
        owner,
        dataset,
        export_type=Export.Type.PERIODIC_FULL,
        folder_template="%DATETIME(YYYYMMdd)%_%DELIVERY_ID%",
        file_format=Export.Format.PARQUET,
        compression=Export.Compression.SNAPPY,
    )
    first = run_once(export, owner, worker)
    second = run_once(export, owner, worker)
    assert first.status == second.status == Run.Status.SUCCEEDED
    assert first.delivery_folder != second.delivery_folder
    day = first.started_at.strftime("%Y%m%d")
    assert first.delivery_folder == f"{export.id}/{day}_{first.id}"
    objects = s3.objects(f"{export.id}/")
    check_delivery(objects, first, first.delivery_folder)
    check_delivery(objects, second, second.delivery_folder)
    assert len([item for item in objects if "/tnfs/" in item.path]) == 2


def test_a_one_shot_run_again_never_overwrites_an_earlier_delivery(users, demo_database, worker, s3):
    owner = users["owner"]
    connector = s3.connector(owner, base_path="fixed")
    dataset = demo_database.datasets.get(name="profiles")
    export = export_to(connector, owner, dataset, file_template="profiles", rows_per_file=1_000_000)
    first = run_once(export, owner, worker)
    assert first.status == Run.Status.SUCCEEDED, first.error_message
    before = {item.path: item.data for item in s3.objects(f"fixed/{export.id}/unscheduled/")}

    second = run_once(export, owner, worker)

    assert second.status == Run.Status.FAILED
    assert second.error_code == Run.ErrorCode.DESTINATION_WRITE_FAILED
    assert "already holds profiles-1.csv.gz" in second.error_message
    assert "%DELIVERY_ID%" in second.error_message
    assert {item.path: item.data for item in s3.objects(f"fixed/{export.id}/unscheduled/")} == before
