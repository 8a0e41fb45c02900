"""The API's rules, one at a time: tokens, who sees what, validation with field names,
states, the 409 rule, bulk reads, signed URLs, rate limits and page sizes."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlencode, urlparse

import pytest
import time_machine
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from connectors.models import Connector
from exports.actions import queue_run
from exports.models import ApiToken, Export, Run
from exports.scheduler import expire_downloads
from tests.conftest import run_worker

pytestmark = pytest.mark.django_db


def draft(owner, dataset, **fields) -> Export:
    return Export.objects.create(name=fields.pop("name", "A draft"), owner=owner, dataset=dataset, **fields)


def new_export(dataset, **fields) -> dict:
    return {"Name": "From the API", "DatasetId": dataset.id, **fields}


# Tokens ---------------------------------------------------------------------------


def test_a_request_without_a_token_is_refused_with_a_json_401(client):
    response = client.get("/api/v1/exports")
    assert response.status_code == 401
    assert response.json()["Code"] == "UNAUTHENTICATED"
    assert response["WWW-Authenticate"] == "Bearer"


def test_a_revoked_token_stops_working_at_once(api_as, users):
    api = api_as(users["owner"])
    assert api.get("exports").status_code == 200
    ApiToken.objects.get(user=users["owner"]).revoke()
    response = api.get("exports")
    assert response.status_code == 401
    assert response.json() == {"Code": "INVALID_TOKEN", "Message": "this API token is unknown or has been revoked"}


def test_a_token_is_stored_only_as_a_hash_and_records_its_last_use(api_as, users):
    token, secret = ApiToken.issue(users["owner"], "ci")
    row = ApiToken.objects.filter(id=token.id).values().get()
    assert secret not in json.dumps(row, default=str)
    assert row["digest"] == ApiToken.digest_of(secret)
    assert secret.startswith("exs_" + row["hint"])
    assert row["last_used_at"] is None
    response = Client().get("/api/v1/exports", HTTP_AUTHORIZATION=f"Bearer {secret}")
    assert response.status_code == 200
    assert ApiToken.objects.get(id=token.id).last_used_at is not None


def test_a_token_of_a_deactivated_user_is_refused(api_as, users):
    api = api_as(users["owner"])
    users["owner"].is_active = False
    users["owner"].save()
    assert api.get("exports").json()["Code"] == "INVALID_TOKEN"


def test_a_malformed_authorization_header_says_what_is_expected(client):
    response = client.get("/api/v1/exports", HTTP_AUTHORIZATION="Basic YWxpY2U6c2VjcmV0")
    assert response.status_code == 401
    assert "Bearer <token>" in response.json()["Message"]


# Who sees what --------------------------------------------------------------------


def test_another_users_export_is_a_404_exactly_like_a_missing_one(api_as, users, interactions):
    theirs = draft(users["teammate"], interactions, name="Bob's secret project")
    run = queue_run(draft(users["teammate"], interactions), user=users["teammate"])
    api = api_as(users["owner"])
    missing = "00000000-0000-4000-8000-000000000000"
    for method, path, body in [
        ("get", "exports/{}", None),
        ("patch", "exports/{}", {"Name": "mine now"}),
        ("delete", "exports/{}", None),
        ("post", "exports/{}/copy", {}),
        ("post", "exports/{}/launch", {}),
        ("post", "exports/{}/schedule", None),
        ("get", "exports/{}/runs", None),
    ]:
        theirs_response = api.call(method, path.format(theirs.id), body)
        missing_response = api.call(method, path.format(missing), body)
        assert theirs_response.status_code == missing_response.status_code == 404, path
        assert theirs_response.json() == missing_response.json(), path
    for method, path in [("get", "runs/{}"), ("post", "runs/{}/cancel"), ("post", "runs/{}/relaunch")]:
        assert api.call(method, path.format(run.id)).json() == api.call(method, path.format(missing)).json()
    listed = api.get("exports").json()
    assert listed["Count"] == 0
    assert "Bob" not in json.dumps(listed)
    assert api.get("runs").json()["Count"] == 0
    assert api.post("exports/lookup", {"Ids": [str(theirs.id)]}).json() == {"Items": [], "NotFound": [str(theirs.id)]}
    assert api.post("runs/lookup", {"Ids": [str(run.id)]}).json()["NotFound"] == [str(run.id)]
    theirs.refresh_from_db()
    assert theirs.name == "Bob's secret project"
    assert theirs.is_draft


def test_an_admin_token_sees_and_changes_everyones_exports(api_as, users, interactions):
    theirs = draft(users["owner"], interactions)
    api = api_as(users["admin"])
    assert api.get(f"exports/{theirs.id}").json()["Owner"] == "alice"
    assert api.patch(f"exports/{theirs.id}", {"Name": "Renamed by an admin"}).status_code == 200


def test_a_viewer_token_cannot_create_exports(api_as, users, interactions):
    response = api_as(users["viewer"]).post("exports", new_export(interactions))
    assert response.status_code == 403
    assert response.json()["Code"] == "FORBIDDEN"
    assert not Export.objects.exists()


def test_connectors_are_listed_without_any_secret(api_as, users, s3):
    connector = s3.connector(users["owner"])
    body = api_as(users["teammate"]).get("connectors").content.decode()
    item = json.loads(body)["Items"][0]
    assert item["Id"] == str(connector.id)
    assert item["Location"] == f"s3://{connector.options['bucket']}/team/crm/"
    assert s3.secret_access_key not in body
    assert "secret" not in body.lower()


def test_datasets_are_listed_with_database_data_type_and_columns(api_as, users, interactions):
    items = api_as(users["viewer"]).get("datasets", data_type="interaction").json()["Items"]
    assert [(d["Name"], d["Database"], d["DataType"]) for d in items] == [("interactions", "Demo CRM", "interaction")]
    assert [c["Name"] for c in items[0]["Columns"]] == interactions.column_names


# Creating and changing --------------------------------------------------------------


def test_it_creates_each_type_of_export_with_the_wizards_defaults(api_as, users, interactions, s3):
    api = api_as(users["owner"])
    start = datetime(2031, 3, 1, 6, 30)
    one_shot = api.post("exports", new_export(interactions, FileFormat="parquet")).json()
    assert (one_shot["ExportType"], one_shot["Compression"], one_shot["Status"]) == ("one_shot", "snappy", "Draft")
    full = api.post(
        "exports",
        new_export(interactions, ExportType="periodic_full", Start=start.isoformat(), TimeZone="Europe/Paris"),
    ).json()
    assert full["Start"] == "2031-03-01T05:30:00Z"
    assert full["End"] == "2031-09-01T04:30:00Z"
    assert full["Cadence"] == "day"
    assert full["TimeZone"] == "Europe/Paris"
    incremental = api.post(
        "exports",
        new_export(
            interactions,
            ExportType="incremental",
            Cadence="6h",
            Start="2031-03-01T06:30:00+00:00",
            ConnectorId=str(s3.connector(users["owner"]).id),
            Filters=[{"Column": "channel", "Operator": "in", "Value": "email,sms"}],
            ReportRecipients=["ops@example.com"],
        ),
    ).json()
    assert incremental["CursorColumn"] == interactions.cursor_column
    assert incremental["Cadence"] == "6h"
    assert incremental["Filters"] == [{"Column": "channel", "Operator": "in", "Value": "email,sms", "ValueTo": ""}]
    export = Export.objects.get(id=incremental["Id"])
    assert (export.schedule_unit, export.schedule_interval, export.owner) == ("hour", 6, users["owner"])


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        ({"FileFormat": "csv", "Compression": "zstd"}, "Compression", "zstd is not available for CSV files"),
        ({"FileTemplate": "%NOPE%"}, "FileTemplate", "NOPE"),
        ({"FolderTemplate": "../escape"}, "FolderTemplate", ".."),
        ({"ExportType": "incremental", "Start": "2031-01-01T00:00:00Z", "CursorColumn": "channel"}, "CursorColumn", ""),
        ({"ExportType": "periodic_full", "Cadence": "3h", "Start": "2031-01-01T00:00:00Z"}, "Cadence", "once a day"),
        ({"ExportType": "periodic_full"}, "Start", "needs a start"),
        ({"Start": "2001-01-01T00:00:00Z"}, "Start", "in the past"),
        ({"Columns": ["id", "nope"]}, "Columns", "nope"),
        ({"Filters": [{"Column": "id", "Operator": "gt", "Value": "ten"}]}, "Filters", "ten"),
        ({"ReportRecipients": ["not-an-address"]}, "ReportRecipients", "not an e-mail address"),
        ({"TimeZone": "Mars/Olympus"}, "TimeZone", "not a time zone"),
        ({"DatasetId": 999_999}, "DatasetId", "no dataset 999999"),
        ({"ConnectorId": "00000000-0000-4000-8000-000000000000"}, "ConnectorId", "valid choice"),
        ({"RowsPerFile": 0}, "RowsPerFile", "greater than or equal to 1"),
        ({"Name": "bad\x00name"}, "Name", "NUL"),
        ({"ExportType": "weekly"}, "ExportType", "one_shot"),
    ],
)
def test_it_refuses_a_bad_definition_naming_the_field(api_as, users, interactions, fields, field, message):
    response = api_as(users["owner"]).post("exports", new_export(interactions, **fields))
    assert response.status_code == 400, response.json()
    body = response.json()
    assert body["Code"] == "VALIDATION_FAILED"
    assert field in body["Fields"], body
    assert message in " ".join(body["Fields"][field])
    assert field in body["Message"]
    assert not Export.objects.exists()


def test_a_body_that_is_not_json_is_a_400(api_as, users):
    api = api_as(users["owner"])
    response = api.client.post(
        "/api/v1/exports", "{not json", content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {api.secret}"
    )
    assert response.status_code == 400
    assert response.json() == {"Code": "BAD_REQUEST", "Message": "the request body is not valid JSON"}


def test_an_update_changes_only_what_it_sends_and_only_on_drafts(api_as, users, interactions, profiles):
    export = draft(users["owner"], interactions, file_format="ndjson", columns=["id", "channel"])
    api = api_as(users["owner"])
    updated = api.patch(f"exports/{export.id}", {"Name": "Renamed", "RowsPerFile": 10}).json()
    assert (updated["Name"], updated["RowsPerFile"], updated["FileFormat"]) == ("Renamed", 10, "ndjson")
    assert updated["Columns"] == ["id", "channel"]
    # The whole definition is checked again: these columns aren't in `profiles`.
    response = api.patch(f"exports/{export.id}", {"DatasetId": profiles.id})
    assert response.status_code == 400
    assert "Columns" in response.json()["Fields"]
    Export.objects.filter(id=export.id).update(status=Export.Status.SCHEDULED)
    response = api.patch(f"exports/{export.id}", {"Name": "Again"})
    assert response.status_code == 409
    assert response.json()["Code"] == "NOT_A_DRAFT"
    assert api.delete(f"exports/{export.id}").status_code == 409
    assert Export.objects.get(id=export.id).name == "Renamed"


def test_it_deletes_a_draft_and_copies_an_export(api_as, users, interactions):
    export = draft(users["owner"], interactions, name="Original")
    api = api_as(users["owner"])
    copy = api.post(f"exports/{export.id}/copy", {}).json()
    assert (copy["Name"], copy["Status"], copy["CopiedFrom"]) == ("Copy of Original", "Draft", str(export.id))
    named = api.post(f"exports/{export.id}/copy", {"Name": "Second"})
    assert named.status_code == 201
    assert named.json()["Name"] == "Second"
    assert api.delete(f"exports/{export.id}").status_code == 204
    assert not Export.objects.filter(id=export.id).exists()
    assert api.get(f"exports/{export.id}").status_code == 404


def test_schedule_unschedule_and_run_now_follow_the_exports_state(api_as, users, interactions):
    api = api_as(users["owner"])
    export = api.post(
        "exports", new_export(interactions, ExportType="periodic_full", Start="2031-01-01T08:00:00Z")
    ).json()
    response = api.post(f"exports/{export['Id']}/run-now")
    assert response.status_code == 409
    assert response.json()["Code"] == "NOT_SCHEDULED"
    scheduled = api.post(f"exports/{export['Id']}/schedule").json()
    assert scheduled["Status"] == "Scheduled"
    assert scheduled["NextRunUtc"] == "2031-01-01T08:00:00Z"
    assert api.post(f"exports/{export['Id']}/schedule").json()["Code"] == "NOT_A_DRAFT"
    run = api.post(f"exports/{export['Id']}/run-now")
    assert run.status_code == 202
    assert run.json()["Status"] == "Pending"
    assert run.json()["Trigger"] == "api"
    again = api.post(f"exports/{export['Id']}/run-now")
    assert again.status_code == 409
    assert again.json()["RunId"] == run.json()["Id"]
    assert api.post(f"exports/{export['Id']}/launch", {}).json()["Code"] == "NOT_ONE_SHOT"
    unscheduled = api.post(f"exports/{export['Id']}/unschedule").json()
    assert unscheduled["Status"] == "Draft"
    assert unscheduled["NextRunUtc"] is None
    assert api.post(f"exports/{export['Id']}/unschedule").json()["Code"] == "NOT_SCHEDULED"


def test_a_one_shot_without_a_start_cannot_be_scheduled(api_as, users, interactions):
    api = api_as(users["owner"])
    export = api.post("exports", new_export(interactions)).json()
    response = api.post(f"exports/{export['Id']}/schedule")
    assert response.status_code == 409
    assert response.json()["Code"] == "CANNOT_SCHEDULE"
    assert "no start time" in response.json()["Message"]


# Launching: the 409 rule ------------------------------------------------------------


def test_a_second_launch_on_a_busy_dataset_is_refused_unless_asked_to_queue(api_as, users, interactions, profiles):
    api = api_as(users["owner"])
    first = api.post("exports", new_export(interactions, Name="First", Launch=True))
    assert first.status_code == 201
    assert first.json()["LastRunStatus"] == "Pending"
    busy_run = first.json()["LastRunId"]

    refused = api.post("exports", new_export(interactions, Name="Second", Launch=True))
    assert refused.status_code == 409
    assert refused.json()["Code"] == "DATASET_BUSY"
    assert refused.json()["RunId"] == busy_run
    assert "QueueAnyway" in refused.json()["Message"]
    assert not Export.objects.filter(name="Second").exists()  # refused as a whole: nothing created

    second_draft = api.post("exports", new_export(interactions, Name="Second")).json()
    assert api.post(f"exports/{second_draft['Id']}/launch", {}).json()["Code"] == "DATASET_BUSY"
    queued = api.post(f"exports/{second_draft['Id']}/launch", {"QueueAnyway": True})
    assert queued.status_code == 202
    assert queued.json()["Status"] == "Pending"

    # Another dataset, or another user on the same dataset, is not blocked.
    assert api.post("exports", new_export(profiles, Name="Other", Launch=True)).status_code == 201
    assert api_as(users["teammate"]).post("exports", new_export(interactions, Launch=True)).status_code == 201
    # Once the runs are done, the dataset is free again.
    Run.objects.update(status=Run.Status.SUCCEEDED)
    assert api.post("exports", new_export(interactions, Name="Third", Launch=True)).status_code == 201


def test_the_same_export_never_runs_twice_even_when_queued_anyway(api_as, users, interactions):
    export = draft(users["owner"], interactions)
    api = api_as(users["owner"])
    first = api.post(f"exports/{export.id}/launch", {"QueueAnyway": True}).json()
    again = api.post(f"exports/{export.id}/launch", {"QueueAnyway": True})
    assert again.status_code == 409
    assert again.json()["Code"] == "ALREADY_RUNNING"
    assert again.json()["RunId"] == first["Id"]
    assert export.runs.count() == 1


def test_runs_are_cancelled_and_only_relaunchable_failures_relaunched(api_as, users, interactions):
    export = draft(users["owner"], interactions)
    api = api_as(users["owner"])
    run = api.post(f"exports/{export.id}/launch").json()
    cancelled = api.post(f"runs/{run['Id']}/cancel")
    assert cancelled.status_code == 200
    assert cancelled.json()["Status"] == "Cancelled"
    assert cancelled.json()["ErrorCode"] == "CANCELLED"
    assert api.post(f"runs/{run['Id']}/cancel").json()["Code"] == "NOT_IN_PROGRESS"
    assert api.post(f"runs/{run['Id']}/relaunch").json()["Code"] == "NOT_RELAUNCHABLE"
    Run.objects.filter(id=run["Id"]).update(
        status=Run.Status.FAILED, error_code=Run.ErrorCode.DESTINATION_UNREACHABLE, error_message="down"
    )
    failed = api.get(f"runs/{run['Id']}").json()
    assert (failed["Status"], failed["ErrorCode"], failed["ErrorMessage"]) == (
        "Failed",
        "DESTINATION_UNREACHABLE",
        "down",
    )
    relaunched = api.post(f"runs/{run['Id']}/relaunch")
    assert relaunched.status_code == 202
    assert relaunched.json()["RelaunchOf"] == run["Id"]
    assert relaunched.json()["Attempt"] == 2


# Bulk reads and lists ----------------------------------------------------------------


def test_a_bulk_read_takes_1000_ids_and_refuses_1001(api_as, users, interactions):
    export = draft(users["owner"], interactions)
    api = api_as(users["owner"])
    ids = [str(export.id)] + [f"00000000-0000-4000-8000-{n:012d}" for n in range(999)]
    found = api.post("exports/lookup", {"Ids": ids})
    assert found.status_code == 200
    assert [item["Id"] for item in found.json()["Items"]] == [str(export.id)]
    assert len(found.json()["NotFound"]) == 999
    refused = api.post("exports/lookup", {"Ids": [*ids, "00000000-0000-4000-8000-999999999999"]})
    assert refused.status_code == 400
    assert refused.json()["Fields"] == {"Ids": ["at most 1,000 per request, got 1,001"]}
    assert api.post("runs/lookup", {"Ids": ids + ids[:1]}).status_code == 400


def test_lists_filter_like_the_manage_exports_page_and_cap_the_page_size(
    api_as, users, interactions, profiles, settings
):
    settings.API_MAX_PAGE_SIZE = 3
    for n in range(5):
        draft(users["owner"], interactions, name=f"Opens {n}")
    draft(users["owner"], profiles, name="Profiles nightly", export_type="periodic_full")
    api = api_as(users["owner"])
    page = api.get("exports", page_size=1000).json()
    assert (page["Count"], page["PageSize"], len(page["Items"]), page["NextPage"]) == (6, 3, 3, 2)
    last = api.get("exports", page_size=1000, page=2).json()
    assert len(last["Items"]) == 3
    assert last["NextPage"] is None
    assert api.get("exports", page=99).json()["Items"] == []
    assert [e["Name"] for e in api.get("exports", q="nightly").json()["Items"]] == ["Profiles nightly"]
    assert api.get("exports", export_type="periodic_full").json()["Count"] == 1
    assert api.get("exports", data_type=["interaction", "profile"]).json()["Count"] == 6
    assert api.get("exports", status="Scheduled").json()["Count"] == 0
    names = [e["Name"] for e in api.get("exports", sort="name", q="Opens").json()["Items"]]
    assert names == ["Opens 0", "Opens 1", "Opens 2"]
    bad = api.get("exports", status="draft")
    assert bad.status_code == 400
    assert "status[0]" in bad.json()["Fields"]


def test_lists_take_a_constant_number_of_queries(api_as, users, interactions, django_assert_max_num_queries):
    api = api_as(users["owner"])
    for n in range(3):
        queue_run(draft(users["owner"], interactions, name=f"E{n}"), user=users["owner"])
    api.get("exports")  # the token's last use is recorded once a minute, not counted below

    def count(path):
        with CaptureQueriesContext(connection) as captured:
            assert api.get(path).status_code == 200
        return len(captured)

    few = {path: count(path) for path in ("exports", "runs")}
    for n in range(3, 20):
        queue_run(draft(users["owner"], interactions, name=f"E{n}"), user=users["owner"])
    assert {path: count(path) for path in ("exports", "runs")} == few


# Limits ---------------------------------------------------------------------------------


def test_a_token_past_its_rate_limit_gets_429_with_retry_after(api_as, users, settings):
    settings.API_RATE_LIMIT_PER_MINUTE = 3
    api, other = api_as(users["owner"]), api_as(users["owner"], name="other")
    with time_machine.travel(datetime(2031, 5, 5, 12, 0, 15, tzinfo=UTC), tick=False):
        assert [api.get("exports").status_code for _ in range(3)] == [200, 200, 200]
        limited = api.get("exports")
        assert limited.status_code == 429
        assert limited["Retry-After"] == "45"
        assert limited.json()["Code"] == "RATE_LIMITED"
        assert "45 s" in limited.json()["Message"]
        assert other.get("exports").status_code == 200  # per token
    with time_machine.travel(datetime(2031, 5, 5, 12, 1, 0, tzinfo=UTC), tick=False):
        assert api.get("exports").status_code == 200  # a new minute


def test_an_unknown_address_under_the_api_is_a_json_404(api_as, users):
    api = api_as(users["owner"])
    for response in [api.get("/api/v1/nothing/here"), api.post("/api/v1/exports//schedule")]:
        assert response.status_code == 404
        assert response.json()["Code"] == "NOT_FOUND"  # never the CSRF page


def test_the_schema_and_its_documentation_page_are_served(client):
    schema = client.get("/api/v1/openapi.json").json()
    assert schema["info"]["title"] == "Export site API"
    assert "/api/v1/exports/{export_id}/run-now" in schema["paths"]
    assert schema["components"]["securitySchemes"]["TokenAuth"] == {"type": "http", "scheme": "bearer"}
    page = client.get("/api/v1/docs")
    assert page.status_code == 200
    assert b"/static/ninja/swagger-ui-bundle.js" in page.content  # no CDN


# Signed download URLs -----------------------------------------------------------------


@pytest.fixture
def succeeded_run(transactional_db, users, interactions):
    export = draft(users["owner"], interactions, rows_per_file=3_000, compression="none")
    run = queue_run(export, user=users["owner"])
    run_worker()
    run.refresh_from_db()
    assert run.status == Run.Status.SUCCEEDED
    assert run.files.count() == 2
    return run


def with_query(url: str, **changes) -> str:
    parts = urlparse(url)
    query = {key: values[0] for key, values in parse_qs(parts.query).items()} | changes
    return f"{parts.path}?{urlencode(query)}"


@pytest.mark.django_db(transaction=True)
def test_signed_urls_download_without_a_session_until_they_expire(api_as, users, succeeded_run, settings):
    settings.API_DOWNLOAD_URL_SECONDS = 60
    body = api_as(users["owner"]).get(f"runs/{succeeded_run.id}").json()
    assert body["Status"] == "Success"
    assert body["ExpiresUtc"] is not None
    stranger = Client()  # no session, no token
    parts = []
    for file in body["Files"]:
        response = stranger.get(file["Url"])
        assert response.status_code == 200, response.content
        data = b"".join(response.streaming_content)
        assert len(data) == file["SizeInBytes"] == int(response["Content-Length"])
        assert file["Name"] in response["Content-Disposition"]
        parts.append(data.decode())
    assert sum(part.count("\n") - 1 for part in parts) == 5_000  # a header line each
    url = body["Files"][0]["Url"]
    with time_machine.travel(time.time() + 61, tick=False):
        expired = stranger.get(url)
    assert expired.status_code == 403
    assert expired.json()["Code"] == "URL_EXPIRED"


@pytest.mark.django_db(transaction=True)
def test_a_tampered_signed_url_is_refused(api_as, users, succeeded_run):
    url = api_as(users["owner"]).get(f"runs/{succeeded_run.id}").json()["Files"][0]["Url"]
    stranger = Client()
    expires = int(parse_qs(urlparse(url).query)["expires"][0])
    signature = parse_qs(urlparse(url).query)["signature"][0]
    for tampered in [
        with_query(url, expires=expires + 86_400),  # a longer life
        with_query(url, signature=("A" if signature[0] != "A" else "B") + signature[1:]),
        with_query(url.replace("/1?", "/2?")),  # another file with this file's signature
        with_query(url.replace(str(succeeded_run.id), "00000000-0000-4000-8000-000000000000")),  # another run
    ]:
        response = stranger.get(tampered)
        assert response.status_code == 403, tampered
        assert response.json()["Code"] == "INVALID_SIGNATURE"
    assert stranger.get(with_query(url, signature="")).status_code == 403


@pytest.mark.django_db(transaction=True)
def test_a_signed_url_stops_working_when_the_run_expires(api_as, users, succeeded_run):
    url = api_as(users["owner"]).get(f"runs/{succeeded_run.id}").json()["Files"][0]["Url"]
    expire_downloads(succeeded_run.expires_at + timedelta(seconds=1))
    response = Client().get(url)
    assert response.status_code == 410
    assert response.json()["Code"] == "RUN_EXPIRED"
    body = api_as(users["owner"]).get(f"runs/{succeeded_run.id}").json()
    assert body["Status"] == "Expired"
    assert all(file["Url"] is None for file in body["Files"])


def test_a_run_that_has_not_succeeded_offers_no_urls(api_as, users, interactions):
    run = queue_run(draft(users["owner"], interactions), user=users["owner"])
    assert api_as(users["owner"]).get(f"runs/{run.id}").json()["Files"] == []


def test_a_connector_kind_is_never_desktop_in_the_list(api_as, users):
    Connector.objects.create(name="Desk", kind=Connector.Kind.DESKTOP, owner=users["owner"])
    assert api_as(users["owner"]).get("connectors").json()["Count"] == 0
