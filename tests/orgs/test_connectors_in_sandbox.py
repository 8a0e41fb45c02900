"""A connector can only be chosen inside its own sandbox: through the wizard, the path
preview or the API, another sandbox's connector gets the same answer as an unknown one."""

from __future__ import annotations

import json
import re
import uuid

import pytest
import time_machine
from django.test import Client
from django.utils import timezone

from connectors.models import Connector
from exports import actions
from exports.models import Database, Export, Run, refresh_datasets

pytestmark = pytest.mark.django_db

CSRF = re.compile(r'(csrfmiddlewaretoken" value="|"X-CSRFToken": ")[^"]+')
UNKNOWN = str(uuid.UUID("00000000-0000-4000-8000-0000000000ff"))


@pytest.fixture
def elsewhere(tenants):
    """Connectors a Bravo marketer must not use: Acme's, and Bravo's own test sandbox's."""
    acme, bravo = tenants
    test_lake = Connector.objects.create(
        name="Bravo test lake", kind="s3", owner=bravo.admin, sandbox=bravo.test, options={"bucket": "t"}
    )
    return [acme.connector, test_lake]


def test_the_wizard_refuses_another_sandboxs_connector_as_an_unknown_one(tenants, elsewhere):
    _, bravo = tenants
    client = Client()
    client.force_login(bravo.marketer)
    export = bravo.export
    step = f"/o/bravo/production/exports/{export.id}/wizard/destination/"
    offered = client.get(step).content.decode()
    assert "Bravo lake" in offered
    assert not [connector.name for connector in elsewhere if connector.name in offered]

    moment = timezone.now()

    def answer(connector_id: str) -> tuple[int, str]:
        with time_machine.travel(moment, tick=False):  # the path preview shows the time
            response = client.post(step, {"connector": connector_id, "folder_template": ""})
        text = CSRF.sub("csrf", response.content.decode())  # masked anew in every response
        return response.status_code, text.replace(connector_id, "ID")

    unknown = answer(UNKNOWN)
    assert unknown[0] == 200
    assert "Select a valid choice" in unknown[1]
    for connector in elsewhere:
        assert answer(str(connector.id)) == unknown, connector.name
        preview = client.get(
            f"/o/bravo/production/exports/{export.id}/folder-preview/", {"connector": str(connector.id)}
        )
        assert f"s3://{connector.options['bucket']}/" not in preview.content.decode()
    export.refresh_from_db()
    assert export.connector == bravo.connector


def test_the_api_refuses_another_sandboxs_connector_as_an_unknown_one(tenants, elsewhere):
    _, bravo = tenants
    client = Client()
    auth = {"HTTP_AUTHORIZATION": f"Bearer {bravo.token_secret}"}
    dataset = bravo.database.datasets.get(name="profiles")

    def create(connector_id: str):
        body = {"Name": "Feed", "DatasetId": dataset.id, "ConnectorId": connector_id}
        response = client.post("/api/v1/exports", json.dumps(body), content_type="application/json", **auth)
        return response.status_code, response.content.decode().replace(connector_id, "ID")

    def patch(connector_id: str):
        url = f"/api/v1/exports/{bravo.export.id}"
        body = json.dumps({"ConnectorId": connector_id})
        response = client.patch(url, body, content_type="application/json", **auth)
        return response.status_code, response.content.decode().replace(connector_id, "ID")

    unknown_create, unknown_patch = create(UNKNOWN), patch(UNKNOWN)
    assert unknown_create[0] == unknown_patch[0] == 400
    for connector in elsewhere:
        assert create(str(connector.id)) == unknown_create
        assert patch(str(connector.id)) == unknown_patch
    assert not Export.objects.filter(name="Feed").exists()
    listed = client.get("/api/v1/connectors", **auth).json()["Items"]
    assert [item["Name"] for item in listed] == ["Bravo drop", "Bravo lake"]


def test_an_action_refuses_a_definition_naming_another_sandboxs_connector(tenants):
    acme, bravo = tenants
    export = Export(
        name="Sneaky",
        owner=bravo.marketer,
        sandbox=bravo.production,
        dataset=bravo.export.dataset,
        connector=acme.connector,
    )
    with pytest.raises(actions.ActionRefused) as refused:
        actions.save_draft(bravo.marketer, export)
    assert refused.value.code == actions.VALIDATION_FAILED
    assert refused.value.fields == {"connector": ["Select a valid choice."]}


def test_dataset_busy_counts_runs_of_the_same_sandbox(tenants, demo_path):
    """The 409 rule is per sandbox: a run of the test sandbox's copy of a source doesn't
    hold back a launch of production's, and production's own runs still do."""
    acme, _ = tenants
    person = acme.marketer
    test_crm = Database.objects.create(name="Acme CRM", url=f"sqlite:///{demo_path}", sandbox=acme.test)
    refresh_datasets(test_crm)
    in_test = Export.objects.create(
        name="Trial", owner=person, dataset=test_crm.datasets.get(name="profiles"), sandbox=acme.test
    )
    Run.objects.create(export=in_test, status=Run.Status.RUNNING)
    assert actions.launch(person, acme.export).status == Run.Status.QUEUED
    again = Export.objects.create(name="Again", owner=person, dataset=acme.export.dataset, sandbox=acme.production)
    with pytest.raises(actions.ActionRefused) as busy:
        actions.launch(person, again)
    assert busy.value.code == actions.DATASET_BUSY
