"""Organisations and sandboxes in a real browser: switching organisation and sandbox
from the header, and promoting a definition from `test` to `production`, with the
header and the URL following each move."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from exports.models import Database, Export, refresh_datasets
from tests.conftest import member
from tests.e2e.conftest import log_in, open_menu

pytestmark = pytest.mark.django_db(transaction=True)


def switch_to(page, label: str) -> None:
    page.locator("[data-testid=switcher] summary").click()
    page.locator("[data-testid=switcher]").get_by_role("link", name=label, exact=True).click()


def test_switching_organisation_and_sandbox_and_promoting_a_draft(page, live_server, tenants, demo_path):
    acme, bravo = tenants
    member(acme.admin, bravo.organisation, "marketer")  # one person, two organisations
    test_crm = Database.objects.create(name="Acme CRM", url=f"sqlite:///{demo_path}", sandbox=acme.test)
    refresh_datasets(test_crm)
    Export.objects.create(
        name="Spring promo", owner=acme.admin, dataset=test_crm.datasets.get(name="profiles"), sandbox=acme.test
    )
    header = page.locator("[data-testid=switcher] summary")

    log_in(page, live_server.url, acme.admin.username)
    expect(page).to_have_url(re.compile(r"/o/acme/production/exports/$"))
    expect(header).to_have_text("Acme / Production")

    switch_to(page, "Bravo / Production")
    expect(page).to_have_url(re.compile(r"/o/bravo/production/exports/$"))
    expect(header).to_have_text("Bravo / Production")
    expect(page.get_by_text("Spring promo")).to_have_count(0)

    switch_to(page, "Acme / Test")
    expect(page).to_have_url(re.compile(r"/o/acme/test/exports/$"))
    expect(header).to_have_text("Acme / Test")
    row = page.locator("tr", has_text="Spring promo")
    open_menu(row).get_by_role("link", name="Copy to sandbox").click()
    expect(page).to_have_url(re.compile(r"/o/acme/test/exports/[-0-9a-f]+/copy-to-sandbox/$"))
    page.select_option("#copy-sandbox", "production")
    page.get_by_role("button", name="Show its destinations").click()
    page.select_option("#copy-connector", label="Acme lake (Amazon S3)")
    page.get_by_role("button", name="Copy to Production as a draft").click()

    promoted = Export.objects.get(name="Spring promo", sandbox=acme.production)
    expect(page).to_have_url(re.compile(rf"/o/acme/production/exports/{promoted.id}/$"))
    expect(header).to_have_text("Acme / Production")
    expect(page.get_by_role("status")).to_contain_text("Copied 'Spring promo' to Production")
    assert (promoted.status, promoted.connector, promoted.dataset.database) == (
        Export.Status.DRAFT,
        acme.connector,
        acme.database,
    )
    # Every link on the page stays in the sandbox it is in.
    hrefs = page.locator("main a[href^='/']").evaluate_all("links => links.map(link => link.getAttribute('href'))")
    assert hrefs
    assert all(href.startswith("/o/acme/production/") for href in hrefs), hrefs
