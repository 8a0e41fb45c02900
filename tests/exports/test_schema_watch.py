"""Schema watch: a source's refresh flags the exports whose columns are gone or changed,
tells their people, and their next run fails with SCHEMA_CHANGED before reading."""

from __future__ import annotations

import shutil
import sqlite3
from datetime import timedelta
from pathlib import Path

import django_rq
import pytest
from django.conf import settings
from django.core import mail
from django.urls import reverse
from django.utils import timezone

from exports import actions, schema_watch
from exports.actions import queue_run
from exports.models import Database, Export, Run, refresh_datasets
from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def source(demo_path, tmp_path):
    """A copy of the demo source, to change under the exports' feet."""
    copy = tmp_path / "crm.sqlite3"
    shutil.copy(demo_path, copy)
    database = Database.objects.create(name="Changing CRM", url=f"sqlite:///{copy}")
    refresh_datasets(database)
    database.path = copy
    return database


def draft(owner, dataset, **fields) -> Export:
    """A draft saved as the wizard saves one (so it records the columns it uses)."""
    export = Export(
        owner=owner,
        dataset=dataset,
        sandbox_id=dataset.database.sandbox_id,
        name=fields.pop("name", "Orders to the ERP"),
        **fields,
    )
    return actions.save_draft(owner, export)


def alter(database, *statements: str) -> None:
    with sqlite3.connect(database.path) as conn:
        for statement in statements:
            conn.execute(statement)


def refresh_as_admin(client, users, database) -> None:
    assert client.login(username=users["admin"].username, password=PASSWORD)
    response = client.post(reverse("sources-refresh", args=[database.id]))
    assert response.status_code == 302
    client.logout()


def test_a_dropped_column_flags_the_export_tells_its_people_and_fails_its_next_run(client, users, source, worker):
    orders = source.datasets.get(name="orders")
    export = draft(
        users["owner"],
        orders,
        columns=["id", "total_amount", "coupon_code"],
        report_recipients="erp-team@example.com",
    )
    untouched = draft(users["owner"], orders, name="Totals only", columns=["id", "total_amount"])
    assert export.schema_columns["coupon_code"] == "text"
    alter(source, "ALTER TABLE orders DROP COLUMN coupon_code")
    refresh_as_admin(client, users, source)

    export.refresh_from_db()
    assert export.schema_problem == "the column coupon_code is gone from orders"
    assert export.schema_problem_at is not None
    untouched.refresh_from_db()
    assert untouched.schema_problem == ""
    [message] = mail.outbox
    assert set(message.to) == {"alice@example.com", "erp-team@example.com"}
    assert "coupon_code" in message.subject + message.body
    assert str(export.id) in message.body  # the link to the export's page

    # Manage Exports and the export's page say so.
    assert client.login(username=users["owner"].username, password=PASSWORD)
    listing = client.get(reverse("exports-list") + "?tab=draft").content.decode()
    assert "Schema changed" in listing
    assert "The column coupon_code is gone from orders" in listing
    page = client.get(export.get_absolute_url()).content.decode()
    assert 'id="schema-problem"' in page

    # Its next run fails before reading, naming the column; the other export runs.
    run = queue_run(export, user=users["owner"])
    worker()
    run.refresh_from_db()
    assert run.status == Run.Status.FAILED
    assert run.error_code == "SCHEMA_CHANGED"
    assert "the column coupon_code is gone from orders" in run.error_message
    assert run.started_at is not None
    assert not run.files.exists()
    other = queue_run(untouched, user=users["owner"])
    worker()
    other.refresh_from_db()
    assert other.status == Run.Status.SUCCEEDED, other.error_message

    # A second refresh finds the same problem: no second e-mail.
    refresh_as_admin(client, users, source)
    assert len(mail.outbox) == 1


def test_a_type_change_flags_the_export_and_a_wider_decimal_does_not(users, source):
    profiles = source.datasets.get(name="profiles")
    export = draft(users["owner"], profiles, columns=["id", "email", "country_code"])
    alter(
        source,
        "ALTER TABLE profiles RENAME COLUMN country_code TO old_country",
        "ALTER TABLE profiles ADD COLUMN country_code INTEGER",
    )
    schema_watch.refresh(source)
    export.refresh_from_db()
    assert export.schema_problem == "the column country_code of profiles changed type, from text to integer"


def test_compatible_types():
    assert schema_watch.compatible("text", "text")
    assert schema_watch.compatible("decimal(10,2)", "decimal(12,2)")
    assert not schema_watch.compatible("decimal(12,2)", "decimal(10,2)")
    assert not schema_watch.compatible("decimal(10,2)", "decimal(10,3)")
    assert schema_watch.compatible("integer", "decimal(38,0)")
    assert not schema_watch.compatible("integer", "decimal(10,0)")
    assert not schema_watch.compatible("integer", "text")
    assert not schema_watch.compatible("timestamp", "datetime")


