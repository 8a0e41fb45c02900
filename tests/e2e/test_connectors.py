"""A marketer's path to a store in a real Chromium: create an S3 connector, test its
connection, export to it through the wizard, and read the report's TNF; and confirming
an SFTP server's host key from the Test connection result."""

from __future__ import annotations

import json

import pytest
from playwright.sync_api import expect

from connectors.models import Connector
from exports.models import Run
from tests.e2e.conftest import log_in
from tests.stores import S3_BUCKET, SFTP_PASSWORD, SFTP_USER

pytestmark = pytest.mark.django_db(transaction=True)


def test_an_admin_adds_s3_and_a_marketer_delivers_an_export_to_it(
    page, live_server, live_worker, users, demo_database, s3, tmp_path
):
    log_in(page, live_server.url, users["admin"].username)  # admins manage destinations
    page.click("nav >> text=Connectors")
    page.click("text=New connector")
    page.click("text=Amazon S3")
    page.fill("#id_name", "Marketing lake")
    page.fill("#id_base_path", "crm/daily")
    page.fill("#id_bucket", S3_BUCKET)
    page.fill("#id_access_key_id", s3.access_key_id)
    page.fill("#id_secret_access_key", s3.secret_access_key)
    page.fill("#id_endpoint_url", s3.endpoint)
    page.click("button:has-text('Save')")
    page.wait_for_selector("h1:has-text('Marketing lake')")
    assert s3.secret_access_key not in page.content()

    page.click("button:has-text('Test connection')")
    page.wait_for_selector("#test-result .badge:has-text('OK')")
    assert page.locator("#test-result li").count() == 4
    page.screenshot(path=str(tmp_path / "connector-tested.png"), full_page=True)

    log_in(page, live_server.url, users["owner"].username)  # a marketer uses it
    page.click("nav >> text=Connectors")
    expect(page.get_by_text("Marketing lake")).to_be_visible()
    expect(page.get_by_text("New connector")).to_have_count(0)
    page.click("text=Create export")
    page.fill("#id_name", "Daily interactions")
    page.select_option("#id_dataset", str(demo_database.datasets.get(name="interactions").id))
    page.click("button[name=next]")
    page.wait_for_url("**/wizard/file/")
    page.click("button[name=next]")
    page.wait_for_url("**/wizard/destination/")
    connector = Connector.objects.get(name="Marketing lake")
    page.select_option("#id_connector", str(connector.id))
    page.wait_for_selector(f"#folder-preview:has-text('s3://{S3_BUCKET}/crm/daily/')")
    assert "/unscheduled/Daily_interactions_" in page.locator("#folder-preview").inner_text()
    page.click("button[name=next]")
    page.wait_for_url("**/wizard/schedule/")
    page.click("button[name=next]")
    page.wait_for_url("**/wizard/summary/")
    page.click("button[name=launch]")
    page.wait_for_url("**/runs/**")

    page.wait_for_selector("#run-status:has-text('Succeeded')", timeout=60_000)
    run = Run.objects.get()
    tnf_path = page.locator("#run-tnf").inner_text()
    assert tnf_path == run.tnf_path
    assert tnf_path.startswith(f"crm/daily/{run.export_id}/tnfs/")
    assert page.locator("#run-folder").inner_text() == f"crm/daily/{run.export_id}/unscheduled/"
    tnf = json.loads(s3.client().get_object(Bucket=S3_BUCKET, Key=tnf_path)["Body"].read())
    assert tnf["RowCount"] == 5_000
    assert tnf["DeliveryId"] == str(run.id)
    page.screenshot(path=str(tmp_path / "run-report-s3.png"), full_page=True)


def test_an_sftp_host_key_is_confirmed_from_the_test_result(page, live_server, live_worker, users, external_sftp):
    connector = external_sftp.connector(users["admin"], pin=False)
    log_in(page, live_server.url, users["admin"].username)
    page.goto(f"{live_server.url}{connector.get_absolute_url()}")
    assert "none yet: run Test connection" in page.content()
    page.click("button:has-text('Test connection')")
    page.wait_for_selector(f"#test-result code:has-text('{external_sftp.fingerprint}')")
    assert "Host key mismatch" in page.locator("#test-result").inner_text()
    page.click("button:has-text('Trust this host key')")
    page.wait_for_selector("text=Pinned the server's host key")
    page.click("button:has-text('Test connection')")
    page.wait_for_selector("#test-result .badge:has-text('OK')")
    connector.refresh_from_db()
    assert connector.options["host_key_fingerprint"] == external_sftp.fingerprint
    assert SFTP_PASSWORD not in page.content()
    assert SFTP_USER in page.content()
