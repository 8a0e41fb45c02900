"""Custom exports: platform staff set them up for a client in the admin; the client sees
them, their runs and reports, and can't edit, delete or download them. An incremental
custom export (a plain dataset with filters) may also be copied into a standard draft,
or unscheduled into a standard export, after a warning."""

from __future__ import annotations

import gzip
import json
import sqlite3
from datetime import timedelta

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from connectors.models import Connector
from exports.models import ApiToken, Dataset, Export, Run
from exports.scheduler import tick
from orgs.models import default_sandbox
from tests.api.conftest import ApiClient
from tests.conftest import PASSWORD
from tests.custom_exports import incremental_custom_export
from tests.exports.test_custom_datasets import JOINED, add_custom_dataset
from tests.pages import refusal_of

pytestmark = pytest.mark.django_db(transaction=True)


def signed_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def custom_export_form(dataset: Dataset, destination: Connector, **fields) -> dict:
    start = timezone.localtime(timezone.now() + timedelta(minutes=5))
    end = start + timedelta(days=30)
    data = {
        "sandbox": default_sandbox(),
        "name": "Client feed",
        "dataset": dataset.id,
        "columns": "[]",
        "filters": "[]",
        "export_type": "incremental",
        "cursor_column": "id",
        "connector": destination.id,
        "file_format": "ndjson",
        "compression": "gzip",
        "rows_per_file": 1000,
        "folder_template": "",
        "file_template": "%EXPORT_NAME%_%DATETIME(YYYYMMdd_HHmmss)%",
        "schedule_unit": "hour",
        "schedule_interval": 3,
        "schedule_start_0": start.strftime("%Y-%m-%d"),
        "schedule_start_1": start.strftime("%H:%M:%S"),
        "schedule_end_0": end.strftime("%Y-%m-%d"),
        "schedule_end_1": end.strftime("%H:%M:%S"),
        "schedule_timezone": "UTC",
        "report_recipients": "",
    }
    data.update(fields)
    return data


def add_custom_export(client, dataset, destination, **fields):
    return client.post(reverse("admin:exports_export_add"), custom_export_form(dataset, destination, **fields))


def form_errors(response) -> dict:
    assert response.status_code == 200, "the form was accepted"
    return response.context["adminform"].form.errors


def delivered_rows(objects) -> list[dict]:
    rows = []
    for item in objects:
        if item.path.endswith(".json.gz"):
            rows += [json.loads(line) for line in gzip.decompress(item.data).decode().splitlines()]
    return rows


