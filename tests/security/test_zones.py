"""Hosted SFTP zones: a login is one person's for good (no collision, no reuse), only
its owner's keys open it, and a zone has a quota and a free-disk floor."""

from __future__ import annotations

import asyncio
import io
import re
import shutil
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import asyncssh
import paramiko
import pytest
from django.contrib.auth import get_user_model
from django.db import connection

from connectors.errors import DestinationError
from connectors.models import Connector, SftpLogin, login_for, zone_path
from connectors.sftpd import authorized_keys_for
from connectors.storage import open_destination, zone_usage
from exports.actions import queue_run
from exports.models import Export, Run
from orgs.models import Sandbox, default_sandbox
from tests.conftest import member

pytestmark = pytest.mark.django_db(transaction=True)
User = get_user_model()


def hosted(owner) -> Connector:
    connector = Connector(
        name=f"Zone of {owner.username}",
        kind=Connector.Kind.HOSTED_SFTP,
        owner=owner,
        options={"login": login_for(owner)},
    )
    connector.new_key_pair()
    connector.save()
    # Logins come back from one test to the next (the database is emptied, the disk is not).
    shutil.rmtree(connector.zone(), ignore_errors=True)
    return connector


@pytest.mark.parametrize("impostor_first", [True, False])
def test_a_user_named_like_another_users_fallback_login_never_shares_its_zone(impostor_first):
    unsafe = User.objects.create_user("Ünsafe Name", password="x")  # falls back to user<pk>
    impostor = User.objects.create_user(f"user{unsafe.pk}", password="x")
    order = [impostor, unsafe] if impostor_first else [unsafe, impostor]
    logins = {user.username: login_for(user) for user in order}
    assert logins[unsafe.username] != logins[impostor.username]
    assert SftpLogin.objects.filter(owner__in=order).values("login").distinct().count() == 2
    # Asked again, each keeps their own.
    assert login_for(unsafe) == logins[unsafe.username]


def test_two_concurrent_creations_get_two_logins():
    users = [User.objects.create_user(name, password="x") for name in ("Zed", "zed")]
    results, barrier = {}, threading.Barrier(2)

    def create(user):
        barrier.wait()
        try:
            results[user.username] = login_for(user)
        finally:
            connection.close()

    threads = [threading.Thread(target=create, args=(user,)) for user in users]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert len(results) == 2
    assert results["Zed"] != results["zed"]


def test_a_deleted_connectors_login_is_never_given_to_someone_else(tmp_path):
    alice = User.objects.create_user("alice", password="x")
    connector = hosted(alice)
    assert connector.sftp_login == "alice"
    connector.zone().mkdir(parents=True, exist_ok=True)
    (connector.zone() / "left-behind.csv").write_text("secret,rows\n")
    connector.delete()
    alice.delete()
    newcomer = User.objects.create_user("Alice", password="x")
    assert login_for(newcomer) != "alice"
    assert SftpLogin.objects.get(login="alice").owner is None  # reserved, listed in the admin


def test_only_the_owners_keys_open_a_zone():
    owner = User.objects.create_user("olga", password="x")
    member(owner, Sandbox.objects.get(pk=default_sandbox()).organisation, "admin")  # keys work for members only
    mine = hosted(owner)
    intruder = User.objects.create_user("ivan", password="x")
    forged = hosted(intruder)
    forged.options = {**forged.options, "login": mine.sftp_login}  # written into the database somehow
    forged.save()
    assert authorized_keys_for(mine.sftp_login) == [mine.public_key]


def files_in(connector) -> set:
    zone = connector.zone()
    return {path for path in zone.rglob("*") if path.is_file()} if zone.exists() else set()


def deliver(users, demo_database, worker) -> tuple[Run, Connector, set]:
    connector = hosted(users["owner"])
    before = files_in(connector)  # other tests' deliveries may share the folder of zones
    export = Export.objects.create(
        name="Into the zone",
        owner=users["owner"],
        dataset=demo_database.datasets.get(name="interactions"),
        connector=connector,
        compression=Export.Compression.NONE,
    )
    run = queue_run(export, user=users["owner"])
    worker()
    run.refresh_from_db()
    return run, connector, before


def test_a_delivery_over_the_zones_quota_fails_clearly_and_leaves_nothing(users, demo_database, worker, monkeypatch):
    monkeypatch.setenv("EXPORTSITE_SFTP_ZONE_QUOTA_BYTES", "20000")
    run, connector, before = deliver(users, demo_database, worker)
    assert run.status == Run.Status.FAILED
    assert run.error_code == Run.ErrorCode.DESTINATION_WRITE_FAILED
    assert re.search(
        rf"the SFTP zone {connector.sftp_login!r} is full: [\d,]+ of its 20,000 bytes are used and the next file "
        r"needs [\d,]+; delete files from it",
        run.error_message,
    ), run.error_message
    assert run.tnf_path == ""
    assert files_in(connector) == before  # no part, and no TNF


