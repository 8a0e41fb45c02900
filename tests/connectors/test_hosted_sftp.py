"""Our own SFTP server, as its users meet it: the owner downloads the generated key, the
real OpenSSH `sftp` client logs in with it and fetches the delivered files; nobody else
gets the key, and nobody else's key sees them."""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path

import pytest
from django.urls import reverse

from connectors.models import Connector, KeyEvent
from connectors.sshkeys import fingerprint_of_public_key, host_key_fingerprint
from exports.models import Run
from tests.conftest import PASSWORD
from tests.connectors.test_delivery import export_to, run_once

# Destinations are managed by admins: in these tests of destinations, the owner (and teammate) are.
pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("destination_admins")]


def download_key(client, user, connector, tmp_path: Path) -> Path:
    client.login(username=user.username, password=PASSWORD)
    response = client.get(reverse("connectors-key-download", args=[connector.id]))
    assert response.status_code == 200
    assert response["Content-Disposition"].startswith("attachment;")
    path = tmp_path / f"{user.username}.key"
    path.write_bytes(response.content)
    path.chmod(0o600)
    return path


def sftp(key: Path, login: str, port: int, commands: str, tmp_path: Path) -> subprocess.CompletedProcess:
    batch = tmp_path / "batch.txt"
    batch.write_text(commands)
    known_hosts = tmp_path / "known_hosts"
    return subprocess.run(
        [
            "sftp",
            "-i",
            str(key),
            "-P",
            str(port),
            "-o",
            "BatchMode=yes",
            "-o",
            "IdentitiesOnly=yes",
            "-o",
            "StrictHostKeyChecking=accept-new",
            "-o",
            f"UserKnownHostsFile={known_hosts}",
            "-b",
            str(batch),
            f"{login}@127.0.0.1",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )


def create_hosted_connector(client, user, name="My SFTP") -> Connector:
    client.login(username=user.username, password=PASSWORD)
    response = client.post(
        reverse("connectors-new") + "?kind=hosted_sftp", {"kind": "hosted_sftp", "name": name, "base_path": "exports"}
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    return Connector.objects.get(name=name, owner=user)


def test_the_owner_fetches_delivered_files_with_the_real_sftp_client(
    client, users, demo_database, worker, sftpd, tmp_path
):
    owner = users["owner"]
    connector = create_hosted_connector(client, owner)
    assert connector.sftp_login == "alice"
    assert connector.key_fingerprint.startswith("SHA256:")
    page = client.get(connector.get_absolute_url()).content.decode()
    for shown in ("alice", "127.0.0.1", host_key_fingerprint(), connector.key_fingerprint, "Download private key"):
        assert shown in page
    assert "PRIVATE KEY" not in page
    export = export_to(connector, owner, demo_database.datasets.get(name="interactions"))
    run = run_once(export, owner, worker)
    assert run.status == Run.Status.SUCCEEDED, run.error_message

    key = download_key(client, owner, connector, tmp_path)
    folder = f"/exports/{export.id}/unscheduled"
    fetched = sftp(key, "alice", sftpd.service.port, f"lcd {tmp_path}\nget {folder}/*\nget /{run.tnf_path}\n", tmp_path)

    assert fetched.returncode == 0, fetched.stderr
    tnf = json.loads((tmp_path / Path(run.tnf_path).name).read_text())
    assert tnf["DataFolder"] == f"exports/{export.id}/unscheduled"
    for entry in tnf["Files"]:
        data = (tmp_path / entry["Name"]).read_bytes()
        assert len(data) == entry["Size"]
        assert hashlib.sha256(data).hexdigest() == entry["Sha256"]
    _host, key_type, key_blob = (tmp_path / "known_hosts").read_text().split()[:3]
    assert fingerprint_of_public_key(f"{key_type} {key_blob}") == host_key_fingerprint()  # the one the page shows
    events = list(connector.key_events.values_list("action", "user__username"))
    assert events == [(KeyEvent.Action.DOWNLOADED, "alice"), (KeyEvent.Action.CREATED, "alice")]


def test_nobody_but_the_owner_may_download_the_key(client, users, sftpd):
    owner = users["owner"]
    connector = create_hosted_connector(client, owner)
    for other in ("teammate", "admin", "superuser", "viewer", "staff"):
        client.login(username=users[other].username, password=PASSWORD)
        response = client.get(reverse("connectors-key-download", args=[connector.id]))
        assert response.status_code == 403, other
        assert b"PRIVATE KEY" not in response.content
        page = client.get(connector.get_absolute_url())
        assert b"Download private key" not in page.content
        assert b"PRIVATE KEY" not in page.content
        assert client.post(reverse("connectors-key-rotate", args=[connector.id])).status_code == 403
    assert not connector.key_events.filter(action=KeyEvent.Action.DOWNLOADED).exists()
    client.logout()
    assert client.get(reverse("connectors-key-download", args=[connector.id])).status_code == 302  # to log in


def test_each_user_sees_only_their_own_zone(client, users, demo_database, worker, sftpd, tmp_path):
    owner, teammate = users["owner"], users["teammate"]
    connector = create_hosted_connector(client, owner)
    theirs = create_hosted_connector(client, teammate, name="Bob's SFTP")
    export = export_to(connector, owner, demo_database.datasets.get(name="profiles"))
    run = run_once(export, owner, worker)
    assert run.status == Run.Status.SUCCEEDED
    owner_key = download_key(client, owner, connector, tmp_path)
    bob_key = download_key(client, teammate, theirs, tmp_path)

    listing = sftp(bob_key, "bob", sftpd.service.port, "ls -la /\nls -la /..\nls -la ../..\n", tmp_path)
    assert listing.returncode == 0, listing.stderr
    assert "alice" not in listing.stdout
    assert "exports" not in listing.stdout
    escaped = sftp(bob_key, "bob", sftpd.service.port, f"get ../alice/exports/{export.id}/tnfs/*\n", tmp_path)
    assert escaped.returncode != 0
    assert not list(tmp_path.glob("*.tnf"))
    linked = sftp(bob_key, "bob", sftpd.service.port, "symlink ../alice escape\n", tmp_path)
    assert linked.returncode != 0
    assert "denied" in linked.stderr.lower()
    # Bob's key does not open Alice's zone, and Alice's opens it.
    assert sftp(bob_key, "alice", sftpd.service.port, "ls /\n", tmp_path).returncode != 0
    assert sftp(owner_key, "alice", sftpd.service.port, f"ls /exports/{export.id}\n", tmp_path).returncode == 0


def test_a_rotated_key_stops_working_at_once(client, users, sftpd, tmp_path):
    owner = users["owner"]
    connector = create_hosted_connector(client, owner)
    old_key = download_key(client, owner, connector, tmp_path)
    assert sftp(old_key, "alice", sftpd.service.port, "ls /\n", tmp_path).returncode == 0

    confirm = client.get(reverse("connectors-key-rotate", args=[connector.id]))
    assert b"Rotate key" in confirm.content
    assert b"stops logging in" in confirm.content
    response = client.post(reverse("connectors-key-rotate", args=[connector.id]))
    assert response.status_code == 302

    assert sftp(old_key, "alice", sftpd.service.port, "ls /\n", tmp_path).returncode != 0
    (tmp_path / "new").mkdir()
    new_key = download_key(client, owner, connector, tmp_path / "new")
    assert sftp(new_key, "alice", sftpd.service.port, "ls /\n", tmp_path).returncode == 0
    assert [event.action for event in connector.key_events.order_by("at")] == [
        KeyEvent.Action.CREATED,
        KeyEvent.Action.DOWNLOADED,
        KeyEvent.Action.ROTATED,
        KeyEvent.Action.DOWNLOADED,
    ]