def test_a_custom_export_runs_on_schedule_into_hosted_sftp_and_its_client_only_watches_it(
    client, users, crm, sftpd, worker
):
    database, path = crm
    staff = signed_in(users["superuser"])
    assert add_custom_dataset(staff, database, cursor_column="id").status_code == 302
    dataset = Dataset.objects.get(name="Interactions with profiles")
    zone = sftpd.connector(users["admin"])
    response = add_custom_export(
        staff, dataset, zone, filters='[{"column": "event_type", "operator": "neq", "value": "unsubscribe"}]'
    )
    assert response.status_code == 302, form_errors(response)
    export = Export.objects.get(name="Client feed")
    assert (export.managed, export.status, export.shown_type) == (True, "scheduled", "custom")
    assert export.owner == users["superuser"]

    # It runs at its time, by the scheduler, and delivers exactly the joined rows.
    created = tick(export.next_run_at + timedelta(seconds=1)).created
    assert [run.export_id for run in created] == [export.id]
    worker()
    run = export.runs.get()
    assert run.status == Run.Status.SUCCEEDED, run.error_message
    assert run.trigger == Run.Trigger.SCHEDULE
    with sqlite3.connect(path) as conn:
        joined = JOINED.rstrip().rstrip(";")
        expected_ids = [
            row[0]
            for row in conn.execute(
                f"SELECT id FROM ({joined}) WHERE event_type <> 'unsubscribe' OR event_type IS NULL ORDER BY id"
            )
        ]
        emails = dict(
            conn.execute("SELECT i.id, p.email FROM interactions i JOIN profiles p ON p.id = i.profile_id").fetchall()
        )
    rows = delivered_rows(sftpd.objects_of(zone, f"exports/{export.id}"))
    assert sorted(row["id"] for row in rows) == expected_ids
    assert all(row["email"] == emails[row["id"]] for row in rows)
    assert run.row_count == len(expected_ids) > 0

    # The client sees it, its run and its report; no Edit, Delete or Download anywhere.
    for who in ("owner", "admin"):
        browser = signed_in(users[who])
        scheduled = browser.get(reverse("exports-list") + "?tab=scheduled").content.decode()
        assert "Client feed" in scheduled
        assert '<td data-label="Type">Custom</td>' in scheduled
        assert "Custom export: operators manage it" in scheduled
        for link in ("exports-edit", "exports-delete", "exports-copy", "exports-definition"):
            assert reverse(link, args=[export.id]) not in scheduled, (who, link)
        finished = browser.get(reverse("exports-list") + "?tab=finished").content.decode()
        assert run.get_absolute_url() in finished
        assert reverse("runs-download", args=[run.id]) not in finished
        assert reverse("exports-copy", args=[export.id]) not in finished
        page = browser.get(export.get_absolute_url()).content.decode()
        assert "its definition isn't shown here" in page
        assert "JOIN profiles" not in page
        report = browser.get(reverse("runs-detail", args=[run.id])).content.decode()
        assert f"{len(expected_ids):,}" in report
        assert "its definition isn't shown here" in report
        assert browser.get(reverse("runs-download", args=[run.id])).status_code == 403
    admin = signed_in(users["admin"])
    assert refusal_of(admin.post(reverse("exports-delete", args=[export.id]))) == "CUSTOM_EXPORT"
    # Not copied, by staff either: the copy would be a standard export, the client's to download.
    assert refusal_of(staff.post(reverse("exports-copy", args=[export.id]), {"name": "Mine"})) == "CUSTOM_EXPORT"
    assert refusal_of(admin.post(reverse("exports-unschedule", args=[export.id]))) == "CUSTOM_EXPORT"
    assert admin.get(reverse("exports-edit", args=[export.id])).status_code in {302, 403}
    export.refresh_from_db()
    assert (export.managed, export.status) == (True, "scheduled")

    # The API: read-only, by the same rules.
    for who in ("owner", "admin"):
        api = ApiClient(Client(enforce_csrf_checks=True), ApiToken.issue(users[who], "client")[1])
        document = api.get(f"exports/{export.id}").json()
        assert document["Custom"] == "custom"
        assert (document["Columns"], document["Filters"], document["ConnectorId"]) == ([], [], str(zone.id))
        for refused in (
            api.patch(f"exports/{export.id}", {"Name": "Mine now"}),
            api.delete(f"exports/{export.id}"),
            api.post(f"exports/{export.id}/copy", {"Name": "Mine"}),
            api.post(f"exports/{export.id}/unschedule"),
        ):
            assert refused.status_code == 403, refused.content
            assert refused.json()["Code"] in {"CUSTOM_EXPORT", "FORBIDDEN"}
        assert api.get(f"runs/{run.id}").json()["Files"][0].get("Url") is None
    export.refresh_from_db()
    assert (export.name, export.managed, export.status) == ("Client feed", True, "scheduled")


@pytest.fixture
def incremental_custom(users, demo_database):
    """An incremental custom export over a plain dataset, with columns and filters."""
    return incremental_custom_export(users, demo_database, "Clicks by country")


