"""The move to organisations: a database made with the schema before sandboxes has
everything in the organisation "Default", sandbox production, afterwards, and it all
still works: a download, a signed URL, a scheduled run."""

from __future__ import annotations

import hashlib
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.urls import reverse
from django.utils import timezone

from connectors.models import Connector, SftpLogin, login_for
from exports import actions
from exports.delivery import desktop_storage
from exports.models import ApiToken, Database, Export, Run
from exports.sources import discover
from orgs.models import Membership, Organisation, Sandbox
from tests.conftest import PASSWORD

BEFORE = [("exports", "0009_spreadsheet_safe_and_error_codes"), ("connectors", "0004_connection_tests"), ("orgs", None)]
SECRET = "exs_migrated-token-secret-0123456789"
CONTENT = b"id,email\n1,a@example.com\n"


@pytest.mark.django_db(transaction=True)
def test_everything_made_before_sandboxes_is_in_default_production_and_still_works(client, demo_path, worker):
    executor = MigrationExecutor(connection)
    executor.migrate(BEFORE)
    try:
        old = executor.loader.project_state([node for node in BEFORE if node[1]]).apps
        user = old.get_model("auth", "User").objects.create(username="alice", password="")
        marketers, _ = old.get_model("auth", "Group").objects.get_or_create(name="marketers")
        user.groups.add(marketers)
        OldUser, OldGroup = old.get_model("auth", "User"), old.get_model("auth", "Group")
        OldUser.objects.create(username="bob", password="").groups.add(OldGroup.objects.get_or_create(name="admins")[0])
        OldUser.objects.create(username="vera", password="")  # in no group: a viewer
        OldUser.objects.create(username="root", password="", is_superuser=True, is_staff=True)
        old.get_model("connectors", "SftpLogin").objects.create(login="alice", owner=user)
        url = f"sqlite:///{demo_path}"
        found = next(table for table in discover(url) if table.name == "profiles")
        database = old.get_model("exports", "Database").objects.create(name="Demo CRM", url=url)
        dataset = old.get_model("exports", "Dataset").objects.create(
            database=database, name="profiles", columns=found.columns, primary_key=found.primary_key
        )
        OldExport = old.get_model("exports", "Export")
        one_shot = OldExport.objects.create(name="Once", owner=user, dataset=dataset, status="finished")
        now = timezone.now()
        scheduled = OldExport.objects.create(
            name="Daily",
            owner=user,
            dataset=dataset,
            status="scheduled",
            export_type="periodic_full",
            schedule_unit="day",
            schedule_interval=1,
            schedule_start=now - timedelta(days=2),
            schedule_end=now + timedelta(days=30),
            next_run_at=now - timedelta(hours=1),
        )
        run = old.get_model("exports", "Run").objects.create(
            export=one_shot,
            status="succeeded",
            destination="Desktop",
            destination_kind="desktop",
            finished_at=now,
            expires_at=now + timedelta(days=7),
            row_count=1,
        )
        path = desktop_storage().save(f"{one_shot.id}/{run.id}/once.csv", _content())
        old.get_model("exports", "RunFile").objects.create(
            run=run, part=1, name="once.csv", path=path, size_bytes=len(CONTENT), rows=1, sha256="0" * 64
        )
        connector = old.get_model("connectors", "Connector").objects.create(
            name="lake", kind="s3", owner=user, options={"bucket": "lake"}
        )
        old.get_model("exports", "ApiToken").objects.create(
            user=user, name="cron", hint=SECRET[4:12], digest=hashlib.sha256(SECRET.encode()).hexdigest()
        )
    finally:
        executor = MigrationExecutor(connection)
        executor.migrate(executor.loader.graph.leaf_nodes())

    User = get_user_model()
    production = Sandbox.objects.get(organisation__slug="default", slug="production")
    assert Organisation.objects.get(slug="default").name == "Default"
    for model in (Database, Export, ApiToken, Connector):
        assert set(model.objects.values_list("sandbox", flat=True)) == {production.pk}, model.__name__
    assert Connector.objects.get(id=connector.id).sandbox == production
    # Everyone is a member of Default in the role their group gave them; zones are production's.
    roles = dict(Membership.objects.filter(organisation=production.organisation).values_list("user__username", "role"))
    assert roles == {"alice": "marketer", "bob": "admin", "vera": "viewer", "root": "admin"}
    assert SftpLogin.objects.get(login="alice").sandbox == production
    assert login_for(User.objects.get(username="alice")) == "alice"  # the same zone as before

    # A download, from the page and through a signed URL the API gives.
    alice = User.objects.get(username="alice")
    alice.set_password(PASSWORD)
    alice.save()
    client.login(username="alice", password=PASSWORD)
    page = client.get(reverse("runs-download", args=[run.id]))
    assert page.status_code == 200
    assert b"".join(page.streaming_content) == CONTENT
    answer = client.get(f"/api/v1/runs/{run.id}", HTTP_AUTHORIZATION=f"Bearer {SECRET}")
    assert answer.status_code == 200, answer.content
    signed = answer.json()["Files"][0]["Url"]
    fetched = client.get(signed.replace("http://127.0.0.1:8000", ""))
    assert fetched.status_code == 200
    assert b"".join(fetched.streaming_content) == CONTENT

    # A scheduled run.
    outcome = actions.start_due_run(scheduled.id, timezone.now())
    assert outcome.run is not None, outcome
    worker()
    assert Run.objects.get(id=outcome.run.id).status == Run.Status.SUCCEEDED


def _content():
    from django.core.files.base import ContentFile  # noqa: PLC0415

    return ContentFile(CONTENT)
