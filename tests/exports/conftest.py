from __future__ import annotations

import pytest

from exports.demo import build_demo_database
from exports.models import Database, refresh_datasets


@pytest.fixture
def crm(db, tmp_path):
    """A small demo source of the test's own, to add rows to: (Database, its file)."""
    path = tmp_path / "crm.sqlite3"
    build_demo_database(path, profiles=300, interactions=3_000)
    database = Database.objects.create(name="CRM", url=f"sqlite:///{path}")
    refresh_datasets(database)
    return database, path
