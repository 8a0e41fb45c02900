"""Connector pages: forms that name every bad field, who may do what, deletion refused
while an export uses the connector, and the wizard's destination step."""

from __future__ import annotations

import pytest
from django.urls import reverse

from connectors.models import Connector
from exports.models import Export
from tests.conftest import PASSWORD


def login(client, user):
    client.login(username=user.username, password=PASSWORD)


def s3_connector(owner, name="Team bucket") -> Connector:
    connector = Connector(
        name=name,
        kind=Connector.Kind.S3,
        owner=owner,
        base_path="crm",
        options={"bucket": "team-bucket", "access_key_id": "AKIAEXAMPLE"},
    )
    connector.set_secrets({"secret_access_key": "secret-value-1234"})
    connector.save()
    return connector


@pytest.mark.django_db
def test_the_s3_form_names_every_bad_field(client, users):
    login(client, users["admin"])
    response = client.post(
        reverse("connectors-new") + "?kind=s3",
        {"kind": "s3", "name": "", "bucket": "Bad_Bucket!", "base_path": "a/../b", "endpoint_url": "not a url"},
    )
    assert response.status_code == 200
    errors = response.context["form"].errors
    assert set(errors) == {"name", "bucket", "base_path", "access_key_id", "endpoint_url", "secret_access_key"}
    assert "not a valid bucket name" in errors["bucket"][0]
    assert "'..'" in errors["base_path"][0]
    assert "Secret access key is required." in errors["secret_access_key"]
    assert not Connector.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("kind", "data", "field", "message"),
    [
        ("gcs", {"bucket": "ok-bucket", "service_account_json": "{not json"}, "service_account_json", "not valid JSON"),
        ("gcs", {"bucket": "ok-bucket", "service_account_json": '{"type": "user"}'}, "service_account_json", "not a"),
        ("gcs", {"bucket": "ok-bucket"}, "service_account_json", "A service-account JSON key is required."),
        ("azure_blob", {"container": "Bad--name", "auth": "connection_string"}, "container", "not a valid container"),
        ("azure_blob", {"container": "ok", "auth": "account_key", "account_key": "k"}, "account_name", "required"),
        ("sftp", {"host": "h", "port": "70000", "username": "u", "auth": "password"}, "port", "65535"),
        ("sftp", {"host": "h", "port": "22", "username": "u", "auth": "password"}, "password", "required"),
        (
            "sftp",
            {"host": "h", "port": "22", "username": "u", "auth": "private_key", "private_key": "nonsense"},
            "private_key",
            "can't be read",
        ),
        (
            "sftp",
            {
                "host": "h",
                "port": "22",
                "username": "u",
                "auth": "password",
                "password": "p",
                "host_key_fingerprint": "x",
            },
            "host_key_fingerprint",
            "SHA256:",
        ),
    ],
)
def test_each_kind_checks_its_settings(client, users, kind, data, field, message):
    login(client, users["admin"])
    response = client.post(reverse("connectors-new") + f"?kind={kind}", {"kind": kind, "name": "X", **data})
    assert response.status_code == 200
    errors = response.context["form"].errors
    assert field in errors, errors
    assert message in " ".join(errors[field]), errors


@pytest.mark.django_db
def test_switching_the_azure_sign_in_method_forgets_the_old_secret(client, users):
    owner = users["admin"]
    login(client, owner)
    client.post(
        reverse("connectors-new") + "?kind=azure_blob",
        {
            "kind": "azure_blob",
            "name": "Blob",
            "container": "exports",
            "auth": "connection_string",
            "connection_string": "DefaultEndpointsProtocol=https;AccountName=a;AccountKey=b",
        },
    )
    connector = Connector.objects.get(name="Blob")
    assert set(connector.secret_values()) == {"connection_string"}
    client.post(
        reverse("connectors-edit", args=[connector.id]),
        {
            "name": "Blob",
            "container": "exports",
            "auth": "sas_token",
            "account_name": "acct",
            "sas_token": "sv=1&sig=2",
        },
    )
    connector.refresh_from_db()
    assert set(connector.secret_values()) == {"sas_token"}
    assert connector.options["auth"] == "sas_token"


