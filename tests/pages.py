"""Reading what a page said about a refused action."""

from __future__ import annotations

from django.contrib.messages import get_messages


def refusal_of(response) -> str:
    """The code of the refusal a page answered with (its message is tagged with it), or ""
    when the action went through. A refusal is never an error page: a redirect with a message."""
    codes = [message.extra_tags for message in get_messages(response.wsgi_request) if message.extra_tags]
    if codes:
        assert response.status_code == 302, response.status_code
    return codes[-1] if codes else ""
