from __future__ import annotations

import sqlite3
from itertools import pairwise

import pytest

from exports.demo import build_demo_database


def dump(path) -> dict[str, list[tuple]]:
    with sqlite3.connect(path) as conn:
        return {
            table: conn.execute(f"SELECT * FROM {table} ORDER BY id").fetchall()
            for table in ("profiles", "interactions", "subscriptions", "orders")
        }


def test_it_builds_deterministic_realistic_data(tmp_path):
    counts = build_demo_database(tmp_path / "a.sqlite3", profiles=300, interactions=3_000)
    build_demo_database(tmp_path / "b.sqlite3", profiles=300, interactions=3_000)
    build_demo_database(tmp_path / "c.sqlite3", profiles=300, interactions=3_000, seed=1)
    first = dump(tmp_path / "a.sqlite3")
    assert counts["profiles"] == 300
    assert counts["interactions"] == 3_000
    assert counts["subscriptions"] > 0
    assert counts["orders"] > 0
    assert {table: len(rows) for table, rows in first.items()} == counts
    assert first == dump(tmp_path / "b.sqlite3")
    assert first != dump(tmp_path / "c.sqlite3")

    interactions = first["interactions"]
    assert [row[0] for row in interactions] == list(range(1, 3_001))
    assert all(a[2][:19] <= b[2][:19] for a, b in pairwise(interactions))
    names = " ".join(f"{row[2]} {row[3]}" for row in first["profiles"])
    assert any(ord(char) > 127 for char in names)
    assert any(row[9] is None for row in interactions)
    assert any(row[9] is not None for row in interactions)


def test_it_declares_types_the_reader_understands(tmp_path):
    path = tmp_path / "demo.sqlite3"
    build_demo_database(path, profiles=50, interactions=100)
    with sqlite3.connect(path) as conn:
        declared = {row[1]: row[2] for row in conn.execute("PRAGMA table_info(interactions)")}
        views = conn.execute("SELECT name FROM sqlite_master WHERE type = 'view'").fetchall()
    assert declared["occurred_at"] == "TIMESTAMP"
    assert declared["revenue"] == "DECIMAL(10,2)"
    assert views == [("active_subscribers",)]


def test_a_failed_build_leaves_nothing_behind(tmp_path):
    path = tmp_path / "demo.sqlite3"
    path.write_text("the previous demo")
    with pytest.raises(TypeError):
        build_demo_database(path, profiles="many", interactions=10)
    assert path.read_text() == "the previous demo"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["demo.sqlite3"]
