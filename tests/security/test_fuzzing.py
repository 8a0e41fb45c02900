"""Fuzzing: every form of the site, found by reading the pages themselves, gets random,
unicode, huge, malformed and missing values, with and without htmx; so does the API's
JSON. Whatever comes in, the answer is never a server error."""

from __future__ import annotations

from dataclasses import dataclass, field
from html.parser import HTMLParser
from urllib.parse import urljoin

import pytest
from django.test import Client
from django.urls import reverse
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connectors.models import Connector, login_for
from exports.api import schemas as s
from exports.models import ApiToken, Export, Run
from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db

EXAMPLES = 20

# Values a person or a program could send: anything unicode, control characters, huge
# text, numbers at their limits, and the shapes our fields parse (dates, cron, paths).
ODD = st.sampled_from(
    [
        "",
        " ",
        "0",
        "-1",
        "1e309",
        "NaN",
        "9" * 40,
        "-" * 3,
        "\x00",
        "a\x00b",
        "\ud7ff\ue000\U0010ffff",
        "<script>alert(1)</script>",
        "{{ secret }}",
        "{% load x %}",
        "../../etc/passwd",
        "true",
        "null",
        "[]",
        "{",
        "2026-02-30",
        "2026-13-01T25:61",
        "*/0 * * * *",
        "60 25 32 13 8",
        "=HYPERLINK(1)",
        "00000000-0000-0000-0000-000000000000",
        "http://169.254.169.254/latest",
    ]
)
VALUE = st.one_of(
    ODD,
    st.text(max_size=60),
    st.text(min_size=2_000, max_size=5_000),
    st.just("x" * 200_000),
    st.integers().map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(str),
)


@dataclass
class Form:
    method: str
    action: str
    fields: dict[str, list[str]] = field(default_factory=dict)  # name -> values the page offers


class Forms(HTMLParser):
    """The forms of a page (method, action, fields and the values it offers), and the
    URLs its htmx attributes fetch with the page's fields."""

    def __init__(self, url: str):
        super().__init__()
        self.url = url
        self.forms: list[Form] = []
        self.hx_gets: list[str] = []
        self.fields: dict[str, list[str]] = {}
        self.current: Form | None = None
        self.select: str | None = None

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        if attributes.get("hx-get"):
            self.hx_gets.append(urljoin(self.url, attributes["hx-get"]))
        if tag == "form":
            self.current = Form(
                (attributes.get("method") or "get").lower(), urljoin(self.url, attributes.get("action") or self.url)
            )
            self.forms.append(self.current)
        name = attributes.get("name")
        if tag in {"input", "textarea", "select", "button"} and name:
            offered = [attributes["value"]] if attributes.get("value") else []
            for fields in (self.fields, self.current.fields if self.current else {}):
                fields.setdefault(name, []).extend(offered)
            self.select = name if tag == "select" else None
        if tag == "option" and self.select and attributes.get("value") is not None:
            self.fields.setdefault(self.select, []).append(attributes["value"])
            if self.current is not None:
                self.current.fields.setdefault(self.select, []).append(attributes["value"])

    def handle_endtag(self, tag):
        if tag == "form":
            self.current = None
        if tag == "select":
            self.select = None


def payloads(fields: dict[str, list[str]]):
    """Some of the fields (missing ones left out), each with an offered or random value
    or several values, plus a field nobody asked for."""

    def value_of(offered):
        single = st.one_of(st.sampled_from(offered), VALUE) if offered else VALUE
        return st.one_of(single, st.lists(single, min_size=2, max_size=3))

    return st.fixed_dictionaries({}, optional={name: value_of(offered) for name, offered in fields.items()}).flatmap(
        lambda data: st.one_of(st.just(data), VALUE.map(lambda junk: {**data, "unexpected": junk}))
    )


@pytest.fixture
def world(users, demo_database):
    """Something for every form to act on: drafts and a scheduled export, a finished run,
    a connector of every kind, an API token. Their owner is an admin, who sees every
    form: destinations are the admins' to manage."""
    owner = users["admin"]
    dataset = demo_database.datasets.get(name="interactions")
    connectors = {}
    for kind in ("s3", "gcs", "azure_blob", "sftp", "hosted_sftp"):
        connector = Connector(name=f"{kind} fuzz", kind=kind, owner=owner, options={"bucket": "b", "container": "c"})
        if kind == "hosted_sftp":
            connector.options = {"login": login_for(owner)}
            connector.new_key_pair()
        connector.save()
        connectors[kind] = connector
    draft = Export.objects.create(owner=owner, dataset=dataset, name="Fuzz draft", connector=connectors["s3"])
    scheduled = Export.objects.create(
        owner=owner,
        dataset=dataset,
        name="Fuzz scheduled",
        status=Export.Status.SCHEDULED,
        export_type=Export.Type.INCREMENTAL,
        schedule_unit=Export.TimeUnit.HOUR,
        schedule_interval=6,
        cursor_column="occurred_at",
    )
    run = Run.objects.create(export=scheduled, status=Run.Status.FAILED, error_code=Run.ErrorCode.INTERNAL_ERROR)
    ApiToken.issue(owner, "fuzz")
    return {"owner": owner, "draft": draft, "scheduled": scheduled, "run": run, "connectors": connectors}


