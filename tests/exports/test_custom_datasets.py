"""Custom datasets: platform staff's own SELECT, checked by the database when saved,
exported like a table (filters, cursor, incremental windows), always read-only."""

from __future__ import annotations

import sqlite3

import psycopg
import pytest
from django.urls import reverse

from exports.actions import queue_run
from exports.models import Database, Dataset, Export, Run, refresh_datasets
from tests.conftest import PASSWORD, start_worker_in_background
from tests.exports.readback import normalise_rows
from tests.exports.test_runs import read_run

pytestmark = pytest.mark.django_db(transaction=True)

JOINED = """
    -- the latest interactions, with who made them
    SELECT i.id, i.occurred_at, i.event_type, i.revenue, p.email, p.country_code AS profile_country
    FROM interactions i JOIN profiles p ON p.id = i.profile_id
    WHERE i.channel <> 'sms';
"""


def add_custom_dataset(client, database: Database, **fields):
    data = {"database": database.id, "name": "Interactions with profiles", "data_type": "custom", "query": JOINED}
    data.update(fields)
    return client.post(reverse("admin:exports_dataset_add"), data)


def query_errors(response) -> list[str]:
    assert response.status_code == 200, "the form was accepted"
    return response.context["adminform"].form.errors.get("query", [])


def test_staff_define_a_join_whose_incremental_export_delivers_exactly_its_rows(client, users, crm, worker):
    database, path = crm
    client.login(username="root", password=PASSWORD)
    response = add_custom_dataset(client, database, cursor_column="id")
    assert response.status_code == 302, response.context["adminform"].form.errors
    dataset = Dataset.objects.get(name="Interactions with profiles")
    assert dataset.is_custom
    assert dataset.query.endswith("WHERE i.channel <> 'sms'")  # stored without its semicolon
    assert {c["name"]: c["type"] for c in dataset.columns} == {
        "id": "integer",
        "occurred_at": "timestamp",
        "event_type": "text",
        "revenue": "decimal",
        "email": "text",
        "profile_country": "text",
    }

    export = Export.objects.create(
        name="Joined feed",
        owner=users["owner"],
        dataset=dataset,
        export_type=Export.Type.INCREMENTAL,
        cursor_column="id",
        file_format="ndjson",
        filters=[{"column": "event_type", "operator": "neq", "value": "unsubscribe"}],
    )
    expected_sql = f"SELECT * FROM ({JOINED.rstrip().rstrip(';')}) WHERE event_type <> 'unsubscribe' ORDER BY id"
    with sqlite3.connect(path) as conn:
        conn.row_factory = sqlite3.Row
        first_expected = [dict(row) for row in conn.execute(expected_sql)]
    assert 0 < len(first_expected) < 3_000

    queue_run(export, user=users["owner"])
    worker()
    first = export.runs.get()
    assert first.status == Run.Status.SUCCEEDED, first.error_message
    columns = dataset.columns
    assert sorted(normalise_rows(read_run(first, export), columns)) == normalise_rows(first_expected, columns)

    # New interactions arrive: the next run delivers exactly the new joined rows.
    with sqlite3.connect(path) as conn:
        conn.execute(
            "INSERT INTO interactions (profile_id, occurred_at, channel, event_type, revenue) "
            "SELECT profile_id, occurred_at, 'email', 'click', revenue FROM interactions ORDER BY id LIMIT 40"
        )
        conn.row_factory = sqlite3.Row
        second_expected = [dict(row) for row in conn.execute(expected_sql)][len(first_expected) :]
    assert len(second_expected) == 40
    queue_run(export, user=users["owner"])
    worker()
    second = export.runs.exclude(id=first.id).get()
    assert second.status == Run.Status.SUCCEEDED, second.error_message
    assert sorted(normalise_rows(read_run(second, export), columns)) == normalise_rows(second_expected, columns)

    # A refresh of the database keeps it, and reads its columns again.
    refresh_datasets(database)
    dataset.refresh_from_db()
    assert dataset.is_custom
    assert dataset.missing_since is None


@pytest.mark.parametrize(
    ("query", "reason"),
    [
        ("DELETE FROM interactions", "a custom dataset is one SELECT query (WITH ... SELECT too), not DELETE"),
        ("UPDATE profiles SET email = ''", "not UPDATE"),
        ("SELECT id FROM interactions; DROP TABLE profiles", 'the database refused the query: near ";": syntax error'),
        ("SELECT id, FROM interactions", 'the database refused the query: near "FROM": syntax error'),
        ("SELECT id FROM no_such_table", "the database refused the query: no such table: no_such_table"),
        ("SELECT p.id, i.id FROM profiles p JOIN interactions i ON i.profile_id = p.id", "column 'id' comes twice"),
        ("", "This field is required."),
    ],
)
def test_a_bad_query_is_refused_on_save_with_the_reason(client, users, crm, query, reason):
    database, path = crm
    client.login(username="root", password=PASSWORD)
    errors = query_errors(add_custom_dataset(client, database, query=query))
    assert any(reason in error for error in errors), errors
    assert not Dataset.objects.filter(kind=Dataset.Kind.QUERY).exists()
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT count(*) FROM profiles").fetchone()[0] == 300


def test_a_cursor_column_the_query_does_not_give_is_refused(client, users, crm):
    database, _ = crm
    client.login(username="root", password=PASSWORD)
    response = add_custom_dataset(client, database, cursor_column="profile_id")
    assert response.status_code == 200
    assert "the query gives no column 'profile_id'" in response.context["adminform"].form.errors["cursor_column"][0]


