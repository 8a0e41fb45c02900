"""Organisations start with one production sandbox; whatever is saved without a sandbox
goes to Default/production until pages and the API choose one."""

from __future__ import annotations

import pytest
from django.db import IntegrityError, transaction

from connectors.models import Connector
from orgs.models import Organisation, Sandbox

pytestmark = pytest.mark.django_db


def test_an_organisation_starts_with_its_one_production_sandbox():
    acme = Organisation.objects.create(name="Acme", slug="acme")
    (production,) = acme.sandboxes.all()
    assert (production.slug, production.kind) == ("production", Sandbox.Kind.PRODUCTION)
    Sandbox.objects.create(organisation=acme, name="Staging", slug="staging")
    with pytest.raises(IntegrityError), transaction.atomic():
        Sandbox.objects.create(organisation=acme, name="Prod 2", slug="prod-2", kind=Sandbox.Kind.PRODUCTION)
    with pytest.raises(IntegrityError), transaction.atomic():
        Sandbox.objects.create(organisation=acme, name="Again", slug="staging")


def test_an_object_saved_without_a_sandbox_goes_to_default_production(users):
    connector = Connector.objects.create(name="lake", kind=Connector.Kind.S3, owner=users["owner"])
    assert (connector.sandbox.organisation.slug, connector.sandbox.slug) == ("default", "production")
    acme = Organisation.objects.create(name="Acme", slug="acme")
    elsewhere = Connector.objects.create(
        name="theirs", kind=Connector.Kind.S3, owner=users["owner"], sandbox=acme.sandboxes.get()
    )
    assert elsewhere.sandbox.organisation == acme


def test_the_permissions_roles_are_the_memberships():
    from exports import permissions  # noqa: PLC0415
    from orgs.models import Membership  # noqa: PLC0415

    assert set(permissions.ROLES) == set(Membership.Role.values) == set(permissions.GRANTS)
