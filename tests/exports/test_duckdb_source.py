"""DuckDB file sources: a .duckdb file's table, with every type we map, exported to CSV,
NDJSON and Parquet by a real worker and read back equal to what DuckDB itself reads."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest
from django.core.files.storage import storages

from exports import sources
from exports.actions import queue_run
from exports.filters import validate_filters
from exports.models import Database, Export, Run, refresh_datasets
from tests.exports.readback import normalise_rows, read_file

pytestmark = pytest.mark.django_db(transaction=True)

ROWS = [
    "(1, 'Zoë “quoted”, with a comma', 123456789012.3456, 18446744073709551615, 0.1, true,"
    " TIMESTAMPTZ '2026-03-29 01:30:00.123456+00', TIMESTAMP '2026-03-29 02:30:00.5', DATE '2026-03-29',"
    " 'happy', '5b7f4a4e-8d5c-4b8e-9a43-3f1e2d6c7b8a', '{\"a\": [1, 2]}')",
    "(2, E'two\\nlines', -99999999999999.9999, 0, -1e300, false,"
    " TIMESTAMPTZ '1970-01-01 00:00:00+00', TIMESTAMP '1999-12-31 23:59:59', DATE '1900-01-01',"
    " 'sad', '00000000-0000-4000-8000-000000000000', 'null')",
    "(3, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)",
]


@pytest.fixture
def duck(tmp_path) -> Path:
    path = tmp_path / "analytics.duckdb"
    with duckdb.connect(str(path)) as conn:
        conn.execute("CREATE TYPE mood AS ENUM ('happy', 'sad')")
        conn.execute(
            """
            CREATE TABLE events (
                id BIGINT PRIMARY KEY, label VARCHAR, amount DECIMAL(18, 4), counter UBIGINT, ratio DOUBLE,
                ok BOOLEAN, happened_at TIMESTAMPTZ, local_time TIMESTAMP, day DATE, feeling mood, uid UUID, doc JSON
            )
            """
        )
        conn.execute("INSERT INTO events VALUES " + ", ".join(ROWS))
        conn.execute("CREATE VIEW happy_events AS SELECT id, label FROM events WHERE feeling = 'happy'")
    return path


@pytest.fixture
def database(duck) -> Database:
    database = Database.objects.create(name="Analytics", url=f"duckdb:///{duck}")
    refresh_datasets(database)
    return database


def source_rows(path: Path, columns: list[dict]) -> list[dict]:
    names = ", ".join(f'"{c["name"]}"' for c in columns)
    with duckdb.connect(str(path), read_only=True) as conn:
        cursor = conn.execute(f"SELECT {names} FROM events ORDER BY id")
        keys = [d[0] for d in cursor.description]
        return [dict(zip(keys, row, strict=True)) for row in cursor.fetchall()]


def test_a_duckdb_file_is_introspected_with_our_types(database):
    events = database.datasets.get(name="events")
    types = {c["name"]: c["type"] for c in events.columns}
    assert types == {
        "id": "integer",
        "label": "text",
        "amount": "decimal",
        "counter": "decimal",
        "ratio": "float",
        "ok": "boolean",
        "happened_at": "timestamp",
        "local_time": "datetime",
        "day": "date",
        "feeling": "text",
        "uid": "text",
        "doc": "text",
    }
    assert events.column("counter")["precision"] == 20
    assert events.primary_key == ["id"]
    assert events.estimated_rows == 3
    assert database.datasets.get(name="happy_events").kind == "view"


@pytest.mark.parametrize(("file_format", "compression"), [("csv", "none"), ("ndjson", "gzip"), ("parquet", "snappy")])
def test_a_duckdb_table_exports_and_reads_back_equal(users, database, duck, worker, file_format, compression):
    events = database.datasets.get(name="events")
    export = Export.objects.create(
        owner=users["owner"], dataset=events, name="Events", file_format=file_format, compression=compression
    )
    run = queue_run(export, user=users["owner"])
    worker()
    run.refresh_from_db()
    assert run.status == Run.Status.SUCCEEDED, run.error_message
    [run_file] = run.files.all()
    exported = read_file(Path(storages["exports"].path(run_file.path)), file_format)
    columns = events.columns
    assert normalise_rows(exported, columns) == normalise_rows(source_rows(duck, columns), columns)


def test_filters_and_an_incremental_window_work_on_duckdb(users, database, duck, worker):
    events = database.datasets.get(name="events")
    specs = [
        {"column": "label", "operator": "contains", "value": "QUOTED"},
        {"column": "amount", "operator": "gt", "value": "1000"},
        {"column": "happened_at", "operator": "lt", "value": "2027-01-01T00:00:00Z"},
    ]
    filters = validate_filters(specs, events.columns)
    with sources.open_reader(events, ["id"], filters) as reader:
        assert [row["id"] for batch in reader.batches() for row in batch.to_pylist()] == [1]
        assert reader.max_value(events.column("id")).value == "3"
    export = Export.objects.create(
        owner=users["owner"], dataset=events, name="Events by id", export_type="incremental", cursor_column="id"
    )
    first = queue_run(export, user=users["owner"])
    worker()
    first.refresh_from_db()
    assert first.status == Run.Status.SUCCEEDED, first.error_message
    assert first.row_count == 3
    with duckdb.connect(str(duck)) as conn:
        conn.execute("INSERT INTO events (id, label) VALUES (4, 'late')")
    second = queue_run(export, user=users["owner"])
    worker()
    second.refresh_from_db()
    assert second.status == Run.Status.SUCCEEDED, second.error_message
    assert second.row_count == 1


def test_a_view_in_the_file_cant_read_other_files(users, tmp_path, worker):
    path = tmp_path / "sneaky.duckdb"
    with duckdb.connect(str(path)) as conn:
        conn.execute("CREATE VIEW host AS SELECT * FROM read_text('/etc/hostname')")
        conn.execute("CREATE VIEW listing AS SELECT * FROM glob('/etc/*')")
    database = Database.objects.create(name="Sneaky", url=f"duckdb:///{path}")
    refresh_datasets(database)
    for name in ("host", "listing"):
        dataset = database.datasets.filter(name=name).first()
        if dataset is None:  # not even introspected: refused while reading the catalogue
            continue
        export = Export.objects.create(owner=users["owner"], dataset=dataset, name=f"Sneaky {name}")
        run = queue_run(export, user=users["owner"])
        worker()
        run.refresh_from_db()
        assert run.status == Run.Status.FAILED
        assert not run.files.exists()


def test_wide_integers_nanoseconds_and_uuids_are_exact_and_filter_exactly(users, tmp_path):
    path = tmp_path / "wide.duckdb"
    with duckdb.connect(str(path)) as conn:
        conn.execute("CREATE TABLE w (u UBIGINT, h HUGEINT, ns TIMESTAMP_NS, id UUID)")
        conn.execute(
            "INSERT INTO w VALUES (9007199254740992, 170141183460469231731687303715884105727, "
            "TIMESTAMP_NS '2026-01-01 00:00:00.123456789', '5b7f4a4e-8d5c-4b8e-9a43-3f1e2d6c7b8a'), "
            "(9007199254740993, -1, TIMESTAMP_NS '2026-01-02 00:00:00', NULL)"
        )
    database = Database.objects.create(name="Wide", url=f"duckdb:///{path}")
    [w] = refresh_datasets(database)
    assert {c["name"]: c["type"] for c in w.columns} == {"u": "decimal", "h": "text", "ns": "datetime", "id": "text"}

    def read(specs):
        with sources.open_reader(w, [], validate_filters(specs, w.columns)) as reader:
            return [row for batch in reader.batches() for row in batch.to_pylist()]

    rows = read([])
    assert [str(row["u"]) for row in rows] == ["9007199254740992", "9007199254740993"]
    assert rows[0]["h"] == "170141183460469231731687303715884105727"
    assert rows[0]["ns"].microsecond == 123457  # to the nearest microsecond, as DuckDB casts
    assert [str(r["u"]) for r in read([{"column": "u", "operator": "eq", "value": "9007199254740993"}])] == [
        "9007199254740993"
    ]
    assert len(read([{"column": "u", "operator": "gt", "value": "9007199254740992"}])) == 1
    assert len(read([{"column": "id", "operator": "contains", "value": "8D5C"}])) == 1
    assert len(read([{"column": "id", "operator": "is_empty"}])) == 1
    assert len(read([{"column": "id", "operator": "eq", "value": "not-a-uuid"}])) == 0


def test_a_missing_duckdb_file_is_unavailable(users, database, duck, worker):
    export = Export.objects.create(owner=users["owner"], dataset=database.datasets.get(name="events"), name="Gone")
    run = queue_run(export, user=users["owner"])
    duck.unlink()
    worker()
    run.refresh_from_db()
    assert run.error_code == "SOURCE_UNAVAILABLE"
    assert "does not exist" in run.error_message
    assert not duck.exists()  # reading never creates an empty database in its place
