"""Wrong credentials, a missing bucket, a stopped server and a changed host key: each
gives the right error in Test connection and in the run report, and after the fix the
report's Relaunch delivers a complete new delivery without touching earlier ones."""

from __future__ import annotations

import posixpath

import pytest
from django.urls import reverse

from connectors.models import Connector
from connectors.probe import probe
from exports.models import Export, Run
from tests import services
from tests.conftest import PASSWORD
from tests.connectors.test_delivery import check_delivery, export_to, run_once
from tests.pages import press_test_connection
from tests.stores import S3_BUCKET, SFTP_CLIENT_KEY, SFTP_KEY_PASSPHRASE, S3Side

# Destinations are managed by admins: in these tests of destinations, the owner (and teammate) are.
pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("destination_admins")]


def relaunch(client, user, run: Run, worker) -> Run:
    client.login(username=user.username, password=PASSWORD)
    response = client.post(reverse("runs-relaunch", args=[run.id]))
    assert response.status_code == 302, response.content[:500]
    new_run = Run.objects.get(relaunch_of=run)
    assert response.url == new_run.get_absolute_url()
    worker()
    new_run.refresh_from_db()
    return new_run


def assert_probe_fails(connector, step: str, problem: str, *fragments: str) -> None:
    report = probe(connector)
    assert not report.ok
    failed = report.failure
    assert (failed.name, failed.problem) == (step, problem), report.steps
    for fragment in fragments:
        assert fragment in failed.detail
    connector.refresh_from_db()
    assert connector.last_test_ok is False
    assert problem in connector.last_test_message


def test_wrong_s3_credentials_then_fixed(client, users, demo_database, worker, s3):
    owner = users["owner"]
    connector = s3.connector(owner)
    connector.set_secrets({"secret_access_key": "not-the-secret-key-123"})
    connector.save()
    assert_probe_fails(connector, "connect", "Bad credentials", "S3 refused the credentials")
    export = export_to(connector, owner, demo_database.datasets.get(name="profiles"))

    failed = run_once(export, owner, worker)

    assert failed.status == Run.Status.FAILED
    assert failed.error_code == Run.ErrorCode.DESTINATION_AUTH_FAILED
    assert connector.name in failed.error_message
    assert failed.is_relaunchable
    assert s3.objects(f"{connector.base_path}/{export.id}/") == []
    client.login(username=owner.username, password=PASSWORD)
    page = client.get(failed.get_absolute_url())
    assert b"DESTINATION_AUTH_FAILED" in page.content
    assert b'id="relaunch"' in page.content

    connector.set_secrets({"secret_access_key": s3.secret_access_key})
    connector.save()
    assert probe(connector).ok
    fixed = relaunch(client, owner, failed, worker)

    assert fixed.status == Run.Status.SUCCEEDED, fixed.error_message
    assert fixed.attempt == 2
    assert fixed.trigger == Run.Trigger.RELAUNCH
    check_delivery(s3.objects(f"{connector.base_path}/{export.id}/"), fixed, fixed.delivery_folder)


def test_an_s3_key_that_may_only_read_is_a_permission_error(users, demo_database, worker, s3):
    owner = users["owner"]
    connector = s3.connector(owner, access_key_id=s3.read_only_key_id)
    connector.set_secrets({"secret_access_key": s3.read_only_secret})
    connector.save()
    assert_probe_fails(connector, "write", "Permission denied", S3_BUCKET)
    export = export_to(connector, owner, demo_database.datasets.get(name="profiles"))
    failed = run_once(export, owner, worker)
    assert failed.error_code == Run.ErrorCode.DESTINATION_PERMISSION_DENIED, failed.error_message


def test_a_missing_bucket_then_created(client, users, demo_database, worker, s3):
    owner = users["owner"]
    connector = s3.connector(owner, bucket="not-made-yet")
    assert_probe_fails(connector, "connect", "Missing bucket, container or folder", "'not-made-yet' does not exist")
    export = export_to(connector, owner, demo_database.datasets.get(name="profiles"))
    failed = run_once(export, owner, worker)
    assert failed.error_code == Run.ErrorCode.DESTINATION_NOT_FOUND

    s3.client().create_bucket(Bucket="not-made-yet")
    fixed = relaunch(client, owner, failed, worker)

    assert fixed.status == Run.Status.SUCCEEDED, fixed.error_message
    listed = s3.client().list_objects_v2(Bucket="not-made-yet").get("Contents", [])
    assert len(listed) == fixed.files.count() + 1


