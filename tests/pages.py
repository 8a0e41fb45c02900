"""Reading what a page said: about a refused action, or a connection test."""

from __future__ import annotations

from django.contrib.messages import get_messages
from django.urls import reverse

from connectors.models import ConnectionTest


def refusal_of(response) -> str:
    """The code of the refusal a page answered with (its message is tagged with it), or ""
    when the action went through. A refusal is never an error page: a redirect with a message."""
    codes = [message.extra_tags for message in get_messages(response.wsgi_request) if message.extra_tags]
    if codes:
        assert response.status_code == 302, response.status_code
    return codes[-1] if codes else ""


def press_test_connection(client, connector, worker, *, htmx: bool = True):
    """Press Test connection, let a worker run it, and return the result page (the htmx
    fragment, or without htmx the page the button led to) once the test is done."""
    headers = {"HTTP_HX_REQUEST": "true"} if htmx else {}
    before = set(ConnectionTest.objects.filter(connector=connector).values_list("id", flat=True))
    pressed = client.post(reverse("connectors-test", args=[connector.id]), **headers)
    assert pressed.status_code == (200 if htmx else 302), pressed.content.decode()[:2000]
    (test,) = ConnectionTest.objects.filter(connector=connector).exclude(id__in=before)
    if not htmx:
        assert pressed["Location"] == test.get_absolute_url()
    worker()
    page = client.get(test.get_absolute_url(), **headers)
    assert page.status_code == 200
    assert "testing" not in page.content.decode(), "the test is still running"
    return page
