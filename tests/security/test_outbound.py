"""The outbound address policy (exportsite/outbound.py): a connector aimed at our own
network is refused before any packet leaves, in Test connection and in a run, for every
store kind; names are checked each time an SDK resolves them."""

from __future__ import annotations

import http.server
import json
import re
import socket
import threading

import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from django.test import override_settings
from django.urls import reverse

from connectors.errors import DestinationError, Problem
from connectors.models import Connector
from connectors.probe import probe
from connectors.storage import open_destination, police_requests
from exports import webhook
from exports.actions import queue_run
from exports.models import Export, Run
from exportsite import outbound

pytestmark = pytest.mark.django_db(transaction=True)

MARKER = "canary-7f3a9c-internal-answer"


class Canary:
    """A TCP server on loopback that counts connections and answers HTTP 200 with a marker."""

    def __init__(self):
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.connections = 0
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self):
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            self.connections += 1
            with conn:
                conn.settimeout(2)
                try:
                    conn.recv(65536)
                    body = f'{{"error": "{MARKER}"}}'.encode()
                    conn.sendall(
                        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                        + f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
                        + body
                    )
                except OSError:
                    pass

    def close(self):
        self.server.close()


@pytest.fixture
def canary():
    server = Canary()
    yield server
    server.close()


@pytest.fixture
def closed_network(settings, monkeypatch):
    """Production's policy: no network opened, loopback included; workers inherit it."""
    settings.EXPORTSITE_ALLOWED_NETWORKS = ""
    monkeypatch.setenv("EXPORTSITE_ALLOWED_NETWORKS", "")


def service_account_key(token_uri: str) -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    return json.dumps(
        {
            "type": "service_account",
            "project_id": "p",
            "private_key_id": "k",
            "private_key": pem,
            "client_email": "exporter@p.iam.gserviceaccount.com",
            "token_uri": token_uri,
        }
    )


def connector_to(owner, kind: str, target: str, port: int) -> Connector:
    """A connector of `kind` aimed at `target` (an IP literal, [v6] or a name) and `port`."""
    url = f"http://{target}:{port}"
    if kind == "s3":
        connector = Connector(
            kind=Connector.Kind.S3, options={"bucket": "b", "access_key_id": "k", "endpoint_url": url}
        )
        connector.set_secrets({"secret_access_key": "s"})
    elif kind == "gcs-endpoint":
        connector = Connector(kind=Connector.Kind.GCS, options={"bucket": "b", "endpoint_url": url})
    elif kind == "gcs-token-uri":
        connector = Connector(kind=Connector.Kind.GCS, options={"bucket": "b"})
        connector.set_secrets({"service_account_json": service_account_key(f"{url}/token")})
    elif kind == "azure":
        connector = Connector(
            kind=Connector.Kind.AZURE_BLOB,
            options={"container": "c", "auth": "connection_string"},
        )
        connector.set_secrets(
            {"connection_string": f"DefaultEndpointsProtocol=http;AccountName=a;AccountKey=a2V5;BlobEndpoint={url}/a;"}
        )
    else:
        connector = Connector(
            kind=Connector.Kind.SFTP, options={"host": target.strip("[]"), "port": port, "username": "u"}
        )
        connector.set_secrets({"password": "p"})
    connector.name = f"{kind} to {target}"
    connector.owner = owner
    connector.save()
    return connector


KINDS = ["s3", "gcs-endpoint", "gcs-token-uri", "azure", "sftp"]
TARGETS = ["127.0.0.1", "169.254.169.254", "10.0.0.1", "[::1]", "localhost"]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("target", TARGETS)
def test_test_connection_to_our_network_is_refused_before_any_packet(users, canary, closed_network, kind, target):
    connector = connector_to(users["owner"], kind, target, canary.port)
    report = probe(connector)
    failed = report.failure
    assert failed is not None
    assert (failed.name, failed.problem) == ("connect", "Address not allowed"), failed.detail
    assert failed.detail.startswith("the address is not allowed: ")
    assert MARKER not in failed.detail
    assert canary.connections == 0