def test_only_superusers_add_custom_datasets(client, users, crm):
    database, _ = crm
    client.login(username="carol", password=PASSWORD)  # staff, not a superuser
    assert add_custom_dataset(client, database).status_code == 403
    assert not Dataset.objects.filter(kind=Dataset.Kind.QUERY).exists()


@pytest.fixture
def warehouse(pg_source_url, pg_table, db):
    """A PostgreSQL source with people and their orders."""
    with psycopg.connect(pg_source_url, autocommit=True) as conn:
        conn.execute(f'CREATE TABLE "{pg_table}" (id bigint PRIMARY KEY, email text, total numeric(10,2))')
        conn.execute(
            f"INSERT INTO \"{pg_table}\" SELECT g, CASE WHEN g % 9 = 0 THEN NULL ELSE 'p' || g || '@example.com' END, "
            "round((g * 37 % 10000) / 100.0, 2) FROM generate_series(1, 2000) g"
        )
        conn.execute(f'CREATE SEQUENCE "{pg_table}_seq"')
    database = Database.objects.create(name="Warehouse", url=pg_source_url)
    refresh_datasets(database)
    yield database, pg_table
    with psycopg.connect(pg_source_url, autocommit=True) as conn:
        conn.execute(f'DROP SEQUENCE IF EXISTS "{pg_table}_seq"')


def test_a_postgresql_custom_query_is_exported_exactly(client, users, warehouse, pg_source_url, worker):
    database, table = warehouse
    query = (
        f'SELECT a.id, a.email, a.total, b.total AS next_total, a.total + b.total AS pair_total FROM "{table}" a '
        f'JOIN "{table}" b ON b.id = a.id + 1 WHERE a.total > 20'
    )
    client.login(username="root", password=PASSWORD)
    response = add_custom_dataset(client, database, name="Pairs", query=query, cursor_column="id")
    assert response.status_code == 302, response.context["adminform"].form.errors
    dataset = Dataset.objects.get(name="Pairs")
    types = {c["name"]: c["type"] for c in dataset.columns}
    # numeric(10,2) keeps its precision; a sum of two has none in PostgreSQL: its text.
    assert types == {
        "id": "integer",
        "email": "text",
        "total": "decimal",
        "next_total": "decimal",
        "pair_total": "text",
    }
    # Incremental: its reader asks for the query's primary key (there is none) and its mark.
    export = Export.objects.create(
        name="Pairs",
        owner=users["owner"],
        dataset=dataset,
        file_format="parquet",
        export_type=Export.Type.INCREMENTAL,
        cursor_column="id",
    )
    queue_run(export, user=users["owner"])
    worker()
    run = export.runs.get()
    assert run.status == Run.Status.SUCCEEDED, run.error_message
    with psycopg.connect(pg_source_url) as conn:
        cursor = conn.execute(f"SELECT id, email, total, next_total, pair_total::text FROM ({query}) q ORDER BY id")
        names = [c.name for c in cursor.description]
        expected = [dict(zip(names, row, strict=True)) for row in cursor]
    assert 1000 < len(expected) < 2000
    columns = dataset.columns
    exported = sorted(normalise_rows(read_run(run, export), columns))
    assert exported == normalise_rows(expected, columns)


def test_a_write_through_a_postgresql_custom_query_is_refused(client, users, warehouse, pg_source_url, worker):
    database, table = warehouse
    client.login(username="root", password=PASSWORD)
    # A data-changing WITH is refused on save, by the database.
    errors = query_errors(
        add_custom_dataset(
            client, database, query=f'WITH gone AS (DELETE FROM "{table}" RETURNING id) SELECT id FROM gone'
        )
    )
    assert any("data-modifying statement" in error for error in errors), errors
    # A query that closes the subquery early to add statements is refused, never run.
    escape = f'SELECT 1 AS a) x; DELETE FROM "{table}"; COMMIT; SELECT * FROM (SELECT 1 AS a'
    errors = query_errors(add_custom_dataset(client, database, query=escape))
    assert any("cannot insert multiple commands" in error for error in errors), errors
    # A function that writes gets past LIMIT 0, but the run reads in a read-only transaction.
    response = add_custom_dataset(client, database, name="Numbered", query=f"SELECT nextval('{table}_seq') AS n")
    assert response.status_code == 302, response.context["adminform"].form.errors
    export = Export.objects.create(name="Numbered", owner=users["owner"], dataset=Dataset.objects.get(name="Numbered"))
    queue_run(export, user=users["owner"])
    worker()
    run = export.runs.get()
    assert run.status == Run.Status.FAILED
    assert run.error_code == "SOURCE_QUERY_FAILED"
    assert "read-only transaction" in run.error_message
    with psycopg.connect(pg_source_url) as conn:
        assert conn.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0] == 2000
        assert conn.execute(f'SELECT last_value, is_called FROM "{table}_seq"').fetchone() == (1, False)


def test_a_postgresql_custom_query_past_its_timeout_fails_the_run(client, users, warehouse):
    database, _ = warehouse
    client.login(username="root", password=PASSWORD)
    response = add_custom_dataset(
        client, database, name="Slow", query="SELECT g AS n FROM generate_series(1, 5) g, pg_sleep(3)"
    )
    assert response.status_code == 302, response.context["adminform"].form.errors
    export = Export.objects.create(name="Slow", owner=users["owner"], dataset=Dataset.objects.get(name="Slow"))
    run = queue_run(export, user=users["owner"])
    worker = start_worker_in_background(env={"EXPORT_CUSTOM_QUERY_TIMEOUT": "1"})
    _, stderr = worker.communicate(timeout=120)
    assert worker.returncode == 0, stderr[-2000:]
    run.refresh_from_db()
    assert run.status == Run.Status.FAILED
    assert run.error_code == "SOURCE_QUERY_FAILED"
    assert "statement timeout" in run.error_message
