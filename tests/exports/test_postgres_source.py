"""Exports from a PostgreSQL source: nulls, unicode, timestamptz, numerics, json, uuids."""

from __future__ import annotations

import psycopg
import pytest

from exports.actions import queue_run
from exports.models import Database, Export, Run, refresh_datasets
from tests.exports.readback import normalise_rows
from tests.exports.test_runs import read_run

pytestmark = pytest.mark.django_db(transaction=True)

EDGE_TEXTS = ['Zoë «quoted» "twice"', "línea\nnueva, con coma", "東京 🚀", "", None, "tab\there", "back\\slash"]


@pytest.fixture
def pg_dataset(pg_source_url, pg_table, db):
    with psycopg.connect(pg_source_url, autocommit=True) as conn:
        conn.execute(
            f"""
            CREATE TABLE "{pg_table}" (
                id bigint PRIMARY KEY, name text, amount numeric(12,2), happened_at timestamptz,
                local_time timestamp, flag boolean, day date, doc jsonb, uid uuid, ratio double precision
            )
            """
        )
        conn.execute(
            f"""
            INSERT INTO "{pg_table}"
            SELECT g,
                   (%(texts)s::text[])[1 + g %% {len(EDGE_TEXTS)}],
                   CASE WHEN g %% 11 = 0 THEN NULL ELSE round(((g * 7919) %% 200000 - 100000) / 100.0, 2) END,
                   CASE WHEN g %% 13 = 0 THEN NULL
                        ELSE timestamptz '2025-01-01 00:00:00+00' + g * interval '1 minute 0.123456 second' END,
                   timestamp '2025-01-01 08:00' + g * interval '1 hour',
                   CASE WHEN g %% 5 = 0 THEN NULL ELSE g %% 2 = 0 END,
                   date '2020-02-29' + g,
                   jsonb_build_object('n', g, 's', 'x"y'),
                   md5(g::text)::uuid,
                   CASE WHEN g %% 7 = 0 THEN NULL ELSE g / 3.0 END
            FROM generate_series(1, 2500) AS g
            """,
            {"texts": EDGE_TEXTS},
        )
    database = Database.objects.create(name="Warehouse", url=pg_source_url)
    refresh_datasets(database)
    return database.datasets.get(name=pg_table)


def pg_rows(url, table, columns, where=""):
    names = ", ".join(f'"{c["name"]}"' + ("::text" if c["name"] in {"doc", "uid"} else "") for c in columns)
    with psycopg.connect(url) as conn:
        cursor = conn.execute(f'SELECT {names} FROM "{table}" {where} ORDER BY id')
        return [dict(zip([c["name"] for c in columns], row, strict=True)) for row in cursor]


def test_it_discovers_postgresql_column_types(pg_dataset):
    types = {c["name"]: c["type"] for c in pg_dataset.columns}
    assert types == {
        "id": "integer",
        "name": "text",
        "amount": "decimal",
        "happened_at": "timestamp",
        "local_time": "datetime",
        "flag": "boolean",
        "day": "date",
        "doc": "text",
        "uid": "text",
        "ratio": "float",
    }
    assert pg_dataset.column("amount")["precision"] == 12
    assert pg_dataset.column("amount")["scale"] == 2
    assert pg_dataset.schema_name == "public"


@pytest.mark.parametrize(
    ("file_format", "compression"),
    [("csv", "gzip"), ("ndjson", "gzip"), ("parquet", "none"), ("parquet", "gzip")],
)
def test_it_exports_postgresql_rows_exactly(users, pg_dataset, pg_source_url, worker, file_format, compression):
    export = Export.objects.create(
        name="pg",
        owner=users["owner"],
        dataset=pg_dataset,
        file_format=file_format,
        compression=compression,
        rows_per_file=1000,
    )
    queue_run(export, user=users["owner"])
    worker()
    run = export.runs.get()
    assert run.status == Run.Status.SUCCEEDED, run.error_message
    assert run.files.count() == 3
    columns = [c for c in pg_dataset.columns if c["name"] != "local_time"]
    exported = sorted(normalise_rows(read_run(run, export), columns), key=lambda row: row[0])
    expected = normalise_rows(pg_rows(pg_source_url, pg_dataset.name, columns), columns)
    assert len(exported) == 2500
    if file_format == "csv":
        # CSV can't tell an empty text from a missing one; every other format can.
        expected = [tuple(None if v == "" else v for v in row) for row in expected]
    assert exported == expected


def test_it_applies_filters_on_postgresql(users, pg_dataset, pg_source_url, worker):
    export = Export.objects.create(
        name="pg filtered",
        owner=users["owner"],
        dataset=pg_dataset,
        file_format="parquet",
        compression="snappy",
        columns=["id", "name", "amount", "happened_at"],
        filters=[
            {"column": "name", "operator": "contains", "value": "ZOë"},
            {"column": "amount", "operator": "between", "value": "-500", "value_to": "500.5"},
            {"column": "happened_at", "operator": "lt", "value": "2025-01-02T12:00:00+02:00"},
        ],
    )
    queue_run(export, user=users["owner"])
    worker()
    run = export.runs.get()
    assert run.status == Run.Status.SUCCEEDED, run.error_message
    columns = [pg_dataset.column(n) for n in export.columns]
    expected = pg_rows(
        pg_source_url,
        pg_dataset.name,
        columns,
        "WHERE name ILIKE '%zoë%' AND amount BETWEEN -500 AND 500.5 AND happened_at < '2025-01-02T10:00:00Z'",
    )
    assert 0 < len(expected) < 2500
    assert normalise_rows(read_run(run, export), columns) == normalise_rows(expected, columns)


def test_filter_values_reach_postgresql_exactly_as_written(users, pg_dataset, pg_source_url, worker):
    """Values go into the query as literals (for streaming): quotes, backslashes and
    placeholder-like text select what they say, and nothing more."""
    tricky = Export.objects.create(
        name="pg tricky values",
        owner=users["owner"],
        dataset=pg_dataset,
        file_format="ndjson",
        columns=["id", "name"],
        filters=[{"column": "name", "operator": "in", "value": "back\\slash\nit's\n$1\nx'); DROP TABLE t; --"}],
    )
    queue_run(tricky, user=users["owner"])
    worker()
    run = tricky.runs.get()
    assert run.status == Run.Status.SUCCEEDED, run.error_message
    columns = [pg_dataset.column(n) for n in tricky.columns]
    expected = pg_rows(pg_source_url, pg_dataset.name, columns, "WHERE name = E'back\\\\slash'")
    assert len(expected) == 2500 // len(EDGE_TEXTS)
    assert normalise_rows(read_run(run, tricky), columns) == normalise_rows(expected, columns)
