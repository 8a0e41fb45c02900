"""The isolation matrix, generated: every page of the site (walked from the URLconf) and
every API operation (from /api/v1/openapi.json) is called by organisation Bravo on
Acme's objects, and answers exactly as for an object that doesn't exist. A page or an
operation added later is in the matrix without editing this file; one whose parameters
the matrix can't fill fails it, until `OBJECTS` learns them."""

from __future__ import annotations

import json
import re
import uuid

import pytest
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver

from tests.tenants import Tenant, signed_in

pytestmark = pytest.mark.django_db

# Where pages are not: the admin, the API, sign-in, the queue dashboard.
NOT_PAGES = ("admin/", "api/", "accounts/", "django-rq/")
MISSING_UUID = uuid.UUID("00000000-0000-4000-8000-000000000000")
MISSING_INT = 2**31 - 7

# A route parameter -> the object of a tenant it names.
OBJECTS = {
    "export_id": lambda tenant: tenant.export.id,
    "run_id": lambda tenant: tenant.run.id,
    "connector_id": lambda tenant: tenant.hosted.id,
    "test_id": lambda tenant: tenant.connection_test.id,
    "token_id": lambda tenant: tenant.token.id,
    "database_id": lambda tenant: tenant.database.id,
    "membership_id": lambda tenant: tenant.admin.memberships.get().id,
    "hook_id": lambda tenant: tenant.hook.id,
    "call_id": lambda tenant: tenant.hook_call.id,
}
# Parameters that name no object: the same value for both.
PLAIN = {"step": "source", "part": 1}


def page_routes() -> list[str]:
    """Every page's route, e.g. 'exports/<uuid:export_id>/edit/'."""

    def walk(patterns, prefix: str):
        for pattern in patterns:
            route = prefix + str(pattern.pattern)
            if isinstance(pattern, URLResolver):
                yield from walk(pattern.url_patterns, route)
            elif isinstance(pattern, URLPattern):
                yield route

    return [route for route in walk(get_resolver().url_patterns, "") if not route.startswith(NOT_PAGES)]


PARAM = re.compile(r"<(?:(?P<converter>\w+):)?(?P<name>\w+)>")


def fill(route: str, tenant: Tenant | None, like: Tenant | None = None) -> str:
    """The route with `tenant`'s objects in it, or (tenant None) missing ones of the
    same kind as `like`'s."""

    def value(match: re.Match) -> str:
        name = match["name"]
        if name in PLAIN:
            return str(PLAIN[name])
        assert name in OBJECTS, f"the isolation matrix doesn't know what {name!r} in {route!r} names: teach OBJECTS"
        if tenant is not None:
            return str(OBJECTS[name](tenant))
        uuids = match["converter"] == "uuid" or (like is not None and isinstance(OBJECTS[name](like), uuid.UUID))
        return str(MISSING_UUID if uuids else MISSING_INT)

    return PARAM.sub(value, route)


def answers(client: Client, url: str) -> list[tuple[int, bytes]]:
    return [
        (response.status_code, response.content)
        for response in (
            client.get(url),
            client.get(url, HTTP_HX_REQUEST="true"),
            client.post(url),
        )
    ]


def test_every_page_answers_bravo_about_acmes_objects_as_about_missing_ones(tenants):
    acme, bravo = tenants
    routes = [route for route in page_routes() if PARAM.search(route)]
    assert len(routes) >= 20, routes  # the walk found the site
    for user in (bravo.admin, bravo.marketer, bravo.viewer):
        client = signed_in(user)
        for route in routes:
            for scope in ("/o/bravo/production/", "/o/bravo/test/"):
                missing = answers(client, scope + fill(route, None))
                # 404; a GET of a POST-only action is refused before any lookup (405).
                statuses = {status for status, _ in missing}
                assert 404 in statuses, (route, statuses)
                assert statuses <= {404, 405}, (route, statuses)
                assert answers(client, scope + fill(route, acme)) == missing, (user, scope, route)
            # Acme's own URL: Bravo's people can't enter Acme at all, whatever the page.
            not_found = next(body for status, body in missing if status == 404)
            entering = answers(client, "/o/acme/production/" + fill(route, acme))
            assert entering == [(404, not_found)] * 3, (user, route)


