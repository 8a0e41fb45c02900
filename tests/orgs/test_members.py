"""Members: an organisation's admins give accounts a role, change it, or take it away;
the organisation always keeps an admin. Platform staff entering an organisation is in
the audit log."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from orgs.models import AuditEntry, Membership
from tests.tenants import signed_in

pytestmark = pytest.mark.django_db

MEMBERS = "/o/acme/production/members/"


def test_an_admin_adds_a_member_who_then_enters_the_organisation(tenants):
    acme, bravo = tenants
    outsider = signed_in(bravo.marketer)
    assert outsider.get("/o/acme/production/exports/").status_code == 404
    admin = signed_in(acme.admin)
    page = admin.get(MEMBERS).content.decode()
    assert "acme-marketer" in page
    assert "bravo-marketer" not in page
    assert admin.post(MEMBERS, {"username": "bravo-marketer", "role": "viewer"}).status_code == 302
    assert outsider.get("/o/acme/production/exports/").status_code == 200
    switcher = outsider.get("/o/bravo/production/exports/").content.decode()
    assert "Acme / Production" in switcher
    assert "Bravo / Production" in switcher
    # A viewer there: no Create export, whatever they are in Bravo.
    assert "Create export" not in outsider.get("/o/acme/production/exports/").content.decode()


def test_bad_additions_say_what_is_wrong(tenants):
    acme, _ = tenants
    admin = signed_in(acme.admin)
    unknown = admin.post(MEMBERS, {"username": "nobody-here", "role": "viewer"})
    assert unknown.status_code == 400
    assert "There is no account named &#x27;nobody-here&#x27;" in unknown.content.decode()
    twice = admin.post(MEMBERS, {"username": "acme-viewer", "role": "admin"})
    assert "is a member already" in twice.content.decode()
    bad_role = admin.post(MEMBERS, {"username": "bravo-admin", "role": "owner"})
    assert bad_role.status_code == 400
    assert not Membership.objects.filter(user__username="bravo-admin", organisation=acme.organisation).exists()


def test_only_admins_manage_members_and_the_last_admin_stays(tenants):
    acme, _ = tenants
    for user in (acme.marketer, acme.viewer):
        client = signed_in(user)
        assert client.get(MEMBERS).status_code == 403
        assert client.post(MEMBERS, {"username": "bravo-admin", "role": "admin"}).status_code == 403
    admin = signed_in(acme.admin)
    mine = acme.admin.memberships.get()
    demoted = admin.post(f"/o/acme/production/members/{mine.id}/role/", {"role": "viewer"}, follow=True)
    assert "keeps at least one admin" in demoted.content.decode()
    admin.post(f"/o/acme/production/members/{mine.id}/remove/")
    assert Membership.objects.filter(id=mine.id, role="admin").exists()


def test_a_removed_member_loses_pages_and_tokens_at_once(tenants):
    acme, _ = tenants
    marketer = signed_in(acme.marketer)
    assert marketer.get("/o/acme/production/exports/").status_code == 200
    token = {"HTTP_AUTHORIZATION": f"Bearer {acme.token_secret}"}
    assert Client().get("/api/v1/exports", **token).status_code == 200
    membership = acme.marketer.memberships.get()
    admin = signed_in(acme.admin)
    assert "lose access" in admin.get(f"/o/acme/production/members/{membership.id}/remove/").content.decode()
    assert admin.post(f"/o/acme/production/members/{membership.id}/remove/").status_code == 302
    assert marketer.get("/o/acme/production/exports/").status_code == 404
    assert Client().get("/api/v1/exports", **token).status_code == 401
    # Their unscoped pages say they belong nowhere, rather than showing anything.
    assert marketer.get("/exports/").status_code == 403


def test_platform_staff_entering_an_organisation_is_audited_once_per_session(tenants):
    acme, _ = tenants
    staff = get_user_model().objects.create_superuser("root", "root@example.com", "x")
    client = signed_in(staff)
    for _ in range(3):
        assert client.get("/o/acme/production/exports/").status_code == 200
    client.get("/o/acme/test/exports/")
    (entry,) = AuditEntry.objects.all()
    assert (entry.username, entry.organisation, entry.action) == ("root", acme.organisation, "entered")
    assert entry.path == "/o/acme/production/exports/"
    # A member entering their own organisation is not an event.
    signed_in(acme.admin).get("/o/acme/production/exports/")
    assert AuditEntry.objects.count() == 1