def test_a_vanished_table_flags_its_exports_and_a_restored_column_clears_the_flag(users, source):
    orders = source.datasets.get(name="orders")
    export = draft(users["owner"], orders, columns=["id", "coupon_code"])
    alter(source, "ALTER TABLE orders RENAME TO orders_old")
    schema_watch.refresh(source)
    export.refresh_from_db()
    assert export.schema_problem == "the table orders is gone from Changing CRM"
    alter(source, "ALTER TABLE orders_old RENAME TO orders")
    schema_watch.refresh(source)
    export.refresh_from_db()
    assert export.schema_problem == ""
    assert export.schema_problem_at is None


def test_editing_the_draft_accepts_the_table_as_it_is_now(users, source):
    orders = source.datasets.get(name="orders")
    export = draft(users["owner"], orders, columns=["id", "total_amount", "coupon_code"])
    alter(source, "ALTER TABLE orders DROP COLUMN coupon_code")
    schema_watch.refresh(source)
    export.refresh_from_db()
    assert export.schema_problem
    export.columns = ["id", "total_amount"]
    actions.save_draft(users["owner"], export)
    export.refresh_from_db()
    assert export.schema_problem == ""
    assert set(export.schema_columns) == {"id", "total_amount"}


def test_saving_a_flagged_draft_with_the_column_still_in_keeps_the_flag(users, source):
    orders = source.datasets.get(name="orders")
    export = draft(users["owner"], orders, columns=["id", "coupon_code"])
    alter(source, "ALTER TABLE orders DROP COLUMN coupon_code")
    schema_watch.refresh(source)
    export.refresh_from_db()
    export.file_format = "ndjson"
    export.compression = "gzip"
    actions.save_draft(users["owner"], export)  # another step saved: the column is still in
    export.refresh_from_db()
    assert export.schema_problem == "the column coupon_code is gone from orders"
    copy = actions.copy(users["owner"], export)
    assert copy.schema_problem == export.schema_problem
    # The column back, and refreshed: the flag goes, though the draft was saved without it.
    alter(source, "ALTER TABLE orders ADD COLUMN coupon_code TEXT")
    schema_watch.refresh(source)
    export.refresh_from_db()
    assert export.schema_problem == ""


def test_exports_that_never_run_again_are_left_alone(users, source):
    orders = source.datasets.get(name="orders")
    export = draft(users["owner"], orders, columns=["id", "coupon_code"])
    Export.objects.filter(id=export.id).update(status=Export.Status.FINISHED)
    alter(source, "ALTER TABLE orders DROP COLUMN coupon_code")
    schema_watch.refresh(source)
    export.refresh_from_db()
    assert export.schema_problem == ""
    assert len(mail.outbox) == 0


def test_filters_and_the_cursor_are_watched_too(users, source):
    interactions = source.datasets.get(name="interactions")
    export = draft(
        users["owner"],
        interactions,
        columns=["id"],
        filters=[{"column": "channel", "operator": "eq", "value": "email"}],
    )
    assert set(export.schema_columns) == {"id", "channel"}
    alter(source, "ALTER TABLE interactions DROP COLUMN channel")
    schema_watch.refresh(source)
    export.refresh_from_db()
    assert "the column channel is gone" in export.schema_problem


def test_an_export_saved_before_the_watch_is_judged_by_the_columns_it_was_built_on(users, source):
    orders = source.datasets.get(name="orders")
    # Created directly, as exports were before: no columns recorded.
    export = Export.objects.create(owner=users["owner"], dataset=orders, name="Old one", columns=["id", "coupon_code"])
    assert export.schema_columns == {}
    alter(source, "ALTER TABLE orders DROP COLUMN coupon_code")
    schema_watch.refresh(source)
    export.refresh_from_db()
    assert export.schema_columns == {"id": "integer", "coupon_code": "text"}
    assert export.schema_problem == "the column coupon_code is gone from orders"


def test_the_scheduler_refreshes_each_source_daily_once(users, source, worker):
    orders = source.datasets.get(name="orders")
    export = draft(users["owner"], orders, columns=["id", "coupon_code"])
    alter(source, "ALTER TABLE orders DROP COLUMN coupon_code")
    mail_dir = Path(settings.EMAIL_FILE_PATH)
    before = set(mail_dir.glob("*")) if mail_dir.exists() else set()
    assert schema_watch.refresh_due(timezone.now()) == []  # refreshed just now
    tomorrow = timezone.now() + timedelta(hours=settings.SOURCE_REFRESH_HOURS, minutes=1)
    assert schema_watch.refresh_due(tomorrow) == [source.id]
    assert schema_watch.refresh_due(tomorrow) == []  # claimed: a second scheduler enqueues nothing
    assert django_rq.get_queue(settings.EXPORTS_QUEUE).fetch_job(f"refresh-{source.id}") is not None
    worker()
    export.refresh_from_db()
    assert export.schema_problem == "the column coupon_code is gone from orders"
    # The worker sent the e-mail (to the file backend tests give it).
    sent = [path.read_text() for path in set(mail_dir.glob("*")) - before]
    assert any("coupon_code" in text and "alice@example.com" in text for text in sent)
