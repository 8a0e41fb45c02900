"""The lists' order at scale (exports/listing.py, `Sorted`): a page is read by index in
two parts when the sort's column may be empty, and must still be exactly the order of
one ORDER BY ... NULLS LAST, across every page boundary. And the columns the lists read
instead of joining (`Run.sandbox`, `Export.last_run_at`) stay true."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.db.models import F
from django.urls import reverse
from django.utils import timezone

from exports import actions, listing
from exports.models import Export, Run
from orgs.models import Sandbox, default_sandbox
from tests.exports.test_scheduler import repeating
from tests.exports.test_views import login

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def listed(users, demo_database):
    """Exports with and without a next run (ties among those with one), and runs whose
    times tie, so every part of the order is exercised."""
    orders = demo_database.datasets.get(name="orders")
    now = timezone.now()
    exports = []
    for number in range(9):
        exports.append(
            Export.objects.create(
                name=f"export {number % 4}",  # names tie too
                owner=users["owner"],
                dataset=orders,
                status=Export.Status.SCHEDULED if number % 3 else Export.Status.DRAFT,
                next_run_at=None if number % 3 == 0 else now + timedelta(hours=number % 2),
            )
        )
    for number, export in enumerate(exports[:7]):
        for attempt in range(number % 3 + 1):
            Run.objects.create(
                export=export,
                status=Run.Status.SUCCEEDED,
                queued_at=now - timedelta(minutes=(number + attempt) % 4),
            )
    return exports


def _reference(rows, column: str, descending: bool, ties: list[str]) -> list:
    """One ORDER BY with the empty values last: what the pages must add up to."""
    first = F(column).desc(nulls_last=True) if descending else F(column).asc(nulls_last=True)
    rest = [F(tie).desc() if descending else F(tie).asc() for tie in ties]
    return list(rows.order_by(first, *rest).values_list("pk", flat=True))


def _paged(order: listing.Sorted, size: int) -> list:
    ids, start = [], 0
    while True:
        window = order[start : start + size]
        ids += window
        if len(window) < size:
            return ids
        start += size


@pytest.mark.parametrize("sort", ["name", "-name", "last_run", "-last_run", "next_run", "-next_run"])
@pytest.mark.parametrize("size", [1, 2, 4, 25])
def test_export_pages_add_up_to_one_order_with_the_empty_last(listed, sort, size):
    exports = Export.objects.filter(sandbox_id=default_sandbox())
    order = listing.Sorted(exports, sort, listing.EXPORT_SORT_COLUMNS)
    column = listing.EXPORT_SORT_COLUMNS[sort.lstrip("-")]
    expected = _reference(exports, column, sort.startswith("-"), ["pk"])
    assert _paged(order, size) == expected
    assert order.count() == len(expected) == 9
    if column != "name":  # some have no value, and they come last
        assert getattr(Export.objects.get(pk=expected[-1]), column) is None


@pytest.mark.parametrize("sort", ["name", "-name", "last_run", "-last_run", "next_run", "-next_run"])
@pytest.mark.parametrize("size", [1, 3, 25])
def test_run_pages_add_up_to_one_order_grouped_by_export(listed, sort, size):
    runs = Run.objects.filter(sandbox_id=default_sandbox())
    order = listing.Sorted(runs, sort, listing.RUN_SORT_COLUMNS)
    column = listing.RUN_SORT_COLUMNS[sort.lstrip("-")]
    ties = ["export__id", "queued_at", "pk"] if column.startswith("export__") else ["pk"]
    expected = _reference(runs, column, sort.startswith("-"), ties)
    assert _paged(order, size) == expected
    assert len(expected) == Run.objects.count() == 13


def test_a_window_past_the_end_is_empty(listed):
    order = listing.Sorted(Export.objects.all(), "next_run", listing.EXPORT_SORT_COLUMNS)
    assert order[9:12] == []
    assert order[8:12] == _reference(Export.objects.all(), "next_run_at", False, ["pk"])[8:]


def test_a_run_takes_its_exports_sandbox_and_is_its_latest(listed, users):
    export = listed[8]  # no runs yet
    assert export.last_run_at is None
    run = actions.queue_run(export, user=users["owner"])
    export.refresh_from_db()
    assert run.sandbox_id == export.sandbox_id
    assert export.last_run_at == run.queued_at
    # An older run, recorded later (a test, an import), doesn't make the export look older.
    Run.objects.create(export=export, status=Run.Status.FAILED, queued_at=run.queued_at - timedelta(days=1))
    export.refresh_from_db()
    assert export.last_run_at == run.queued_at


def test_the_scheduler_records_the_runs_it_starts(users, demo_database):
    due = repeating(
        users,
        demo_database,
        schedule_end=None,
        status=Export.Status.SCHEDULED,
        next_run_at=timezone.now() - timedelta(minutes=1),
    )
    [outcome] = actions.start_due_runs([due.pk], timezone.now())
    assert outcome.run is not None
    due.refresh_from_db()
    assert Run.objects.get(pk=outcome.run.pk).sandbox_id == due.sandbox_id
    assert due.last_run_at == Run.objects.get(pk=outcome.run.pk).queued_at


def test_the_migration_fills_both_columns_from_what_exists(users, demo_database):
    before = [("exports", "0019_partitioned_runs")]
    executor = MigrationExecutor(connection)
    executor.migrate(before)
    old = executor.loader.project_state(before).apps
    OldExport, OldRun = old.get_model("exports", "Export"), old.get_model("exports", "Run")
    sandbox = Sandbox.objects.create(
        organisation_id=Sandbox.objects.get(pk=default_sandbox()).organisation_id,
        name="Development",
        slug="development",
    )
    dataset_id = demo_database.datasets.get(name="orders").pk
    now = timezone.now()
    ran = OldExport.objects.create(name="ran", owner_id=users["owner"].pk, dataset_id=dataset_id, sandbox_id=sandbox.pk)
    never = OldExport.objects.create(
        name="never", owner_id=users["owner"].pk, dataset_id=dataset_id, sandbox_id=default_sandbox()
    )
    for minutes in (5, 1, 9):
        OldRun.objects.create(export=ran, status="succeeded", queued_at=now - timedelta(minutes=minutes))
    try:
        executor = MigrationExecutor(connection)
        executor.migrate([("exports", "0020_list_columns")])
        assert set(Run.objects.values_list("sandbox_id", flat=True)) == {sandbox.pk}
        assert Export.objects.get(pk=ran.pk).last_run_at == now - timedelta(minutes=1)
        assert Export.objects.get(pk=never.pk).last_run_at is None
    finally:
        executor = MigrationExecutor(connection)
        executor.migrate(executor.loader.graph.leaf_nodes())


def test_a_runs_tab_counts_to_its_limit_and_pages_on_past_it(client, users, listed, monkeypatch):
    monkeypatch.setattr(listing, "COUNT_LIMIT", 10)
    monkeypatch.setattr(listing, "PAGE_SIZE", 4)
    login(client, users["owner"])

    def finished(page: int) -> str:
        response = client.get(reverse("exports-list"), {"tab": "finished", "page": page})
        assert response.status_code == 200
        return response.content.decode()

    first = finished(1)
    assert '<span class="count">10+</span>' in first  # 13 runs: not counted to the end
    assert "Page 1</span>" in first  # and no "of 3"
    assert "page=2" in first
    last = finished(4)  # past what was counted: the 13th run is still there
    assert last.count('<span class="badge succeeded">Succeeded</span>') == 1
    assert "page=3" in last
    assert "No finished runs" in finished(5)
    assert finished(2).count('<span class="badge succeeded">Succeeded</span>') == 4
    # Under the limit the count is exact, with its separators, and the pages known.
    monkeypatch.setattr(listing, "COUNT_LIMIT", 10_000)
    assert '<span class="count">13</span>' in finished(1)
    assert "Page 1 of 4" in finished(1)
