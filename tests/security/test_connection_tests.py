"""Test connection runs on a worker, within its deadline: a store that never answers
holds no web thread, the site stays responsive while ten such tests run, and each user
may start a limited number of tests a minute."""

from __future__ import annotations

import socket
import threading
import time
from datetime import timedelta

import pytest
import requests
from django.urls import reverse

from connectors import probe
from connectors.models import ConnectionTest
from orgs.models import Organisation
from tests.conftest import PASSWORD, member
from tests.security.test_outbound import KINDS, connector_to

pytestmark = pytest.mark.django_db(transaction=True)

DEADLINE = 4


class Tarpit:
    """A TCP server on loopback that accepts every connection and never says a word."""

    def __init__(self):
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.held: list[socket.socket] = []
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self):
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            self.held.append(conn)

    def close(self):
        self.server.close()
        for conn in self.held:
            conn.close()


@pytest.fixture
def tarpit():
    server = Tarpit()
    yield server
    server.close()


@pytest.fixture
def quick_deadline(settings, monkeypatch):
    """A short deadline, here and in the workers started after this fixture."""
    settings.CONNECTION_TEST_SECONDS = DEADLINE
    monkeypatch.setenv("CONNECTION_TEST_SECONDS", str(DEADLINE))


def browser_session(client, live_server, user) -> requests.Session:
    """A plain HTTP client logged in as `user` on the live server, sending htmx's headers."""
    client.login(username=user.username, password=PASSWORD)
    session = requests.Session()
    session.cookies.set("sessionid", client.cookies["sessionid"].value)
    session.get(f"{live_server.url}{reverse('connectors-list')}", timeout=10)
    session.headers.update({"HX-Request": "true", "X-CSRFToken": session.cookies["csrftoken"]})
    return session


def test_ten_stalled_tests_hold_no_web_thread_and_each_ends_by_its_deadline(
    quick_deadline, live_worker, live_server, client, users, tarpit
):
    owner = users["admin"]  # admins manage and test destinations
    connectors = [connector_to(owner, KINDS[i % len(KINDS)], "127.0.0.1", tarpit.port) for i in range(10)]
    session = browser_session(client, live_server, owner)

    for connector in connectors:
        started = time.monotonic()
        pressed = session.post(f"{live_server.url}{reverse('connectors-test', args=[connector.id])}", timeout=10)
        assert pressed.status_code == 200
        assert "testing" in pressed.text or "queued" in pressed.text
        assert time.monotonic() - started < 2, "pressing Test connection waited on the store"
    assert ConnectionTest.objects.count() == 10

    # While the tests wait on the tarpit, every page answers at once.
    for _ in range(3):
        started = time.monotonic()
        assert session.get(f"{live_server.url}{reverse('connectors-list')}", timeout=10).status_code == 200
        assert session.get(f"{live_server.url}{reverse('exports-list')}", timeout=10).status_code == 200
        assert time.monotonic() - started < 2
    assert ConnectionTest.objects.exclude(state=ConnectionTest.State.DONE).exists()

    tests = list(ConnectionTest.objects.all())
    give_up = time.monotonic() + DEADLINE + 30
    while time.monotonic() < give_up:
        pages = [session.get(f"{live_server.url}{test.get_absolute_url()}", timeout=10) for test in tests]
        if all("testing" not in page.text and "queued" not in page.text for page in pages):
            break
        time.sleep(0.5)
    for test, page in zip(tests, pages, strict=True):
        test.refresh_from_db()
        assert test.state == ConnectionTest.State.DONE
        assert test.ok is False
        # Each answer came by the deadline (a second's slack for the worker's bookkeeping).
        assert test.finished_at - test.created_at < timedelta(seconds=DEADLINE + 1.5), test.steps
        assert "failed" in page.text
    messages = [step["detail"] for test in tests for step in test.steps if not step["ok"]]
    # One test waited on the tarpit until its deadline; the others could no longer start
    # in time behind it on the one worker, and say so instead of starting late.
    assert f"the store gave no answer within {DEADLINE} s" in messages
    assert all(
        "no answer" in message or "no worker was free" in message or "as an SSH server" in message
        for message in messages
    ), messages
    assert tarpit.held, "no test reached the tarpit"


def test_the_number_of_tests_a_minute_is_limited_per_user(client, users, settings, tarpit):
    settings.CONNECTION_TESTS_PER_MINUTE = 3
    # Two admins (admins manage and test destinations), each with their own count.
    owner, admin = users["admin"], member(users["teammate"], Organisation.objects.get(slug="default"), "admin")
    connectors = [connector_to(owner, "s3", f"127.0.0.{n}", tarpit.port) for n in (1, 2, 3)]
    client.login(username=owner.username, password=PASSWORD)
    for connector in connectors:
        assert client.post(reverse("connectors-test", args=[connector.id])).status_code == 302
    # Pressing again while a test runs gives that test, and counts nothing.
    again = client.post(reverse("connectors-test", args=[connectors[0].id]))
    assert again["Location"] == ConnectionTest.objects.get(connector=connectors[0]).get_absolute_url()
    connector = connector_to(owner, "s3", "127.0.0.4", tarpit.port)
    url = reverse("connectors-test", args=[connector.id])
    refused = client.post(url)
    assert refused.status_code == 429
    assert "you started 3 connection tests in the last minute: try again in" in refused.content.decode()
    in_page = client.post(url, HTTP_HX_REQUEST="true")
    assert "try again in" in in_page.content.decode()
    assert ConnectionTest.objects.count() == 3
    # Deleting the connectors forgets no test.
    for tested in connectors:
        tested.delete()
    assert client.post(url).status_code == 429
    # Another user's tests are theirs to count.
    client.login(username=admin.username, password=PASSWORD)
    assert client.post(url).status_code == 302
    # A minute later the owner may test again.
    ConnectionTest.objects.filter(user=owner).update(
        created_at=ConnectionTest.objects.get(user=admin).created_at - timedelta(minutes=2)
    )
    client.login(username=owner.username, password=PASSWORD)
    assert client.post(url).status_code == 302


def test_a_test_no_worker_takes_ends_with_a_message_instead_of_polling_forever(
    client, users, settings, monkeypatch, tarpit
):
    settings.CONNECTION_TEST_SECONDS = 1
    monkeypatch.setattr(probe, "OVERDUE_AFTER", timedelta(0))
    owner = users["admin"]
    connector = connector_to(owner, "s3", "127.0.0.1", tarpit.port)
    client.login(username=owner.username, password=PASSWORD)
    result = client.post(reverse("connectors-test", args=[connector.id]), follow=True)
    assert "a worker is testing the connection" in result.content.decode().lower()
    test = ConnectionTest.objects.get()
    time.sleep(1.2)
    page = client.get(test.get_absolute_url()).content.decode()
    assert "no worker finished the test in time" in page
    test.refresh_from_db()
    assert test.state == ConnectionTest.State.DONE
    connector.refresh_from_db()
    assert connector.last_test_ok is False
    # The job, were it to run now, leaves the answer as it is.
    assert probe.run_connection_test(str(test.id)) == "skipped"
