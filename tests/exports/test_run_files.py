"""A run's files follow the run: where it delivered them is fixed when it is created, so
downloads, expiry and deletion don't follow the export's later changes; and nothing
deletes what a run still needs."""

from __future__ import annotations

import hashlib
import random
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import psycopg
import pytest
from django.core.files.storage import storages
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from connectors.models import Connector
from exports import actions
from exports.models import ApiToken, Database, Export, Run, refresh_datasets
from exports.scheduler import expire_downloads
from tests.api.conftest import ApiClient
from tests.conftest import start_worker_in_background, wait_until_running
from tests.pages import refusal_of

pytestmark = pytest.mark.django_db(transaction=True)


def on_disk(run: Run) -> list[Path]:
    storage = storages["exports"]
    return [Path(storage.path(f.path)) for f in run.files.order_by("part")]


def signed_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def finished_desktop_run(owner, dataset, worker, **fields) -> tuple[Export, Run]:
    fields.setdefault("export_type", Export.Type.INCREMENTAL)
    fields.setdefault("cursor_column", "id")
    export = Export.objects.create(name="Follows its run", owner=owner, dataset=dataset, rows_per_file=2_000, **fields)
    run = actions.queue_run(export, user=owner)
    worker()
    run.refresh_from_db()
    assert run.status == Run.Status.SUCCEEDED, run.error_message
    return export, run


def test_a_run_keeps_its_desktop_files_after_the_export_moves_to_a_connector(users, demo_database, worker):
    owner = users["owner"]
    export, run = finished_desktop_run(owner, demo_database.datasets.get(name="interactions"), worker)
    paths = on_disk(run)
    assert len(paths) == 3
    assert all(path.is_file() for path in paths)
    digests = [f.sha256 for f in run.files.order_by("part")]

    # The export now delivers to S3 (a store this test never reaches).
    connector = Connector.objects.create(
        name="Lake", kind=Connector.Kind.S3, owner=owner, options={"bucket": "lake", "region": "us-east-1"}
    )
    Export.objects.filter(id=export.id).update(connector=connector)
    run.refresh_from_db()
    assert (run.destination_kind, run.connector_id, run.is_downloadable) == ("desktop", None, True)

    # The page's download still reads the Desktop files: a zip of the three parts.
    page = signed_in(owner).get(reverse("runs-download", args=[run.id]))
    assert page.status_code == 200
    assert page["Content-Type"] == "application/zip"
    assert len(b"".join(page.streaming_content)) > sum(path.stat().st_size for path in paths)

    # So do the API's signed URLs, which need no token.
    api = ApiClient(Client(), ApiToken.issue(owner, "files")[1])
    report = api.get(f"runs/{run.id}").json()
    assert report["ExpiresUtc"] is not None
    for document, digest in zip(report["Files"], digests, strict=True):
        response = Client().get(document["Url"])
        assert response.status_code == 200, response.content
        assert hashlib.sha256(b"".join(response.streaming_content)).hexdigest() == digest

    # And they expire on time, from the Desktop storage.
    expire_downloads(run.expires_at - timedelta(seconds=1))
    run.refresh_from_db()
    assert run.status == Run.Status.SUCCEEDED
    assert all(path.is_file() for path in paths)
    expire_downloads(run.expires_at + timedelta(seconds=1))
    run.refresh_from_db()
    assert run.status == Run.Status.EXPIRED
    assert not any(path.exists() for path in paths)
    assert Client().get(report["Files"][0]["Url"]).json()["Code"] == "RUN_EXPIRED"


def test_deleting_a_draft_removes_its_desktop_files_from_disk(users, demo_database, worker):
    owner = users["owner"]
    export, run = finished_desktop_run(owner, demo_database.datasets.get(name="orders"), worker)
    paths = on_disk(run)
    folder = Path(storages["exports"].path(str(export.id)))
    assert paths
    assert all(path.is_file() for path in paths)
    assert folder.is_dir()

    browser = signed_in(owner)
    asked = browser.get(reverse("exports-delete", args=[export.id])).content.decode()
    assert f"the {len(paths)} downloadable file" in asked
    response = browser.post(reverse("exports-delete", args=[export.id]))
    assert response.status_code == 302
    assert not Export.objects.filter(id=export.id).exists()
    assert not any(path.exists() for path in paths)
    assert not folder.exists()


