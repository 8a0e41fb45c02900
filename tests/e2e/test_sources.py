"""An admin adds a PostgreSQL source on the Sources page in Chromium: a wrong password
says "bad credentials", the right one "connected"; saved, one of its tables exports."""

from __future__ import annotations

import pytest

from exports.actions import queue_run
from exports.models import Database, Export, Run
from tests.conftest import run_worker
from tests.e2e.conftest import log_in

pytestmark = pytest.mark.django_db(transaction=True)


def test_an_admin_adds_a_postgresql_source_tests_it_and_exports_a_table(page, live_server, users, pg_with_passwords):
    log_in(page, live_server.url, users["admin"].username)
    page.click("text=Sources")
    page.click("#add-source")
    page.fill("#id_name", "Shop database")
    page.select_option("#id_engine", "postgresql")
    page.fill("#id_host", pg_with_passwords.host)
    page.fill("#id_port", str(pg_with_passwords.port))
    page.fill("#id_database", pg_with_passwords.database)
    page.fill("#id_user", pg_with_passwords.user)
    page.fill("#id_password", "wrong password")
    page.click("#test-connection")
    result = page.locator("#probe-result")
    assert "Connect failed: bad credentials" in result.inner_text()
    assert page.locator("#id_password").input_value() == ""  # never sent back

    page.fill("#id_password", pg_with_passwords.password)
    page.click("#test-connection")
    assert result.inner_text().startswith("Connected:")
    assert "read a row of public.customers" in result.inner_text()

    page.fill("#id_password", pg_with_passwords.password)
    page.click("#save-source")
    page.wait_for_url("**/sources/")
    assert "Saved Shop database" in page.content()
    assert "public.customers" in page.locator("main").inner_text()
    assert pg_with_passwords.password not in page.content()

    database = Database.objects.get(name="Shop database")
    customers = database.datasets.get(name="customers")
    export = Export.objects.create(owner=users["admin"], dataset=customers, name="Customers")
    run = queue_run(export, user=users["admin"])
    run_worker()
    run.refresh_from_db()
    assert run.status == Run.Status.SUCCEEDED, run.error_message
    assert run.row_count == 250
