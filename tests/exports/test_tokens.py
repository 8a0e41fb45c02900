"""API tokens on the profile page: created with the secret shown once, listed by their
hint, revoked after a confirmation, and only by their owner."""

from __future__ import annotations

import pytest
from django.forms.models import model_to_dict
from django.urls import reverse

from exports.models import ApiToken
from orgs.scope import site_reverse
from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db


def login(client, user):
    assert client.login(username=user.username, password=PASSWORD)
    return client


def call_api(client, secret):
    return client.get("/api/v1/exports", HTTP_AUTHORIZATION=f"Bearer {secret}")


def test_it_shows_a_new_tokens_secret_once_and_stores_only_its_sha256(client, users):
    login(client, users["owner"])
    response = client.post(reverse("tokens-create"), {"name": "nightly BI sync"})
    assert response.status_code == 200
    token = ApiToken.objects.get(user=users["owner"])
    secret = response.context["new_secret"]
    assert secret.startswith(ApiToken.PREFIX)
    assert 'id="new-token"' in response.content.decode()
    assert f'value="{secret}"' in response.content.decode()
    assert "no-store" in response["Cache-Control"]  # no cache keeps the page with the secret

    assert token.name == "nightly BI sync"
    assert token.digest == ApiToken.digest_of(secret)
    assert secret[len(ApiToken.PREFIX) :].startswith(token.hint)
    row = model_to_dict(ApiToken.objects.get(id=token.id))
    assert not any(secret in str(value) or secret[len(ApiToken.PREFIX) :] in str(value) for value in row.values())


def test_it_does_not_show_the_secret_again_on_reload(client, users):
    login(client, users["owner"])
    secret = client.post(reverse("tokens-create"), {"name": "nightly BI sync"}).context["new_secret"]
    response = client.get(reverse("profile"))
    body = response.content.decode()
    assert "nightly BI sync" in body
    assert secret not in body
    assert 'id="new-token"' not in body


def test_it_refuses_a_token_without_a_name(client, users):
    login(client, users["owner"])
    response = client.post(reverse("tokens-create"), {"name": "   "})
    assert response.status_code == 200
    assert "Give the token a name" in response.content.decode()
    assert 'id="new-token"' not in response.content.decode()
    assert not ApiToken.objects.exists()


def test_the_token_list_shows_the_hint_but_not_the_secret(client, users):
    token, secret = ApiToken.issue(users["owner"], "warehouse")
    login(client, users["owner"])
    body = client.get(reverse("profile")).content.decode()
    assert "warehouse" in body
    assert f"{token.hint}…" in body
    assert secret not in body
    assert reverse("tokens-revoke", args=[token.id]) in body


def test_the_token_list_shows_only_the_users_own_tokens(client, users):
    ApiToken.issue(users["teammate"], "bobs token")
    login(client, users["owner"])
    body = client.get(reverse("profile")).content.decode()
    assert "bobs token" not in body
    assert "No tokens yet." in body


def test_it_asks_before_revoking_then_the_api_refuses_the_token(client, users):
    token, secret = ApiToken.issue(users["owner"], "warehouse")
    assert call_api(client, secret).status_code == 200
    login(client, users["owner"])
    url = reverse("tokens-revoke", args=[token.id])

    response = client.get(url)
    assert response.status_code == 200
    assert "Revoke the token" in response.content.decode()
    token.refresh_from_db()
    assert not token.is_revoked

    response = client.post(url)
    assert response.status_code == 302
    assert response.url == reverse("profile")
    token.refresh_from_db()
    assert token.is_revoked

    client.logout()
    response = call_api(client, secret)
    assert response.status_code == 401
    assert response.json()["Code"] == "INVALID_TOKEN"


def test_the_profile_shows_a_revoked_token_as_revoked(client, users):
    token, _ = ApiToken.issue(users["owner"], "warehouse")
    token.revoke()
    login(client, users["owner"])
    body = client.get(reverse("profile")).content.decode()
    assert "revoked" in body
    assert reverse("tokens-revoke", args=[token.id]) not in body


def test_it_refuses_a_revoke_by_a_non_owner(client, users):
    token, secret = ApiToken.issue(users["owner"], "warehouse")
    login(client, users["teammate"])
    url = reverse("tokens-revoke", args=[token.id])
    assert client.get(url).status_code == 404
    assert client.post(url).status_code == 404
    token.refresh_from_db()
    assert not token.is_revoked
    client.logout()
    assert call_api(client, secret).status_code == 200


def test_it_renders_the_revoke_confirmation_as_a_modal_for_htmx_and_as_a_page_without(client, users):
    token, _ = ApiToken.issue(users["owner"], "warehouse")
    login(client, users["owner"])
    url = reverse("tokens-revoke", args=[token.id])

    modal = client.get(url, HTTP_HX_REQUEST="true").content.decode()
    assert "<dialog" in modal
    assert "<html" not in modal
    assert f'action="{url}"' in modal

    page = client.get(url).content.decode()
    assert "<dialog" not in page
    assert "<html" in page
    assert f'action="{url}"' in page


def test_an_anonymous_user_is_sent_to_log_in(client, users):
    token, _ = ApiToken.issue(users["owner"], "warehouse")
    revoke = reverse("tokens-revoke", args=[token.id])
    for method, url in [
        ("get", reverse("profile")),
        ("post", reverse("tokens-create")),
        ("get", revoke),
        ("post", revoke),
    ]:
        response = getattr(client, method)(url, {"name": "sneaky"} if method == "post" else {})
        assert response.status_code == 302, (method, url)
        assert response.url.startswith(site_reverse("login")), (method, url)  # outside sandboxes
    assert ApiToken.objects.count() == 1
    token.refresh_from_db()
    assert not token.is_revoked


def test_a_superuser_revokes_someones_token_in_the_admin_without_seeing_a_secret(client, users):
    token, secret = ApiToken.issue(users["owner"], "left the company")
    client.login(username=users["superuser"].username, password=PASSWORD)
    listing = client.get("/admin/exports/apitoken/")
    assert "left the company" in listing.content.decode()
    assert secret not in listing.content.decode()
    response = client.post("/admin/exports/apitoken/", {"action": "revoke_tokens", "_selected_action": [token.id]})
    assert response.status_code == 302
    token.refresh_from_db()
    assert token.is_revoked
    assert ApiToken.authenticate(secret) is None