@contextmanager
def gated_source(url: str, table: str, rows: int, gate_at: int):
    """A PostgreSQL view of `rows` rows (id, payload) whose read stops at row `gate_at`
    while the test holds the gate, an advisory lock: a run that stays running for as long
    as the test needs, however fast the machine. Only reading `payload` waits, so the
    run's MAX(id) and count don't. Yields the view's name and a function that opens the gate."""
    key = random.randrange(1, 2**31)
    gate = psycopg.connect(url, autocommit=True)
    try:
        gate.execute("SELECT pg_advisory_lock(%s)", [key])
        gate.execute(
            f'CREATE TABLE "{table}" AS SELECT g AS id, md5(g::text) AS payload FROM generate_series(1, {rows}) g'
        )
        gate.execute(
            f'CREATE FUNCTION "{table}_gate"(i int, p text) RETURNS text LANGUAGE plpgsql STABLE AS $$ '
            f"BEGIN IF i = {gate_at} THEN PERFORM pg_advisory_xact_lock_shared({key}); END IF; RETURN p; END $$"
        )
        gate.execute(f'CREATE VIEW "{table}_v" AS SELECT id, "{table}_gate"(id, payload) AS payload FROM "{table}"')
        yield f"{table}_v", lambda: gate.execute("SELECT pg_advisory_unlock(%s)", [key])
    finally:
        gate.execute("SELECT pg_advisory_unlock_all()")
        gate.execute(f'DROP VIEW IF EXISTS "{table}_v"')
        gate.execute(f'DROP FUNCTION IF EXISTS "{table}_gate"(int, text)')
        gate.close()


def test_a_draft_whose_run_is_running_cannot_be_deleted_and_its_run_finishes_intact(users, db, pg_source_url, pg_table):
    """Unschedule while the run goes on, then try to delete through the page and the
    API: both refuse, the run finishes, and its report and files are all there."""
    owner = users["owner"]
    with gated_source(pg_source_url, pg_table, rows=400_000, gate_at=250_000) as (view, open_gate):
        database = Database.objects.create(name="Big", url=pg_source_url)
        refresh_datasets(database)
        export = Export.objects.create(
            name="Long feed",
            owner=owner,
            dataset=database.datasets.get(name=view),
            export_type=Export.Type.INCREMENTAL,
            cursor_column="id",
            schedule_unit="hour",
            schedule_interval=3,
            schedule_start=timezone.now() + timedelta(hours=1),
            schedule_end=timezone.now() + timedelta(days=30),
            file_format=Export.Format.NDJSON,
            rows_per_file=100_000,
        )
        actions.schedule(owner, export)
        run = actions.run_now(owner, export)
        worker = start_worker_in_background()
        try:
            wait_until_running(run)

            browser = signed_in(owner)
            assert refusal_of(browser.post(reverse("exports-unschedule", args=[export.id]))) == ""
            export.refresh_from_db()
            assert export.is_draft
            # The list says why there is no Delete.
            drafts = browser.get(reverse("exports-list") + "?tab=draft").content.decode()
            assert "a run of this export is queued or running" in drafts
            assert refusal_of(browser.post(reverse("exports-delete", args=[export.id]))) == "RUN_IN_PROGRESS"
            api = ApiClient(Client(enforce_csrf_checks=True), ApiToken.issue(owner, "delete")[1])
            refused = api.delete(f"exports/{export.id}")
            assert refused.status_code == 409
            assert refused.json()["Code"] == "RUN_IN_PROGRESS"
            assert Export.objects.filter(id=export.id).exists()
            run.refresh_from_db()
            assert run.status == Run.Status.RUNNING

            open_gate()
            _, stderr = worker.communicate(timeout=180)
        finally:
            if worker.poll() is None:
                worker.kill()
    assert worker.returncode == 0, stderr[-2000:]
    run.refresh_from_db()
    assert run.status == Run.Status.SUCCEEDED, run.error_message
    assert run.row_count == 400_000
    paths = on_disk(run)
    assert len(paths) == 4
    assert all(path.is_file() for path in paths)
    assert sum(f.rows for f in run.files.all()) == 400_000
    report = signed_in(owner).get(reverse("runs-detail", args=[run.id]))
    assert report.status_code == 200
    assert "400,000" in report.content.decode()
    # Once the run is over, the draft can go, its files with it.
    assert refusal_of(signed_in(owner).post(reverse("exports-delete", args=[export.id]))) == ""
    assert not any(path.exists() for path in paths)
