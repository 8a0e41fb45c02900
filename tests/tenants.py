"""Two organisations side by side, each with its own source, people, destinations,
exports, runs and tokens: what isolation and fairness tests act on. A pytest plugin of
tests/conftest.py, so browser tests have them too."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from connectors.models import ConnectionTest, Connector, login_for
from exports.models import ApiToken, Database, Export, Hook, HookCall, Run, RunFile, refresh_datasets
from orgs.models import Organisation, Sandbox
from tests.conftest import PASSWORD, member


@dataclass
class Tenant:
    organisation: Organisation
    production: Sandbox
    test: Sandbox
    admin: object
    marketer: object
    viewer: object
    database: Database
    connector: Connector
    hosted: Connector
    export: Export
    scheduled: Export
    run: Run
    token_secret: str
    token: ApiToken
    connection_test: ConnectionTest
    hook: Hook
    hook_call: HookCall
    names: list[str] = field(default_factory=list)


def make_tenant(name: str, demo_path) -> Tenant:
    """An organisation called `name` (slug: its lower case) with a `test` sandbox, and
    everything in its production sandbox named after it, so a page that leaks shows it."""
    slug = name.lower()
    organisation = Organisation.objects.create(name=name, slug=slug)
    production = organisation.sandboxes.get(slug="production")
    test = Sandbox.objects.create(organisation=organisation, name="Test", slug="test")
    User = get_user_model()
    people = {
        role: member(
            User.objects.create_user(f"{slug}-{role}", f"{slug}-{role}@example.com", PASSWORD), organisation, role
        )
        for role in ("admin", "marketer", "viewer")
    }
    database = Database.objects.create(name=f"{name} CRM", url=f"sqlite:///{demo_path}", sandbox=production)
    refresh_datasets(database)
    dataset = database.datasets.get(name="profiles")
    connector = Connector.objects.create(
        name=f"{name} lake", kind=Connector.Kind.S3, owner=people["admin"], sandbox=production, options={"bucket": slug}
    )
    hosted = Connector(name=f"{name} drop", kind=Connector.Kind.HOSTED_SFTP, owner=people["admin"], sandbox=production)
    hosted.options = {"login": login_for(people["admin"], production)}
    hosted.new_key_pair()
    hosted.save()
    export = Export.objects.create(
        name=f"{name} one-shot", owner=people["marketer"], dataset=dataset, connector=connector, sandbox=production
    )
    scheduled = Export.objects.create(
        name=f"{name} nightly",
        owner=people["marketer"],
        dataset=dataset,
        sandbox=production,
        status=Export.Status.SCHEDULED,
        export_type=Export.Type.INCREMENTAL,
        schedule_unit=Export.TimeUnit.HOUR,
        schedule_interval=6,
        cursor_column="updated_at",
    )
    run = Run.objects.create(export=scheduled, status=Run.Status.SUCCEEDED, destination_kind="desktop")
    RunFile.objects.create(
        run=run,
        part=1,
        name=f"{slug}.csv",
        path=f"{scheduled.id}/{run.id}/{slug}.csv",
        rows=1,
        size_bytes=1,
        sha256="0" * 64,
    )
    token, secret = ApiToken.issue(people["marketer"], f"{name} token", sandbox=production)
    connection_test = ConnectionTest.objects.create(connector=connector, user=people["admin"])
    hook = Hook.objects.create(export=export, url=f"https://{slug}.example/hooks", secret=Hook.new_secret())
    hook_call = HookCall.objects.create(run=run, url=hook.url, event="export.run.succeeded")
    return Tenant(
        organisation=organisation,
        production=production,
        test=test,
        admin=people["admin"],
        marketer=people["marketer"],
        viewer=people["viewer"],
        database=database,
        connector=connector,
        hosted=hosted,
        export=export,
        scheduled=scheduled,
        run=run,
        token_secret=secret,
        token=token,
        connection_test=connection_test,
        hook=hook,
        hook_call=hook_call,
        names=[f"{name} CRM", f"{name} lake", f"{name} drop", f"{name} one-shot", f"{name} nightly", f"{name} token"],
    )


@pytest.fixture
def tenants(db, demo_path) -> tuple[Tenant, Tenant]:
    """Acme and Bravo."""
    return make_tenant("Acme", demo_path), make_tenant("Bravo", demo_path)


def signed_in(user) -> Client:
    """A test client signed in as `user`."""
    client = Client()
    client.force_login(user)
    return client
