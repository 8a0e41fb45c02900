"""An API client: Django's test client with a bearer token, JSON in and out."""

from __future__ import annotations

import json

import pytest
from django.test import Client

from exports.models import ApiToken


class ApiClient:
    def __init__(self, client, secret: str):
        self.client = client
        self.secret = secret

    def call(self, method: str, path: str, body=None, **params):
        headers = {"HTTP_AUTHORIZATION": f"Bearer {self.secret}"} if self.secret else {}
        url = path if path.startswith("/") else f"/api/v1/{path}"
        if method == "get":
            return self.client.get(url, params, **headers)
        payload = json.dumps(body, default=str) if body is not None else ""
        return getattr(self.client, method)(url, payload, content_type="application/json", **headers)

    def get(self, path, **params):
        return self.call("get", path, **params)

    def post(self, path, body=None):
        return self.call("post", path, body)

    def patch(self, path, body=None):
        return self.call("patch", path, body)

    def delete(self, path):
        return self.call("delete", path)


@pytest.fixture
def api_as():
    """api_as(user) -> an ApiClient acting with a fresh token of `user`. CSRF checks are
    on, as for any program: it has a token, never a CSRF cookie."""

    def make(user, name="tests"):
        _, secret = ApiToken.issue(user, name)
        return ApiClient(Client(enforce_csrf_checks=True), secret)

    return make