def test_a_stopped_s3_server_is_unreachable_then_relaunch_delivers(client, users, demo_database, worker, service_logs):
    server = services.start_moto(service_logs)
    side = S3Side(server.url, "key-id", "key-secret", "", "")
    side.client().create_bucket(Bucket=S3_BUCKET)
    owner = users["owner"]
    connector = side.connector(owner)
    export = export_to(connector, owner, demo_database.datasets.get(name="profiles"))
    try:
        server.stop()
        assert_probe_fails(connector, "connect", "Unreachable host", "can't reach the S3 endpoint")

        failed = run_once(export, owner, worker)

        assert failed.error_code == Run.ErrorCode.DESTINATION_UNREACHABLE, failed.error_message
        server = services.start_moto(service_logs, port=server.port)
        side.client().create_bucket(Bucket=S3_BUCKET)
        fixed = relaunch(client, owner, failed, worker)
        assert fixed.status == Run.Status.SUCCEEDED, fixed.error_message
        check_delivery(side.objects(f"{connector.base_path}/{export.id}/"), fixed, fixed.delivery_folder)
    finally:
        server.stop()


def test_azure_wrong_key_and_missing_container(users, demo_database, worker, azure):
    owner = users["owner"]
    wrong = services.azurite_connection_string(azure.port, key="V3JvbmcgYWNjb3VudCBrZXkgZm9yIHRlc3Rz" * 2)
    connector = azure.connector(owner, connection_string=wrong)
    assert_probe_fails(connector, "connect", "Bad credentials", "Azure refused the credentials")
    export = export_to(connector, owner, demo_database.datasets.get(name="profiles"))
    assert run_once(export, owner, worker).error_code == Run.ErrorCode.DESTINATION_AUTH_FAILED

    missing = azure.connector(owner, container="no-such-container")
    assert_probe_fails(missing, "connect", "Missing bucket, container or folder", "'no-such-container'")
    export = export_to(missing, owner, demo_database.datasets.get(name="profiles"))
    assert run_once(export, owner, worker).error_code == Run.ErrorCode.DESTINATION_NOT_FOUND


def test_gcs_missing_bucket(users, demo_database, worker, gcs):
    owner = users["owner"]
    connector = gcs.connector(owner, bucket="no-such-gcs-bucket")
    assert_probe_fails(connector, "connect", "Missing bucket, container or folder", "'no-such-gcs-bucket'")
    export = export_to(connector, owner, demo_database.datasets.get(name="profiles"))
    assert run_once(export, owner, worker).error_code == Run.ErrorCode.DESTINATION_NOT_FOUND


def test_sftp_wrong_password_missing_folder_and_stopped_server(users, demo_database, worker, external_sftp):
    owner = users["owner"]
    connector = external_sftp.connector(owner)
    connector.set_secrets({"password": "wrong-password-77"})
    connector.save()
    assert_probe_fails(connector, "connect", "Bad credentials", "refused the user name, password or key")
    export = export_to(connector, owner, demo_database.datasets.get(name="profiles"))
    assert run_once(export, owner, worker).error_code == Run.ErrorCode.DESTINATION_AUTH_FAILED

    missing = external_sftp.connector(owner, base_path="/nowhere")
    assert_probe_fails(missing, "connect", "Missing bucket, container or folder", "'/nowhere' does not exist")

    external_sftp.service.stop()
    try:
        reachable = external_sftp.connector(owner)
        assert_probe_fails(reachable, "connect", "Unreachable host", f":{external_sftp.port}")
        export = export_to(reachable, owner, demo_database.datasets.get(name="profiles"))
        assert run_once(export, owner, worker).error_code == Run.ErrorCode.DESTINATION_UNREACHABLE
    finally:
        external_sftp.start()