@pytest.mark.parametrize("kind", KINDS)
def test_a_run_to_our_network_fails_clearly_and_sends_nothing(
    users, demo_database, canary, closed_network, worker, kind
):
    connector = connector_to(users["owner"], kind, "localhost", canary.port)
    export = Export.objects.create(
        name="Leak", owner=users["owner"], dataset=demo_database.datasets.get(name="profiles"), connector=connector
    )
    run = queue_run(export, user=users["owner"])
    worker()
    run.refresh_from_db()
    assert run.status == Run.Status.FAILED
    assert run.error_code == Run.ErrorCode.DESTINATION_NOT_ALLOWED
    assert "the address is not allowed: localhost (127.0.0.1) is loopback" in run.error_message
    assert canary.connections == 0


def test_with_loopback_allowed_the_canary_is_reached_and_its_answer_is_not_shown(users, canary):
    # The control: the same connector does reach the canary when loopback is open.
    connector = connector_to(users["owner"], "s3", "127.0.0.1", canary.port)
    report = probe(connector)
    assert canary.connections > 0
    assert not report.ok
    assert MARKER not in report.failure.detail


def test_link_local_stays_closed_whatever_is_allowed(settings):
    settings.EXPORTSITE_ALLOWED_NETWORKS = "0.0.0.0/0,::/0"
    with pytest.raises(outbound.AddressNotAllowed, match=r"169\.254\.169\.254 is link-local"):
        outbound.check_host("169.254.169.254")
    outbound.check_host("10.0.0.1")  # opened


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("http://example.com", "must be an https:// URL"),
        ("https://example.com/latest/meta-data", "must be a bare address"),
        ("https://user:pw@example.com", "must not carry a user name or password"),
        ("ftp://example.com", "must be an https:// URL"),
    ],
)
def test_endpoints_outside_allowed_networks_are_bare_https(settings, monkeypatch, url, problem):
    settings.EXPORTSITE_ALLOWED_NETWORKS = ""
    monkeypatch.setattr(outbound, "_real_getaddrinfo", _resolves_to("93.184.215.14"))
    with pytest.raises(outbound.AddressNotAllowed, match=problem):
        outbound.check_url(url)
    assert outbound.check_url("https://example.com:9000") == "example.com"


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("64:ff9b::7f00:1", "loopback (it carries the IPv4 address 127.0.0.1)"),  # NAT64
        ("64:ff9b::a9fe:a9fe", "link-local (it carries the IPv4 address 169.254.169.254)"),
        ("2002:a00:1::1", "private (it carries the IPv4 address 10.0.0.1)"),  # 6to4
        ("::ffff:10.0.0.1", "private"),  # IPv4-mapped
        ("64:ff9b::5db8:d70e", None),  # NAT64 of a public address: reachable
        ("2002:5db8:d70e::1", None),
    ],
)
def test_ipv6_addresses_that_carry_an_ipv4_one_are_judged_by_it(settings, address, reason):
    settings.EXPORTSITE_ALLOWED_NETWORKS = ""
    if reason is None:
        outbound.check_address(address)
    else:
        with pytest.raises(outbound.AddressNotAllowed, match=re.escape(reason)):
            outbound.check_address(address)


def test_opening_the_nat64_range_never_opens_the_metadata_address(settings):
    settings.EXPORTSITE_ALLOWED_NETWORKS = "64:ff9b::/96"
    outbound.check_address("64:ff9b::a00:1")  # 10.0.0.1 through NAT64: opened
    with pytest.raises(outbound.AddressNotAllowed, match="link-local"):
        outbound.check_address("64:ff9b::a9fe:a9fe")


def _resolves_to(*addresses):
    answers = list(addresses)

    def fake(host, port, *args, **kwargs):
        address = answers.pop(0) if len(answers) > 1 else answers[0]
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port or 0))]

    return fake


def test_a_name_that_rebinds_to_our_network_is_refused_when_the_sdk_resolves_it(settings, monkeypatch):
    settings.EXPORTSITE_ALLOWED_NETWORKS = ""
    monkeypatch.setattr(outbound, "_real_getaddrinfo", _resolves_to("93.184.215.14", "127.0.0.1"))
    with outbound.guard(["rebind.example"]):  # checked now: public
        with pytest.raises(outbound.AddressNotAllowed, match=r"rebind\.example \(127\.0\.0\.1\) is loopback"):
            socket.getaddrinfo("rebind.example", 443)  # what an SDK does next: now internal
    # Outside a guard, other names resolve as usual.
    assert socket.getaddrinfo("localhost", 80)