@pytest.mark.django_db
def test_who_may_do_what_with_a_connector(client, users):
    connector = s3_connector(users["owner"])
    urls = {
        "edit": reverse("connectors-edit", args=[connector.id]),
        "delete": reverse("connectors-delete", args=[connector.id]),
        "test": reverse("connectors-test", args=[connector.id]),
    }
    # Destinations are managed by the organisation's admins and used by its marketers:
    # the marketer who made one before that rule may no longer change it either.
    for who in ("owner", "teammate", "viewer", "staff", "nobody"):
        login(client, users[who])
        assert client.get(connector.get_absolute_url()).status_code == 200
        assert client.get(urls["edit"]).status_code == 403, who
        assert client.post(urls["delete"]).status_code == 403, who
        assert client.post(urls["test"]).status_code == 403, who
    for who in ("viewer", "owner"):
        login(client, users[who])
        assert client.get(reverse("connectors-new") + "?kind=s3").status_code == 403
    login(client, users["admin"])
    assert client.get(urls["edit"]).status_code == 200
    assert Connector.objects.filter(id=connector.id).exists()
    client.logout()
    assert client.get(reverse("connectors-list")).status_code == 302


@pytest.mark.django_db
def test_deleting_is_refused_while_an_export_uses_the_connector(client, users, demo_database):
    owner = users["owner"]
    connector = s3_connector(users["admin"])
    export = Export.objects.create(
        name="Nightly CRM", owner=owner, dataset=demo_database.datasets.get(name="profiles"), connector=connector
    )
    login(client, users["admin"])
    modal = client.get(reverse("connectors-delete", args=[connector.id])).content.decode()
    assert "can't be deleted" in modal
    assert "Nightly CRM" in modal
    assert 'class="danger"' not in modal
    response = client.post(reverse("connectors-delete", args=[connector.id]), follow=True)
    assert "used by 1 export(s)" in response.content.decode()
    assert Connector.objects.filter(id=connector.id).exists()

    export.delete()
    modal = client.get(reverse("connectors-delete", args=[connector.id])).content.decode()
    assert "Delete the connector" in modal
    response = client.post(reverse("connectors-delete", args=[connector.id]))
    assert response.status_code == 302
    assert not Connector.objects.filter(id=connector.id).exists()


@pytest.mark.django_db
def test_the_wizard_delivers_to_a_chosen_connector_and_previews_the_path(client, users, demo_database):
    owner = users["owner"]
    connector = s3_connector(owner)
    export = Export.objects.create(name="CRM feed", owner=owner, dataset=demo_database.datasets.get(name="profiles"))
    login(client, owner)
    url = reverse("exports-wizard", args=[export.id, "destination"])
    page = client.get(url).content.decode()
    assert "Team bucket" in page
    assert "Desktop: download from the run report" in page

    preview = client.get(
        reverse("exports-folder-preview", args=[export.id]),
        {"connector": str(connector.id), "folder_template": "%EXPORT_NAME%_%DATETIME(YYYYMMdd)%"},
        HTTP_HX_REQUEST="true",
    ).content.decode()
    assert f"s3://team-bucket/crm/{export.id}/unscheduled/CRM_feed_" in preview
    assert f"s3://team-bucket/crm/{export.id}/CRM_feed_2" in preview
    assert "/tnfs/" in preview
    bad = client.get(
        reverse("exports-folder-preview", args=[export.id]),
        {"connector": str(connector.id), "folder_template": "../%NOPE%"},
    ).content.decode()
    assert "unknown token %NOPE%" in bad

    response = client.post(url, {"connector": str(connector.id), "folder_template": "../up"})
    assert response.status_code == 200
    assert "not allowed" in response.content.decode()
    response = client.post(url, {"connector": str(connector.id), "folder_template": "%DATETIME(YYYYMMdd)%"})
    assert response.status_code == 302
    export.refresh_from_db()
    assert export.connector_id == connector.id
    assert export.folder_template == "%DATETIME(YYYYMMdd)%"
    summary = client.get(reverse("exports-wizard", args=[export.id, "summary"])).content.decode()
    assert "Team bucket" in summary


@pytest.mark.django_db
def test_the_path_preview_takes_a_malformed_connector_id_for_desktop(client, users, demo_database):
    export = Export.objects.create(name="x", owner=users["owner"], dataset=demo_database.datasets.get(name="profiles"))
    login(client, users["owner"])
    response = client.get(reverse("exports-folder-preview", args=[export.id]), {"connector": "not-a-uuid"})
    assert response.status_code == 200
    assert b"<dt>Download</dt>" in response.content