def test_a_changed_host_key_is_refused_until_confirmed_and_relaunch_leaves_earlier_deliveries(
    client, users, demo_database, worker, external_sftp
):
    owner = users["owner"]
    connector = external_sftp.connector(owner)
    export = export_to(
        connector, owner, demo_database.datasets.get(name="profiles"), export_type=Export.Type.PERIODIC_FULL
    )
    first = run_once(export, owner, worker)
    assert first.status == Run.Status.SUCCEEDED, first.error_message
    export_root = posixpath.join(connector.base_path, str(export.id))
    before = {item.path: item.data for item in external_sftp.objects(export_root)}

    old_fingerprint = external_sftp.fingerprint
    external_sftp.restart(new_host_key=True)
    assert_probe_fails(connector, "connect", "Host key mismatch", external_sftp.fingerprint, old_fingerprint)
    failed = run_once(export, owner, worker)
    assert failed.error_code == Run.ErrorCode.DESTINATION_HOST_KEY_MISMATCH
    assert external_sftp.fingerprint in failed.error_message

    client.login(username=owner.username, password=PASSWORD)
    response = client.post(
        reverse("connectors-trust-host-key", args=[connector.id]), {"fingerprint": external_sftp.fingerprint}
    )
    assert response.status_code == 302
    connector.refresh_from_db()
    assert connector.options["host_key_fingerprint"] == external_sftp.fingerprint
    fixed = relaunch(client, owner, failed, worker)

    assert fixed.status == Run.Status.SUCCEEDED, fixed.error_message
    assert fixed.delivery_folder not in {first.delivery_folder, ""}
    after = {item.path: item.data for item in external_sftp.objects(export_root)}
    assert {path: data for path, data in after.items() if path in before} == before
    objects = external_sftp.objects(export_root)
    check_delivery(objects, first, first.delivery_folder)
    check_delivery(objects, fixed, fixed.delivery_folder)


def test_an_unpinned_sftp_server_must_be_confirmed_first(client, users, demo_database, worker, external_sftp):
    owner = users["owner"]
    connector = external_sftp.connector(owner, pin=False)
    report = probe(connector)
    assert report.failure.problem == "Host key mismatch"
    assert report.unconfirmed_host_key == external_sftp.fingerprint
    export = export_to(connector, owner, demo_database.datasets.get(name="profiles"))
    failed = run_once(export, owner, worker)
    assert failed.error_code == Run.ErrorCode.DESTINATION_HOST_KEY_MISMATCH
    assert "not trusted yet" in failed.error_message

    client.login(username=owner.username, password=PASSWORD)
    page = press_test_connection(client, connector, worker)
    assert external_sftp.fingerprint.encode() in page.content
    assert b"Trust this host key" in page.content
    client.post(reverse("connectors-trust-host-key", args=[connector.id]), {"fingerprint": external_sftp.fingerprint})
    connector.refresh_from_db()
    assert probe(connector).ok


def test_an_sftp_connector_signs_in_with_an_encrypted_private_key(client, users, demo_database, worker, external_sftp):
    owner = users["owner"]
    client.login(username=owner.username, password=PASSWORD)
    data = {
        "kind": "sftp",
        "name": "SFTP by key",
        "base_path": "/upload",
        "host": "127.0.0.1",
        "port": external_sftp.port,
        "username": "acme",
        "auth": "private_key",
        "private_key": SFTP_CLIENT_KEY,
        "host_key_fingerprint": external_sftp.fingerprint,
    }
    response = client.post(reverse("connectors-new") + "?kind=sftp", data)
    assert "give its passphrase" in response.content.decode()  # refused without it
    response = client.post(reverse("connectors-new") + "?kind=sftp", {**data, "passphrase": SFTP_KEY_PASSPHRASE})
    assert response.status_code == 302
    connector = Connector.objects.get(name="SFTP by key")
    assert set(connector.secret_values()) == {"private_key", "passphrase"}
    assert probe(connector).ok
    export = export_to(connector, owner, demo_database.datasets.get(name="profiles"))
    run = run_once(export, owner, worker)
    assert run.status == Run.Status.SUCCEEDED, run.error_message
    check_delivery(external_sftp.objects(f"/upload/{export.id}"), run, run.delivery_folder)
