"""No secret a user configured appears in any page, log line, error message or report;
secrets are encrypted at rest and survive an edit that leaves them blank."""

from __future__ import annotations

import json
import logging

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from django.db import connection
from django.urls import reverse

from connectors.models import Connector
from exports.actions import queue_run
from exports.models import Run
from tests.conftest import PASSWORD
from tests.connectors.test_delivery import export_to
from tests.pages import press_test_connection
from tests.stores import AZURE_CONTAINER, GCS_BUCKET, S3_BUCKET, SFTP_PASSWORD, SFTP_USER

# Destinations are managed by admins: in these tests of destinations, the owner (and teammate) are.
pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("destination_admins")]


def service_account_key() -> tuple[str, str]:
    pem = (
        rsa.generate_private_key(public_exponent=65537, key_size=2048)
        .private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        .decode()
    )
    info = {
        "type": "service_account",
        "project_id": "test",
        "private_key_id": "k1",
        "private_key": pem,
        "client_email": "exporter@test.iam.gserviceaccount.com",
        "client_id": "1",
        # A closed local port: the token request fails at once, without the outside network.
        "token_uri": "http://127.0.0.1:9/token",
    }
    return json.dumps(info), pem


def create(client, kind: str, data: dict) -> Connector:
    response = client.post(reverse("connectors-new") + f"?kind={kind}", {"kind": kind, **data})
    assert response.status_code == 302, response.content.decode()[:3000]
    return Connector.objects.get(name=data["name"])


def test_no_secret_leaks_into_pages_logs_errors_or_reports(
    client, users, demo_database, worker, s3, gcs, azure, external_sftp, caplog, settings
):
    caplog.set_level(logging.DEBUG)
    settings.CONNECTION_TESTS_PER_MINUTE = 100
    owner = users["owner"]
    client.login(username=owner.username, password=PASSWORD)
    gcs_key, gcs_pem = service_account_key()
    wrong_s3_secret = "Wr0ng-S3-secret-5f1c9a"
    secrets = {
        "s3": s3.secret_access_key,
        "wrong s3": wrong_s3_secret,
        "gcs key body": gcs_pem.splitlines()[5],
        "azure key": azure.connection_string.split("AccountKey=")[1].split(";")[0],
        "sftp": SFTP_PASSWORD,
    }
    connectors = [
        create(
            client,
            "s3",
            {
                "name": "S3 good",
                "bucket": S3_BUCKET,
                "access_key_id": s3.access_key_id,
                "secret_access_key": s3.secret_access_key,
                "endpoint_url": s3.endpoint,
            },
        ),
        create(
            client,
            "s3",
            {
                "name": "S3 wrong",
                "bucket": S3_BUCKET,
                "access_key_id": s3.access_key_id,
                "secret_access_key": wrong_s3_secret,
                "endpoint_url": s3.endpoint,
            },
        ),
        create(
            client,
            "gcs",
            {"name": "GCS", "bucket": GCS_BUCKET, "service_account_json": gcs_key, "endpoint_url": gcs.endpoint},
        ),
        create(
            client,
            "azure_blob",
            {
                "name": "Azure",
                "container": AZURE_CONTAINER,
                "auth": "connection_string",
                "connection_string": azure.connection_string,
            },
        ),
        create(
            client,
            "sftp",
            {
                "name": "SFTP",
                "host": "127.0.0.1",
                "port": external_sftp.port,
                "username": SFTP_USER,
                "auth": "password",
                "password": SFTP_PASSWORD,
                "host_key_fingerprint": external_sftp.fingerprint,
            },
        ),
        create(client, "hosted_sftp", {"name": "Hosted", "base_path": "exports"}),
    ]
    hosted = connectors[-1]
    secrets["hosted private key"] = hosted.secret("private_key").splitlines()[2]

    pages = [client.get(reverse("connectors-list"))]
    for connector in connectors:
        pages += [
            client.get(connector.get_absolute_url()),
            client.get(reverse("connectors-edit", args=[connector.id])),
            press_test_connection(client, connector, worker),
            press_test_connection(client, connector, worker, htmx=False),
        ]
    results = {connector.name: connector for connector in Connector.objects.all()}
    assert results["Azure"].last_test_ok, results["Azure"].last_test_message
    assert results["S3 good"].last_test_ok
    assert results["Azure"].last_test_ok
    assert results["SFTP"].last_test_ok
    assert not results["S3 wrong"].last_test_ok
    assert not results["GCS"].last_test_ok

    dataset = demo_database.datasets.get(name="profiles")
    runs = []
    for connector in connectors:
        run = queue_run(export_to(connector, owner, dataset, name=f"to {connector.name}"), user=owner)
        runs.append(run)
        output = worker()
        pages.append(client.get(run.get_absolute_url()))
        pages.append(client.get(reverse("exports-list") + "?tab=finished"))
        logs = output.stdout + output.stderr
        for label, secret in secrets.items():
            assert secret not in logs, f"the {label} secret is in the worker's log"
    statuses = {run.export.connector.name: Run.objects.get(id=run.id) for run in runs}
    assert statuses["S3 wrong"].error_code == Run.ErrorCode.DESTINATION_AUTH_FAILED
    assert statuses["S3 good"].status == Run.Status.SUCCEEDED

    texts = [page.content.decode() for page in pages]
    texts += [run.error_message for run in Run.objects.all()]
    texts += [connector.last_test_message for connector in Connector.objects.all()]
    texts.append(caplog.text)
    for label, secret in secrets.items():
        for text in texts:
            assert secret not in text, f"the {label} secret leaked"
    with connection.cursor() as cursor:
        cursor.execute("SELECT secrets FROM connectors_connector")
        stored = " ".join(row[0] for row in cursor.fetchall())
    for label, secret in secrets.items():
        assert secret not in stored, f"the {label} secret is stored in clear"


def test_a_blank_secret_on_edit_keeps_the_stored_one(client, users, s3):
    owner = users["owner"]
    client.login(username=owner.username, password=PASSWORD)
    connector = s3.connector(owner)
    form = client.get(reverse("connectors-edit", args=[connector.id])).content.decode()
    assert s3.secret_access_key not in form
    assert "Stored; leave blank to keep it." in form
    response = client.post(
        reverse("connectors-edit", args=[connector.id]),
        {
            "name": "Renamed",
            "base_path": "other/prefix",
            "bucket": S3_BUCKET,
            "region": "eu-west-1",
            "access_key_id": s3.access_key_id,
            "endpoint_url": s3.endpoint,
            "secret_access_key": "",
        },
    )
    assert response.status_code == 302
    connector.refresh_from_db()
    assert connector.name == "Renamed"
    assert connector.base_path == "other/prefix"
    assert connector.secret("secret_access_key") == s3.secret_access_key
