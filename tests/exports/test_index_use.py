"""Incremental runs cost what they deliver: the window's query goes through an index on
the cursor column (PostgreSQL's own EXPLAIN says so), and the wizard warns when the
chosen cursor has none."""

from __future__ import annotations

import json
import sqlite3

import psycopg
import pytest
from django.urls import reverse
from django.utils import timezone

from exports.filters import validate_filters
from exports.incremental import window_for
from exports.models import Database, Export, refresh_datasets
from exports.sources import open_reader
from tests.conftest import PASSWORD


def _plan_nodes(plan: dict) -> list[dict]:
    nodes = [plan]
    for child in plan.get("Plans", []):
        nodes += _plan_nodes(child)
    return nodes


def _explain(url: str, sql: str) -> list[dict]:
    with psycopg.connect(url) as conn:
        [(document,)] = conn.execute(f"EXPLAIN (FORMAT JSON) {sql}").fetchall()
    plan = document if isinstance(document, list) else json.loads(document)
    return _plan_nodes(plan[0]["Plan"])


@pytest.fixture
def pg_events(pg_source_url, pg_table, db):
    """200,000 events over a year, indexed on `occurred_at`; `seq` and `note` have no index."""
    with psycopg.connect(pg_source_url, autocommit=True) as conn:
        conn.execute(
            f'CREATE TABLE "{pg_table}" '
            "(id bigint PRIMARY KEY, occurred_at timestamptz NOT NULL, seq bigint, note text)"
        )
        conn.execute(
            f"""INSERT INTO "{pg_table}" SELECT g, timestamptz '2026-01-01 00:00:00+00' + g * interval '150 second',
                g, 'note ' || g FROM generate_series(1, 200000) AS g"""
        )
        conn.execute(f'CREATE INDEX "{pg_table}_occurred_at" ON "{pg_table}" (occurred_at)')
        conn.execute(f'ANALYZE "{pg_table}"')
    database = Database.objects.create(name="PG events", url=pg_source_url)
    refresh_datasets(database)
    return database.datasets.get(name=pg_table)


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("cursor", "watermark"), [("occurred_at", "2026-12-30T00:00:00+00:00"), ("id", "199000")], ids=["timestamp", "id"]
)
def test_a_window_of_a_few_new_rows_is_read_through_the_cursor_index(
    users, pg_events, pg_source_url, cursor, watermark
):
    export = Export.objects.create(
        name="feed",
        owner=users["owner"],
        dataset=pg_events,
        export_type=Export.Type.INCREMENTAL,
        cursor_column=cursor,
        watermark={"column": cursor, "value": watermark},
    )
    window = window_for(export, lambda: open_reader(pg_events, [], []), timezone.now())
    filters = validate_filters(window.filters(), pg_events.columns)
    with open_reader(pg_events, [], filters) as reader:
        sql, params = reader._query()
        assert not params
        assert reader.estimate_rows() < 5_000  # the planner sees the window's few rows
        mark_sql = reader._max_value_sql(pg_events.column(cursor))
    index = f"{pg_events.name}_occurred_at" if cursor == "occurred_at" else f"{pg_events.name}_pkey"
    nodes = _explain(pg_source_url, sql)
    assert any(node.get("Index Name") == index for node in nodes), [node["Node Type"] for node in nodes]
    assert not any(node["Node Type"] == "Seq Scan" for node in nodes)
    # The high-water mark too: the index's last entry, not a scan.
    mark_nodes = _explain(pg_source_url, mark_sql)
    assert any(node.get("Index Name") == index for node in mark_nodes), [node["Node Type"] for node in mark_nodes]


@pytest.mark.django_db
def test_the_refresh_records_which_columns_lead_an_index(pg_events, tmp_path):
    indexed = {column["name"]: column["indexed"] for column in pg_events.columns}
    assert indexed == {"id": True, "occurred_at": True, "seq": False, "note": False}

    path = tmp_path / "indexed.sqlite3"
    with sqlite3.connect(path) as conn:
        conn.execute(
            "CREATE TABLE hits (id INTEGER PRIMARY KEY, seen_at TEXT, batch INTEGER, label TEXT, at TIMESTAMP)"
        )
        conn.execute("CREATE INDEX hits_batch_label ON hits (batch, label)")
        conn.execute("CREATE INDEX hits_at ON hits (at)")  # compared as strftime(at): no use to a window
        conn.execute(
            "CREATE INDEX hits_recent ON hits (seen_at) WHERE seen_at > '2026'"
        )  # partial: not for every window
        conn.execute("CREATE VIEW recent AS SELECT * FROM hits")
    database = Database.objects.create(name="SQLite hits", url=f"sqlite:///{path}")
    refresh_datasets(database)
    hits = database.datasets.get(name="hits")
    assert {c["name"]: c["indexed"] for c in hits.columns} == {
        "id": True,
        "seen_at": False,
        "batch": True,
        "label": False,
        "at": False,
    }
    view = database.datasets.get(name="recent")
    assert all("indexed" not in column for column in view.columns), "a view's tables' indexes may serve it"
    assert view.index_warning("seen_at") == ""


@pytest.mark.django_db
def test_the_wizard_warns_when_the_cursor_has_no_index(client, users, pg_events):
    export = Export.objects.create(name="feed", owner=users["owner"], dataset=pg_events)
    client.login(username="alice", password=PASSWORD)
    preview = reverse("exports-schedule-preview", args=[export.id])
    data = {"export_type": "incremental", "schedule_start": "2030-01-01T06:00", "cadence": "6h"}

    warned = client.get(preview, {**data, "cursor_column": "seq"}, HTTP_HX_REQUEST="true").content.decode()
    assert 'id="cursor-warning"' in warned
    assert "every incremental run reads the whole table" in warned
    assert "index on seq" in warned
    quiet = client.get(preview, {**data, "cursor_column": "occurred_at"}, HTTP_HX_REQUEST="true").content.decode()
    assert "cursor-warning" not in quiet
    full = client.get(preview, {**data, "export_type": "periodic_full", "cadence": "day"}, HTTP_HX_REQUEST="true")
    assert "cursor-warning" not in full.content.decode()

    # Without JavaScript: the choices say it, and so does the step once saved with such a cursor.
    step = reverse("exports-wizard", args=[export.id, "schedule"])
    page = client.get(step).content.decode()
    assert "seq (integer, not indexed)" in page
    assert "occurred_at (timestamp)<" in page
    assert client.post(step, {**data, "cursor_column": "seq"}).status_code == 302
    assert "every incremental run reads the whole table" in client.get(step).content.decode()
