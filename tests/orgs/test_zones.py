"""Hosted SFTP zones are per sandbox: the same person's test-sandbox login can't list or
read their production files, checked with the OpenSSH `sftp` client."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from connectors.models import Connector
from orgs.models import Membership
from tests.conftest import in_sandbox
from tests.connectors.test_hosted_sftp import sftp

pytestmark = pytest.mark.django_db(transaction=True)


def hosted_connector_and_key(client: Client, sandbox, name: str, tmp_path) -> tuple[Connector, str, object]:
    """A hosted SFTP connector made on the page of `sandbox`; its login and private key file."""
    with in_sandbox(sandbox):
        created = client.post(
            reverse("connectors-new") + "?kind=hosted_sftp",
            {"kind": "hosted_sftp", "name": name, "base_path": "exports"},
        )
        assert created.status_code == 302, created.content.decode()[:2000]
        connector = Connector.objects.get(name=name)
        assert connector.sandbox == sandbox
        key = client.get(reverse("connectors-key-download", args=[connector.id]))
    assert key.status_code == 200
    path = tmp_path / f"{sandbox.slug}.key"
    path.write_bytes(key.content)
    path.chmod(0o600)
    return connector, connector.sftp_login, path


def test_a_test_sandbox_login_cannot_list_or_read_production_files(tenants, sftpd, tmp_path):
    acme, _ = tenants
    client = Client()
    client.force_login(acme.admin)
    production, production_login, production_key = hosted_connector_and_key(
        client, acme.production, "Acme production drop", tmp_path
    )
    test, test_login, test_key = hosted_connector_and_key(client, acme.test, "Acme test drop", tmp_path)
    assert production_login != test_login
    assert production.zone() != test.zone()
    secret = production.zone() / "exports" / "customers.csv"
    secret.parent.mkdir(parents=True, exist_ok=True)
    secret.write_text("email\nceo@acme.example\n")
    port = sftpd.service.port

    # Production's key reads production's file.
    fetched = sftp(production_key, production_login, port, f"lcd {tmp_path}\nget /exports/customers.csv\n", tmp_path)
    assert fetched.returncode == 0, fetched.stderr
    (tmp_path / "customers.csv").unlink()

    # The test login sees its own empty zone, and nothing above it.
    listing = sftp(test_key, test_login, port, "ls -la /\nls -la /..\nls -la ../..\n", tmp_path)
    assert listing.returncode == 0, listing.stderr
    assert production_login not in listing.stdout
    assert "customers" not in listing.stdout
    for path in (f"../{production_login}/exports/customers.csv", "/../" + production_login + "/exports/customers.csv"):
        escaped = sftp(test_key, test_login, port, f"lcd {tmp_path}\nget {path}\n", tmp_path)
        assert escaped.returncode != 0
    assert not (tmp_path / "customers.csv").exists()
    # The test sandbox's key doesn't open the production login, though it is the same person's.
    assert sftp(test_key, production_login, port, "ls /\n", tmp_path).returncode != 0

    # Leaving the organisation locks their keys out of its zones at once.
    Membership.objects.filter(user=acme.admin).delete()
    assert sftp(production_key, production_login, port, "ls /\n", tmp_path).returncode != 0
