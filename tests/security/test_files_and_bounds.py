"""Spreadsheet-safe CSV, and the bounds that keep one export from becoming unbounded work:
the same in the page and the API, each refusal naming its field."""

from __future__ import annotations

import csv
import io
import sqlite3

import pyarrow as pa
import pytest
from django.core.files.storage import storages
from django.urls import reverse

from connectors.models import Connector
from exports.actions import queue_run
from exports.engine import MAX_PARTS, FileSpec, TooManyFiles, write_files
from exports.models import Database, Export, Run, refresh_datasets
from tests.conftest import PASSWORD
from tests.exports.test_views import MANAGEMENT, file_data, source_data, wizard

CELLS = ['=HYPERLINK("http://x","y")', "+1+1", "-2", "@SUM(A1)", "\tx", "\rx", "plain", "a=b", "", None]


def read_back(path) -> list[list[str]]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.reader(fh))


@pytest.mark.parametrize("safe", [True, False])
def test_formula_looking_cells_get_a_quote_only_in_safe_mode(tmp_path, safe):
    batch = pa.record_batch({"note": pa.array(CELLS, pa.string()), "n": pa.array(range(len(CELLS)), pa.int64())})
    spec = FileSpec("csv", "none", 1_000, "cells", spreadsheet_safe=safe)
    [written] = write_files([batch], batch.schema, spec, tmp_path)
    rows = read_back(written.path)[1:]
    notes = [row[0] for row in rows]
    if safe:
        assert notes[:6] == ["'" + cell for cell in CELLS[:6]]
        assert notes[6:] == ["plain", "a=b", "", ""]
    else:
        assert notes == [cell or "" for cell in CELLS]
    assert [row[1] for row in rows] == [str(n) for n in range(len(CELLS))]  # numbers untouched


@pytest.fixture
def formulas(db, tmp_path):
    path = tmp_path / "notes.sqlite3"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, note TEXT)")
        conn.executemany("INSERT INTO notes (note) VALUES (?)", [(cell,) for cell in CELLS])
    database = Database.objects.create(name="Notes", url=f"sqlite:///{path}")
    refresh_datasets(database)
    return database.datasets.get(name="notes")


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(("choice", "prefixed"), [("auto", True), ("off", False)])
def test_a_desktop_download_is_spreadsheet_safe_unless_turned_off(users, formulas, worker, choice, prefixed):
    export = Export.objects.create(
        name="Notes",
        owner=users["owner"],
        dataset=formulas,
        file_format=Export.Format.CSV,
        compression=Export.Compression.NONE,
        spreadsheet_safe=choice,
    )
    run = queue_run(export, user=users["owner"])
    worker()
    run.refresh_from_db()
    assert run.status == Run.Status.SUCCEEDED, run.error_message
    assert run.spreadsheet_safe is prefixed
    with storages["exports"].open(run.files.get().path, "rb") as fh:
        rows = list(csv.reader(io.StringIO(fh.read().decode())))[1:]
    notes = [row[1] for row in rows]
    expected = [("'" + cell if prefixed and n < 6 else cell) or "" for n, cell in enumerate(CELLS)]
    assert notes == expected


def test_a_connector_delivery_is_not_spreadsheet_safe_by_default(users, demo_database):
    connector = Connector.objects.create(
        name="Lake", kind=Connector.Kind.S3, owner=users["owner"], options={"bucket": "lake"}
    )
    export = Export(dataset=demo_database.datasets.get(name="profiles"), file_format="csv", connector=connector)
    assert Run(export=export, destination_kind="s3").spreadsheet_safe is False
    export.spreadsheet_safe = Export.SpreadsheetSafe.ON
    assert Run(export=export, destination_kind="s3").spreadsheet_safe is True
    export.file_format = Export.Format.PARQUET
    assert Run(export=export, destination_kind="desktop").spreadsheet_safe is False


def test_a_run_never_writes_more_than_the_most_files(tmp_path):
    batch = pa.record_batch({"n": pa.array(range(MAX_PARTS + 1), pa.int64())})
    with pytest.raises(TooManyFiles, match="more than 10,000 files of 1 rows: raise its rows per file"):
        write_files([batch], batch.schema, FileSpec("csv", "none", 1, "tiny"), tmp_path)


# --- Bounds, in the page and the API --------------------------------------------------------


def login(client, user):
    assert client.login(username=user.username, password=PASSWORD)


@pytest.mark.django_db
def test_the_file_step_refuses_more_than_the_most_files_naming_the_field(client, users, demo_database):
    login(client, users["owner"])
    dataset = demo_database.datasets.get(name="interactions")
    dataset.estimated_rows = 50_000_000
    dataset.save()
    client.post(reverse("exports-new"), source_data(dataset))
    export = Export.objects.get()
    response = client.post(wizard(export, "file"), file_data(rows_per_file="1000"))
    assert response.status_code == 200
    assert "At most 10,000 files per run: interactions has about 50,000,000 rows, so choose at least 5,000 rows" in (
        response.content.decode()
    )
    assert 'id="field-rows_per_file"' in response.content.decode() or "rows_per_file" in response.content.decode()


@pytest.mark.django_db
def test_the_api_refuses_more_than_the_most_files_naming_the_field(api_as, users, demo_database):
    dataset = demo_database.datasets.get(name="interactions")
    dataset.estimated_rows = 50_000_000
    dataset.save()
    response = api_as(users["owner"]).post("exports", {"Name": "Tiny", "DatasetId": dataset.id, "RowsPerFile": 1000})
    assert response.status_code == 400
    assert "At most 10,000 files per run" in " ".join(response.json()["Fields"]["RowsPerFile"])


@pytest.mark.django_db
def test_more_than_fifty_filters_are_refused_in_the_page_and_the_api(client, api_as, users, demo_database):
    login(client, users["owner"])
    dataset = demo_database.datasets.get(name="profiles")
    rows = {}
    for n in range(60):
        rows.update({f"filters-{n}-column": "id", f"filters-{n}-operator": "gt", f"filters-{n}-value": str(n)})
    data = {**source_data(dataset), **rows, "filters-TOTAL_FORMS": "60"}
    response = client.post(reverse("exports-new"), data)
    assert response.status_code == 200
    assert "Filters: at most 50." in response.content.decode()
    assert not Export.objects.exists()

    specs = [{"Column": "id", "Operator": "gt", "Value": str(n)} for n in range(51)]
    response = api_as(users["owner"]).post("exports", {"Name": "Many", "DatasetId": dataset.id, "Filters": specs})
    assert response.status_code in {400, 422}
    assert "Filters" in response.content.decode()
    assert MANAGEMENT["filters-MAX_NUM_FORMS"] == "50"


@pytest.mark.django_db
def test_overlong_names_templates_and_values_are_refused_naming_the_field(client, api_as, users, demo_database):
    dataset = demo_database.datasets.get(name="profiles")
    api = api_as(users["owner"])
    for field, value, needle in [
        ("Name", "n" * 201, "at most 200"),
        ("FileTemplate", "t" * 201, "200"),
        ("FolderTemplate", "f" * 501, "500"),
    ]:
        response = api.post("exports", {"Name": "Long", "DatasetId": dataset.id, field: value})
        assert response.status_code in {400, 422}, field
        assert field in response.content.decode()
        assert needle in response.content.decode()
    login(client, users["owner"])
    data = {**source_data(dataset), "filters-0-column": "id", "filters-0-operator": "eq", "filters-0-value": "9" * 2001}
    response = client.post(reverse("exports-new"), data)
    assert "at most 2000 characters" in response.content.decode()