def test_an_incremental_custom_export_is_copied_into_a_standard_draft(users, incremental_custom):
    export = incremental_custom
    assert export.shown_type == "incremental_custom"
    marketer = signed_in(users["owner"])
    scheduled = marketer.get(reverse("exports-list") + "?tab=scheduled&export_type=incremental_custom").content
    assert b"Clicks by country" in scheduled
    assert b'<td data-label="Type">Incremental custom</td>' in scheduled
    assert reverse("exports-definition", args=[export.id]).encode() in scheduled
    assert reverse("exports-copy", args=[export.id]).encode() in scheduled
    assert reverse("exports-edit", args=[export.id]).encode() not in scheduled
    standard_only = marketer.get(reverse("exports-list") + "?tab=scheduled&export_type=incremental").content
    assert b"Clicks by country" not in standard_only
    definition = marketer.get(reverse("exports-definition", args=[export.id])).content.decode()
    assert "Some of their customisations may not show" in definition
    assert "country_code" in definition

    response = marketer.post(reverse("exports-copy", args=[export.id]), {"name": "My clicks"})
    assert response.status_code == 302
    copy = Export.objects.get(name="My clicks")
    assert (copy.managed, copy.status, copy.export_type, copy.owner) == (False, "draft", "incremental", users["owner"])
    assert (copy.columns, copy.filters, copy.cursor_column, copy.connector_id) == (
        export.columns,
        export.filters,
        export.cursor_column,
        export.connector_id,
    )
    assert copy.copied_from_id == export.id
    export.refresh_from_db()
    assert (export.managed, export.status) == (True, "scheduled")


def test_unscheduling_an_incremental_custom_export_warns_then_makes_it_a_standard_draft(users, incremental_custom):
    export = incremental_custom
    # A marketer (not its owner) is not asked: unscheduling is an admin's, as for any export.
    marketer = signed_in(users["owner"])
    assert (
        reverse("exports-unschedule", args=[export.id])
        not in marketer.get(reverse("exports-list") + "?tab=scheduled").content.decode()
    )
    assert marketer.get(reverse("exports-unschedule", args=[export.id])).status_code == 403
    admin = signed_in(users["admin"])
    listed = admin.get(reverse("exports-list") + "?tab=scheduled").content.decode()
    assert reverse("exports-unschedule", args=[export.id]) in listed
    asked = admin.get(reverse("exports-unschedule", args=[export.id]), HTTP_HX_REQUEST="true").content.decode()
    assert "becomes a standard export" in asked
    assert "operators no longer manage" in asked
    export.refresh_from_db()
    assert (export.managed, export.status) == (True, "scheduled")  # asking changes nothing

    response = admin.post(reverse("exports-unschedule", args=[export.id]))
    assert response.status_code == 302
    export.refresh_from_db()
    assert (export.managed, export.status, export.shown_type) == (False, "draft", "incremental")
    drafts = admin.get(reverse("exports-list") + "?tab=draft").content.decode()
    assert reverse("exports-edit", args=[export.id]) in drafts
    assert "Custom export" not in drafts


def test_only_platform_staff_add_custom_exports_and_never_to_desktop(users, demo_database):
    dataset = demo_database.datasets.get(name="orders")
    connector = Connector.objects.create(
        name="Lake", kind=Connector.Kind.S3, owner=users["admin"], options={"bucket": "lake", "region": "x"}
    )
    staff = signed_in(users["superuser"])
    errors = form_errors(add_custom_export(staff, dataset, connector, connector=""))
    assert "connector" in errors
    errors = form_errors(add_custom_export(staff, dataset, connector, export_type="one_shot"))
    assert "export_type" in errors
    errors = form_errors(add_custom_export(staff, dataset, connector, cursor_column="status"))
    assert "cursor_column" in errors
    errors = form_errors(add_custom_export(staff, dataset, connector, filters='[{"column": "nope", "operator": "eq"}]'))
    assert "filters" in errors
    assert not Export.objects.exists()
    assert add_custom_export(signed_in(users["staff"]), dataset, connector).status_code == 403
    assert not Export.objects.exists()


def test_custom_datasets_are_not_offered_to_standard_exports(client, users, crm):
    database, _ = crm
    client.login(username="root", password=PASSWORD)
    assert add_custom_dataset(client, database).status_code == 302
    custom = Dataset.objects.get(kind=Dataset.Kind.QUERY)
    assert custom not in Dataset.objects.usable()
    api = ApiClient(Client(enforce_csrf_checks=True), ApiToken.issue(users["owner"], "mine")[1])
    refused = api.post("exports", {"Name": "Sneaky", "DatasetId": custom.id})
    assert refused.status_code == 400
    assert "DatasetId" in refused.json()["Fields"]