def test_a_delivery_that_would_fill_the_disk_fails_clearly(users, demo_database, worker, monkeypatch):
    monkeypatch.setenv("EXPORTSITE_SFTP_MIN_FREE_BYTES", str(10**18))
    run, connector, before = deliver(users, demo_database, worker)
    assert run.status == Run.Status.FAILED
    assert "the disk of the hosted SFTP zones is almost full" in run.error_message
    assert files_in(connector) == before


def test_two_deliveries_into_one_zone_at_once_never_pass_its_quota_together(users, settings, tmp_path):
    settings.SFTP_ZONE_QUOTA_BYTES = 100_000
    settings.SFTP_MIN_FREE_BYTES = 0
    connector = hosted(users["owner"])
    part = tmp_path / "part.bin"
    part.write_bytes(b"x" * 20_000)
    outcomes: dict[str, str] = {}
    start = threading.Barrier(2)

    def deliver_three(name: str) -> None:
        with open_destination(connector) as destination:
            start.wait()
            try:
                for index in range(3):
                    destination.call("uploading", destination.upload, str(part), f"{name}/{index}.bin")
                outcomes[name] = "delivered"
            except DestinationError as exc:
                outcomes[name] = exc.message

    threads = [threading.Thread(target=deliver_three, args=(name,)) for name in ("a", "b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # Each alone fits (60,000 bytes); together (120,000) they don't: one is refused.
    assert sorted(outcome == "delivered" for outcome in outcomes.values()) == [False, True], outcomes
    assert any("is full" in outcome for outcome in outcomes.values())
    assert zone_usage(connector.zone()) <= 100_000


# The hosted SFTP server's own limits, on a server started with small ones -------------

QUOTA = 64 * 1024


@pytest.fixture
def strict_sftpd(monkeypatch, request):
    """sftpd with a 64 KiB zone quota, 3 wrong keys per address and 2 connections per login."""
    monkeypatch.setenv("EXPORTSITE_SFTP_ZONE_QUOTA_BYTES", str(QUOTA))
    monkeypatch.setenv("EXPORTSITE_SFTP_MIN_FREE_BYTES", "0")
    monkeypatch.setenv("EXPORTSITE_SFTPD_AUTH_FAILURE_LIMIT", "3")
    monkeypatch.setenv("EXPORTSITE_SFTPD_MAX_SESSIONS_PER_LOGIN", "2")
    return request.getfixturevalue("sftpd")


def sftp_session(port: int, login: str, private_key: str):
    transport = paramiko.Transport(("127.0.0.1", port))
    try:
        transport.connect(username=login, pkey=paramiko.Ed25519Key.from_private_key(io.StringIO(private_key)))
    except BaseException:
        transport.close()
        time.sleep(0.2)  # the server sees the connection end
        raise
    return transport, paramiko.SFTPClient.from_transport(transport)


def list_zone(port: int, login: str, private_key: str) -> list[str]:
    transport, sftp = sftp_session(port, login, private_key)
    with transport:
        return sftp.listdir("/")


def in_a_thread(coroutine):
    """Run an asyncssh client to its end: in a thread of its own, as the browser tests
    keep an event loop running in this one."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


def upload(sftp, path: str, chunks: list[bytes], mode: str = "wb") -> None:
    with sftp.open(path, mode) as fh:
        fh.set_pipelined(False)
        for chunk in chunks:
            fh.write(chunk)


def test_an_upload_over_the_zones_quota_fails_and_the_zone_stays_within_it(users, strict_sftpd):
    connector = hosted(users["owner"])
    transport, sftp = sftp_session(strict_sftpd.service.port, connector.sftp_login, connector.secret("private_key"))
    with transport:
        with sftp.open("/first.bin", "wb") as fh:
            fh.write(b"a" * (QUOTA // 2))
        with pytest.raises(OSError, match="this zone is full"):
            upload(sftp, "/second.bin", [b"b" * (QUOTA // 4)] * 4)
        assert sftp.stat("/first.bin").st_size == QUOTA // 2
        # What stayed of the refused upload keeps the zone within its quota.
        assert sum(entry.st_size for entry in sftp.listdir_attr("/")) <= QUOTA
        # Deleting makes room again.
        sftp.remove("/first.bin")
        with sftp.open("/third.bin", "wb") as fh:
            fh.write(b"c" * (QUOTA // 2))


def test_appends_truncates_and_parallel_sessions_are_held_to_the_same_quota(users, strict_sftpd):
    connector = hosted(users["owner"])
    port, login, key = strict_sftpd.service.port, connector.sftp_login, connector.secret("private_key")
    first, sftp = sftp_session(port, login, key)
    second, other = sftp_session(port, login, key)
    with first, second:
        upload(sftp, "/a.bin", [b"a" * (QUOTA // 2)])
        # Appends at offset 0 still add bytes.
        with pytest.raises(OSError, match="this zone is full"):
            upload(sftp, "/a.bin", [b"b" * QUOTA], mode="ab")
        # A file can't be stretched by setting its size, to be filled in later.
        with pytest.raises(PermissionError):
            sftp.truncate("/a.bin", 100 * QUOTA)
        # Another session shares the count.
        with pytest.raises(OSError, match="this zone is full"):
            upload(other, "/b.bin", [b"c" * (QUOTA // 4)] * 3)
        assert sum(entry.st_size for entry in sftp.listdir_attr("/")) <= QUOTA
        # Overwriting a file frees what it held.
        upload(other, "/a.bin", [b"d" * (QUOTA // 2)] * 1)
    time.sleep(0.3)  # the server sees both sessions end
    # A client that sends its appends at offset 0 (asyncssh's does) too.
    private_key = asyncssh.import_private_key(key)

    async def append_at_zero() -> None:
        async with (
            asyncssh.connect(
                "127.0.0.1", port, username=login, client_keys=[private_key], known_hosts=None, agent_path=None
            ) as conn,
            conn.start_sftp_client() as client,
        ):
            async with client.open("/a.bin", "ab") as fh:
                for _ in range(4):
                    await fh.write(b"e" * (QUOTA // 4))

    with pytest.raises(asyncssh.SFTPError, match="this zone is full"):
        in_a_thread(append_at_zero())


def test_an_agent_that_offers_a_few_keys_before_the_right_one_is_not_locked_out(users, strict_sftpd):
    connector = hosted(users["owner"])
    others = [hosted(users[name]).secret("private_key") for name in ("teammate", "admin", "viewer")]
    port = strict_sftpd.service.port
    keys = [asyncssh.import_private_key(text) for text in (*others, connector.secret("private_key"))]

    async def log_in_offering_every_key() -> list[str]:
        async with (
            asyncssh.connect(
                "127.0.0.1", port, username=connector.sftp_login, client_keys=keys, known_hosts=None, agent_path=None
            ) as conn,
            conn.start_sftp_client() as sftp,
        ):
            return await sftp.listdir("/")

    for _ in range(4):  # more connections than failed logins allowed
        assert in_a_thread(log_in_offering_every_key()) is not None
    assert "failed login" not in strict_sftpd.service.output()


def test_an_address_that_offers_wrong_keys_is_turned_away_even_with_the_right_one(users, strict_sftpd):
    connector = hosted(users["owner"])
    someone_elses = hosted(users["teammate"]).secret("private_key")
    port = strict_sftpd.service.port
    assert list_zone(port, connector.sftp_login, connector.secret("private_key")) is not None
    for _ in range(3):
        with pytest.raises(paramiko.AuthenticationException):
            list_zone(port, connector.sftp_login, someone_elses)
    with pytest.raises((paramiko.SSHException, EOFError, ConnectionError)):
        list_zone(port, connector.sftp_login, connector.secret("private_key"))
    assert "is turned away after too many failed logins" in strict_sftpd.service.output()


def test_a_login_has_at_most_its_number_of_connections(users, strict_sftpd):
    connector = hosted(users["owner"])
    port, login, key = strict_sftpd.service.port, connector.sftp_login, connector.secret("private_key")
    open_sessions = [sftp_session(port, login, key) for _ in range(2)]
    try:
        with pytest.raises((paramiko.SSHException, EOFError, ConnectionError)):
            list_zone(port, login, key)
        assert "connections already" in strict_sftpd.service.output()
    finally:
        for transport, _ in open_sessions:
            transport.close()
    time.sleep(0.5)  # the server sees the sessions end
    assert list_zone(port, login, key) is not None


def test_an_admin_empties_a_zone_no_connector_uses_any_more_after_confirming(client, users):
    kept, orphan = hosted(users["owner"]), hosted(users["teammate"])
    for connector in (kept, orphan):
        connector.zone().mkdir(parents=True, exist_ok=True)
        (connector.zone() / "left.csv").write_bytes(b"id\n1\n")
    orphan_login = orphan.sftp_login
    orphan.delete()
    client.force_login(users["superuser"])
    url = "/admin/connectors/sftplogin/"
    listing = client.get(url).content.decode()
    assert "5 bytes" in listing
    selected = {"action": "empty_zones", "_selected_action": [row.pk for row in SftpLogin.objects.all()]}
    asked = client.post(url, selected)
    assert asked.status_code == 200
    assert "Empty hosted SFTP zones?" in asked.content.decode()
    assert (zone_path(orphan_login) / "left.csv").exists()  # nothing gone before confirming
    done = client.post(url, {**selected, "confirm": "yes"}, follow=True)
    assert "Emptied 1 zone(s)" in done.content.decode()
    assert not zone_path(orphan_login).exists()
    assert (kept.zone() / "left.csv").exists()
    assert SftpLogin.objects.filter(login=orphan_login).exists()  # still reserved