def test_the_connector_form_refuses_an_internal_endpoint(client, users, closed_network):
    client.force_login(users["admin"])
    response = client.post(
        reverse("connectors-new"),
        {
            "kind": "s3",
            "name": "Metadata",
            "bucket": "bucket-one",
            "access_key_id": "k",
            "secret_access_key": "s",
            "endpoint_url": "http://169.254.169.254/latest",
        },
    )
    assert response.status_code == 200
    assert "The address is not allowed: 169.254.169.254 is link-local." in response.content.decode()
    assert not Connector.objects.filter(name="Metadata").exists()


@pytest.mark.parametrize(
    "connection",
    [
        "AccountName=a;AccountKey=a2V5;blobendpoint=http://10.0.0.5/a",  # keys in any case
        "BlobEndpoint=https://example.com;BlobEndpoint=http://10.0.0.5/a;AccountName=a;AccountKey=a2V5",  # last wins
        "UseDevelopmentStorage=true;AccountName=a",  # the SDK goes to 127.0.0.1:10000
    ],
)
def test_an_azure_connection_string_is_read_as_the_sdk_reads_it(users, closed_network, connection):
    connector = Connector(kind=Connector.Kind.AZURE_BLOB, name="Blob", owner=users["owner"], options={"container": "c"})
    connector.set_secrets({"connection_string": connection})
    connector.save()
    failed = probe(connector).failure
    assert failed.problem == "Address not allowed", failed.detail


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("https://10.0.0.5\\x.example.com", "is not a valid URL"),
        ("https://exa mple.com", "is not a valid URL"),
    ],
)
def test_urls_an_http_library_would_read_differently_are_refused(closed_network, url, problem):
    with pytest.raises(outbound.AddressNotAllowed, match=problem):
        outbound.check_url(url)


def test_host_names_are_compared_as_resolvers_see_them():
    assert outbound.canonical("Bücher.Example.") == "xn--bcher-kva.example"
    assert outbound.canonical("[::1]") == "::1"
    assert outbound.canonical("::ffff:127.0.0.1") == "127.0.0.1"
    with pytest.raises(outbound.AddressNotAllowed, match="is not a host name"):
        outbound.canonical("evil.com@10.0.0.5")