def pages_of(world) -> list[str]:
    draft, scheduled, run = world["draft"], world["scheduled"], world["run"]
    urls = [
        reverse("exports-list"),
        reverse("exports-list") + "?tab=finished",
        reverse("exports-new"),
        reverse("exports-detail", args=[draft.id]),
        reverse("exports-detail", args=[scheduled.id]),
        reverse("exports-copy", args=[scheduled.id]),
        reverse("exports-delete", args=[draft.id]),
        reverse("exports-reset-watermark", args=[scheduled.id]),
        *(reverse("exports-wizard", args=[draft.id, step]) for step in ("source", "file", "destination", "schedule")),
        reverse("exports-wizard", args=[draft.id, "summary"]),
        reverse("runs-detail", args=[run.id]),
        reverse("profile"),
        reverse("sources-list"),
        reverse("connectors-list"),
    ]
    for connector in world["connectors"].values():
        urls += [
            reverse("connectors-new") + f"?kind={connector.kind}",
            connector.get_absolute_url(),
            reverse("connectors-edit", args=[connector.id]),
            reverse("connectors-delete", args=[connector.id]),
        ]
    urls.append(reverse("connectors-key-rotate", args=[world["connectors"]["hosted_sftp"].id]))
    return urls


def targets(client: Client, urls: list[str]) -> list[Form]:
    """Every form (and htmx fetch) on the pages and on what their htmx fetches (the
    confirmation dialogs), once each."""
    found: dict[tuple[str, str], Form] = {}
    pending = [(url, 0) for url in urls]
    seen = set()
    while pending:
        url, depth = pending.pop(0)
        if url in seen:
            continue
        seen.add(url)
        page = client.get(url, **({"HTTP_HX_REQUEST": "true"} if depth else {}))
        if depth == 0:
            assert page.status_code == 200, url
        if page.status_code != 200 or "html" not in page.get("Content-Type", ""):
            continue
        parser = Forms("http://testserver" + url)
        parser.feed(page.content.decode())
        for form in parser.forms:
            found.setdefault(_key(form.method, form.action), form)
        for fetched in parser.hx_gets:
            found.setdefault(_key("get", fetched), Form("get", fetched, dict(parser.fields)))
            if depth == 0:
                pending.append((fetched.removeprefix("http://testserver"), 1))
    # Logging out takes no input; anything it answers ends the session the others need.
    return [form for form in found.values() if not form.action.endswith(reverse("logout"))]


def _key(method: str, action: str) -> tuple[str, str]:
    """A GET's query string is what the fuzzing replaces: one target per path."""
    return method, action.split("?")[0] if method == "get" else action


def fuzz(client: Client, form: Form) -> None:
    path = form.action.removeprefix("http://testserver")

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(data=payloads(form.fields), htmx=st.booleans())
    def send(data, htmx):
        headers = {"HTTP_HX_REQUEST": "true"} if htmx else {}
        if form.method == "post":
            response = client.post(path, data, **headers)
        else:
            response = client.get(path.split("?")[0], data, **headers)
        assert response.status_code < 500, (form.method, path, data)

    send()


def test_no_form_of_the_site_answers_with_a_server_error(world, users):
    client = Client()
    client.login(username=world["owner"].username, password=PASSWORD)
    forms = targets(client, pages_of(world))
    sftp = world["connectors"]["sftp"]
    forms.append(Form("post", reverse("connectors-trust-host-key", args=[sftp.id]), {"fingerprint": []}))
    actions = {form.action.removeprefix("http://testserver").split("?")[0] for form in forms}
    # The crawl found the forms that matter (a page that lost its form would shrink this).
    for expected in (
        reverse("connectors-new"),
        reverse("tokens-create"),
        reverse("exports-wizard", args=[world["draft"].id, "source"]),
        reverse("exports-wizard", args=[world["draft"].id, "schedule"]),
        reverse("connectors-test", args=[world["connectors"]["s3"].id]),
        reverse("exports-copy", args=[world["scheduled"].id]),
        reverse("tokens-revoke", args=[ApiToken.objects.get().id]),
        reverse("exports-launch", args=[world["draft"].id]),
    ):
        assert expected in actions, expected
    # Destructive forms last, so the others still have something to act on.
    forms.sort(key=lambda form: any(word in form.action for word in ("delete", "revoke", "rotate")))
    for form in forms:
        fuzz(client, form)

    # What only admins see.
    client.login(username=users["admin"].username, password=PASSWORD)
    for form in targets(client, [reverse("sources-list")]):
        if form.method == "post":
            fuzz(client, form)


def test_the_login_form_answers_any_input_without_a_server_error(db):
    client = Client()
    parser = Forms("http://testserver" + reverse("login"))
    parser.feed(client.get(reverse("login")).content.decode())
    (form,) = [form for form in parser.forms if form.method == "post"]
    assert {"username", "password"} <= set(form.fields)
    fuzz(client, form)


JSON = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), VALUE),
    lambda children: st.one_of(st.lists(children, max_size=4), st.dictionaries(st.text(max_size=20), children)),
    max_leaves=12,
)
EXPORT_FIELDS = [*s.ExportIn.model_fields]


@settings(
    max_examples=60,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    body=st.one_of(JSON, st.fixed_dictionaries({}, optional=dict.fromkeys(EXPORT_FIELDS, JSON))),
    path=st.sampled_from(["exports", "exports/lookup", "runs/lookup"]),
)
def test_the_api_answers_any_json_without_a_server_error(api_as, world, body, path):
    api = api_as(world["owner"])
    response = api.post(path, body)
    assert response.status_code < 500, (path, body)
    response = api.patch(f"exports/{world['draft'].id}", body)
    assert response.status_code < 500, body
