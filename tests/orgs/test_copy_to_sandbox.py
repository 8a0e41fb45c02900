"""Copy to sandbox: a definition promoted from `test` to `production` as a draft, its
dataset mapped by database and name, its destination one of the target's own."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from exports.models import Database, Export, refresh_datasets
from tests.conftest import in_sandbox

pytestmark = pytest.mark.django_db


@pytest.fixture
def draft_in_test(tenants, demo_path):
    """Acme's test sandbox has its own copy of the Acme CRM source, and a draft on it."""
    acme, _ = tenants
    database = Database.objects.create(name="Acme CRM", url=f"sqlite:///{demo_path}", sandbox=acme.test)
    refresh_datasets(database)
    return Export.objects.create(
        name="Promo list",
        owner=acme.marketer,
        dataset=database.datasets.get(name="profiles"),
        sandbox=acme.test,
        columns=["email", "country"],
        filters=[{"column": "country", "operator": "equals", "value": "FR"}],
        file_format=Export.Format.PARQUET,
    )


def copy_page(client: Client, draft, **data):
    with in_sandbox(draft.sandbox):
        url = reverse("exports-copy-to-sandbox", args=[draft.id])
    return client.post(url, data) if data else client.get(url)


def test_a_draft_is_promoted_with_its_dataset_mapped_and_a_destination_of_the_target(tenants, draft_in_test):
    acme, _ = tenants
    client = Client()
    client.force_login(acme.marketer)
    page = copy_page(client, draft_in_test).content.decode()
    assert "Acme lake" in page  # production's destinations are offered
    assert "Bravo" not in page

    response = copy_page(
        client, draft_in_test, sandbox="production", name="Promo list", connector=str(acme.connector.id)
    )
    copy = Export.objects.exclude(id=draft_in_test.id).get(name="Promo list")
    assert response["Location"] == f"/o/acme/production/exports/{copy.id}/"
    assert (copy.sandbox, copy.dataset, copy.connector, copy.status) == (
        acme.production,
        acme.database.datasets.get(name="profiles"),
        acme.connector,
        Export.Status.DRAFT,
    )
    assert (copy.columns, copy.filters, copy.file_format, copy.copied_from) == (
        draft_in_test.columns,
        draft_in_test.filters,
        Export.Format.PARQUET,
        draft_in_test,
    )
    draft_in_test.refresh_from_db()
    assert draft_in_test.sandbox == acme.test  # the original stays where it was


def test_a_destination_never_crosses_sandboxes(tenants, draft_in_test):
    acme, bravo = tenants
    client = Client()
    client.force_login(acme.admin)
    test_drop = acme.hosted.__class__.objects.create(
        name="Acme test lake", kind="s3", owner=acme.admin, sandbox=acme.test, options={"bucket": "t"}
    )
    for connector in (test_drop, bravo.connector):  # the source sandbox's, another organisation's
        response = copy_page(client, draft_in_test, sandbox="production", name="x", connector=str(connector.id))
        assert response.status_code == 400
        assert "Choose one of the destinations listed" in response.content.decode()
    assert copy_page(client, draft_in_test, sandbox="nowhere", name="x").status_code == 404
    assert not Export.objects.filter(name="x").exists()


def test_a_target_without_the_dataset_says_so(tenants, draft_in_test):
    acme, _ = tenants
    acme.database.name = "Acme warehouse"
    acme.database.save()
    client = Client()
    client.force_login(acme.marketer)
    response = copy_page(client, draft_in_test, sandbox="production", name="Promo list", connector="")
    assert response.status_code == 400
    assert "has no dataset profiles in a database named &#x27;Acme CRM&#x27;" in response.content.decode()
    assert Export.objects.filter(name="Promo list").count() == 1


def test_a_viewer_may_not_copy(tenants, draft_in_test):
    acme, _ = tenants
    client = Client()
    client.force_login(acme.viewer)
    assert copy_page(client, draft_in_test).status_code == 403