def test_no_list_count_filter_search_or_poll_shows_bravo_anything_of_acme(tenants):
    acme, bravo = tenants
    plain_routes = [route for route in page_routes() if not PARAM.search(route)]
    assert "exports/" in plain_routes
    assert "connectors/" in plain_routes
    queries = [
        "",
        *(f"?tab={tab}" for tab in ("draft", "scheduled", "in_progress", "finished")),
        "?q=Acme",
        f"?tab=finished&database={acme.database.id}",
        f"?dataset={acme.database.datasets.get(name='profiles').id}",
        "?kind=s3",
    ]
    leaks = [*acme.names, str(acme.export.id), str(acme.scheduled.id), str(acme.run.id), str(acme.connector.id)]
    for user in (bravo.admin, bravo.marketer, bravo.viewer):
        client = signed_in(user)
        for route in plain_routes:
            for query in queries:
                url = f"/o/bravo/production/{route}{query}"
                for response in (client.get(url), client.get(url, HTTP_HX_REQUEST="true")):
                    text = response.content.decode()
                    assert response.status_code < 500, url
                    assert not [leak for leak in leaks if leak in text], (user, url)
    # The sidebar's database filter and the counts see Bravo's only.
    page = signed_in(bravo.admin).get("/o/bravo/production/exports/?tab=scheduled").content.decode()
    assert "Bravo CRM" in page
    assert "Bravo nightly" in page


def test_a_sandbox_shows_nothing_of_the_organisations_other_sandbox(tenants):
    acme, _ = tenants
    client = signed_in(acme.admin)
    page = client.get("/o/acme/test/exports/?tab=scheduled").content.decode()
    assert "Acme nightly" not in page
    assert client.get(f"/o/acme/test/{fill('exports/<uuid:export_id>/', acme)}").status_code == 404
    assert client.get(f"/o/acme/production/{fill('exports/<uuid:export_id>/', acme)}").status_code == 200


def api(client: Client, secret: str, method: str, path: str, body=None):
    headers = {"HTTP_AUTHORIZATION": f"Bearer {secret}"}
    if method == "get":
        return client.get(path, **headers)
    return getattr(client, method)(path, json.dumps(body or {}), content_type="application/json", **headers)


# Operations whose body is checked before the lookup: a valid one, so the lookup answers.
BODIES = {("post", "/api/v1/exports/{export_id}/hooks"): {"Url": "https://hooks.example/in"}}


def test_every_api_operation_answers_bravos_token_about_acmes_objects_as_about_missing_ones(tenants):
    acme, bravo = tenants
    # Bravo's admin: the widest view Bravo has.
    from exports.models import ApiToken  # noqa: PLC0415

    _, secret = ApiToken.issue(bravo.admin, "matrix", sandbox=bravo.production)
    client = Client()
    schema = client.get("/api/v1/openapi.json").json()
    operations = [(path, method) for path, methods in schema["paths"].items() for method in methods]
    with_objects = [(path, method) for path, method in operations if "{" in path]
    assert len(with_objects) >= 10, with_objects
    for path, method in with_objects:
        route = re.sub(r"\{(\w+)\}", r"<\1>", path)
        body = BODIES.get((method, path))
        missing = api(client, secret, method, fill(route, None, like=acme), body)
        theirs = api(client, secret, method, fill(route, acme), body)
        assert (theirs.status_code, theirs.content) == (missing.status_code, missing.content), (method, path)
        if "/files/" not in path:  # signed downloads: no token, and no signature here either
            assert missing.status_code == 404, (method, path, missing.content)

    # Lists, lookups and definitions: nothing of Acme, and Acme's ids are unknown ones.
    leaks = [*acme.names, str(acme.export.id), str(acme.run.id), str(acme.connector.id)]
    for path, method in operations:
        if "{" in path or method != "get" or path.endswith("openapi.json") or path.endswith("/docs"):
            continue
        text = api(client, secret, "get", path).content.decode()
        assert not [leak for leak in leaks if leak in text], path
    looked_up = api(client, secret, "post", "/api/v1/exports/lookup", {"Ids": [str(acme.export.id)]}).json()
    assert looked_up == {"Items": [], "NotFound": [str(acme.export.id)]}
    dataset = acme.database.datasets.get(name="profiles")
    theirs = api(
        client,
        secret,
        "post",
        "/api/v1/exports",
        {"Name": "x", "DatasetId": dataset.id, "ConnectorId": str(acme.connector.id)},
    )
    unknown = api(
        client,
        secret,
        "post",
        "/api/v1/exports",
        {"Name": "x", "DatasetId": MISSING_INT, "ConnectorId": str(MISSING_UUID)},
    )
    assert theirs.status_code == unknown.status_code == 400
    assert theirs.json()["Code"] == unknown.json()["Code"]
    fields = {name: problems for name, problems in theirs.json().get("Fields", {}).items()}
    assert set(fields) >= {"DatasetId"}, theirs.json()