def test_a_name_that_stops_resolving_between_the_check_and_the_connection_is_unreachable(users, monkeypatch):
    connector = connector_to(users["owner"], "sftp", "files.example", 22)
    answers = iter([[(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.215.14", 22))]])

    def flaky(host, port, *args, **kwargs):
        try:
            return next(answers)
        except StopIteration:
            raise socket.gaierror(socket.EAI_NONAME, "gone") from None

    monkeypatch.setattr(outbound, "_real_getaddrinfo", flaky)
    failed = probe(connector).failure
    assert (failed.problem, failed.detail) == ("Unreachable host", "the host name files.example can't be resolved")


class _HandsBackMetadata(http.server.BaseHTTPRequestHandler):
    """A store that starts every resumable upload and says to send the bytes to the cloud
    metadata address."""

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(200)
        self.send_header("Location", "http://169.254.169.254/upload?upload_id=1")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


def test_a_url_a_store_hands_back_is_checked_before_any_packet(users, canary, tmp_path):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _HandsBackMetadata)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        connector = Connector.objects.create(
            name="GCS that redirects uploads",
            kind=Connector.Kind.GCS,
            owner=users["owner"],
            options={"bucket": "b", "endpoint_url": f"http://127.0.0.1:{server.server_address[1]}"},
        )
        part = tmp_path / "part.csv"
        part.write_bytes(b"id\n1\n")
        with open_destination(connector) as destination, pytest.raises(DestinationError) as refused:
            destination.call("uploading", destination.upload, str(part), "part.csv")
        assert refused.value.problem == Problem.NOT_ALLOWED
        assert "169.254.169.254 is link-local" in refused.value.message
    finally:
        server.shutdown()
    # And any session so policed, to any URL: the canary on a closed loopback hears nothing.
    session = requests.Session()
    police_requests(session)
    with override_settings(EXPORTSITE_ALLOWED_NETWORKS=""), pytest.raises(outbound.AddressNotAllowed):
        session.get(f"http://127.0.0.1:{canary.port}/")
    assert canary.connections == 0


def test_a_source_database_is_reached_at_the_address_the_policy_checked(pg_source_url, closed_network, monkeypatch):
    from exports.sources import SourceUnavailable, _pg_pinned  # noqa: PLC0415

    with pytest.raises(SourceUnavailable, match=r"127\.0\.0\.1 is loopback.*EXPORTSITE_ALLOWED_NETWORKS"):
        _pg_pinned(pg_source_url)
    for url in (
        "postgresql://u@169.254.169.254/db",
        "postgresql://u@h/db?hostaddr=10.0.0.1",
        "postgresql:///db?hostaddr=10.0.0.12",  # a hostaddr means TCP, whatever the host says
        "postgresql://u@/db?host=/tmp&hostaddr=10.0.0.12",
    ):
        with pytest.raises(SourceUnavailable, match="is not allowed"):
            _pg_pinned(url)
    with pytest.raises(SourceUnavailable, match="several hosts"):
        _pg_pinned("postgresql://u@a.example:5432,b.example:5432/db")
    # A name is resolved once, checked, and libpq told the address: a rebind can't swap it.
    monkeypatch.setattr(outbound, "_real_getaddrinfo", _resolves_to("93.184.215.14", "127.0.0.1"))
    pinned = _pg_pinned("postgresql://u:pw@db.example.com:6432/crm?sslmode=verify-full")
    assert pinned == "postgresql://u:pw@db.example.com:6432/crm?sslmode=verify-full&hostaddr=93.184.215.14"
    # The rest of the URL stays as it was written; a comma in a password is no second host.
    monkeypatch.setattr(outbound, "_real_getaddrinfo", _resolves_to("93.184.215.14"))
    pinned = _pg_pinned("postgresql://u:a+b,c@db.example.com/crm?password=x+y")
    assert pinned == "postgresql://u:a+b,c@db.example.com/crm?password=x+y&hostaddr=93.184.215.14"
    with pytest.raises(SourceUnavailable, match="hostaddr 'nope' is not an IP address"):
        _pg_pinned("postgresql://u@db.example.com/crm?hostaddr=nope")
    # A Unix socket is this machine, not the network.
    assert _pg_pinned("postgresql:///crm?host=/var/run/postgresql") == "postgresql:///crm?host=/var/run/postgresql"


def test_a_run_from_a_source_in_a_closed_network_fails_before_any_packet(users, closed_network, canary, worker):
    from exports.models import Database  # noqa: PLC0415

    source = Database.objects.create(name="Internal", url=f"postgresql://postgres@127.0.0.1:{canary.port}/test")
    dataset = source.datasets.create(name="t", columns=[{"name": "id", "type": "integer"}])
    export = Export.objects.create(owner=users["owner"], dataset=dataset, name="From inside")
    run = queue_run(export, user=users["owner"])
    worker()
    run.refresh_from_db()
    assert run.error_code == Run.ErrorCode.SOURCE_UNAVAILABLE
    assert "127.0.0.1 is loopback" in run.error_message
    assert canary.connections == 0


def test_a_hook_whose_name_rebinds_to_our_network_is_refused_at_the_call(monkeypatch, closed_network, canary):
    """A hook URL that passed the policy when it was saved (a public address), called
    when its name resolves to our network: refused, and no packet reaches the canary."""
    monkeypatch.setattr(outbound, "_real_getaddrinfo", _resolves_to("93.184.215.14", "127.0.0.1"))
    answer = webhook.post(f"https://rebind.example:{canary.port}/hooks", "{}", {})
    assert answer.status_code is None
    assert "rebind.example (127.0.0.1) is loopback" in answer.error
    assert canary.connections == 0
