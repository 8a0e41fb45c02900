from __future__ import annotations

import shutil
import sqlite3

import pytest
from django.db import connection

from exports import sources
from exports.models import Database, Dataset, refresh_datasets


@pytest.fixture
def copied_demo(db, demo_path, tmp_path):
    copy = tmp_path / "crm.sqlite3"
    shutil.copy(demo_path, copy)
    database = Database.objects.create(name="CRM", url=f"sqlite:///{copy}")
    refresh_datasets(database)
    return database, copy


def test_it_discovers_tables_views_types_and_labels(copied_demo):
    database, _ = copied_demo
    datasets = {d.name: d for d in database.datasets.all()}
    assert set(datasets) == {"profiles", "interactions", "subscriptions", "orders", "active_subscribers"}
    assert datasets["active_subscribers"].kind == Dataset.Kind.VIEW
    assert datasets["profiles"].data_type == Dataset.DataType.PROFILE
    assert datasets["interactions"].data_type == Dataset.DataType.INTERACTION
    assert datasets["orders"].data_type == Dataset.DataType.ORDER
    assert datasets["interactions"].estimated_rows == 5_000
    assert datasets["interactions"].cursor_column == "occurred_at"
    types = {c["name"]: c["type"] for c in datasets["profiles"].columns}
    lifetime_value = datasets["profiles"].column("lifetime_value")
    assert (types["lifetime_value"], lifetime_value["precision"], lifetime_value["scale"]) == ("decimal", 12, 2)
    assert types["email_opt_in"] == "boolean"
    assert types["birth_date"] == "date"
    assert types["created_at"] == "timestamp"


def test_a_refresh_keeps_chosen_labels_and_marks_dropped_tables_missing(copied_demo):
    database, copy = copied_demo
    Dataset.objects.filter(database=database, name="orders").update(data_type=Dataset.DataType.CUSTOM)
    with sqlite3.connect(copy) as conn:
        conn.execute("DROP TABLE subscriptions")
        conn.execute("CREATE TABLE events (id INTEGER, at TIMESTAMP)")
    refresh_datasets(database)
    datasets = {d.name: d for d in database.datasets.all()}
    assert datasets["subscriptions"].missing_since is not None
    assert datasets["orders"].data_type == Dataset.DataType.CUSTOM
    assert datasets["events"].missing_since is None
    assert datasets["events"].data_type == Dataset.DataType.INTERACTION


def test_a_refresh_of_a_missing_file_says_so_and_creates_nothing(db, tmp_path):
    path = tmp_path / "nowhere.sqlite3"
    database = Database.objects.create(name="Gone", url=f"sqlite:///{path}")
    with pytest.raises(sources.SourceUnavailable, match="does not exist"):
        refresh_datasets(database)
    database.refresh_from_db()
    assert "does not exist" in database.refresh_error
    assert not path.exists()


def test_the_source_url_is_encrypted_at_rest(db, demo_path):
    Database.objects.create(name="Secret", url="postgresql://user:hunter2@db.internal/crm")

    with connection.cursor() as cursor:
        cursor.execute("SELECT url FROM exports_database WHERE name = 'Secret'")
        stored = cursor.fetchone()[0]
    assert "hunter2" not in stored
    assert Database.objects.get(name="Secret").url == "postgresql://user:hunter2@db.internal/crm"


def test_sqlite_reads_stay_typed_when_the_first_rows_are_null(tmp_path):
    path = tmp_path / "nulls.sqlite3"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE t (id INTEGER, note TEXT, amount DECIMAL(8,2), at TIMESTAMP)")
        conn.executemany(
            "INSERT INTO t VALUES (?, ?, ?, ?)",
            [
                (i, None, None, None) if i < 3000 else (i, "x", 2 if i % 2 else 2.5, "2026-01-01T10:00:00+02:00")
                for i in range(4000)
            ],
        )
    [found] = sources.discover(f"sqlite:///{path}")
    with sources.SqliteReader(f"sqlite:///{path}", "", "t", found.columns, [], batch_rows=1024) as reader:
        rows = [row for batch in reader.batches() for row in batch.to_pylist()]
    assert len(rows) == 4000
    assert rows[0] == {"id": 0, "note": None, "amount": None, "at": None}
    assert str(rows[-1]["amount"]) == "2.00"
    assert str(rows[-2]["amount"]) == "2.50"
    assert rows[-1]["at"].isoformat() == "2026-01-01T08:00:00+00:00"


def test_a_view_over_a_dropped_table_is_reported_and_marked_missing(copied_demo):
    database, copy = copied_demo
    with sqlite3.connect(copy) as conn:
        conn.execute("DROP TABLE subscriptions")
    refresh_datasets(database)
    database.refresh_from_db()
    assert database.datasets.get(name="active_subscribers").missing_since is not None
    assert "can't read active_subscribers" in database.refresh_error
