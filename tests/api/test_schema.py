"""Schemathesis against /api/v1/openapi.json: thousands of generated requests, valid and
invalid, through the real WSGI application, with a real token. No request may end in a
server error, and every response must match the schema the code publishes."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta

import pytest
import schemathesis
from django.core import signals
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from django.utils import timezone
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from exports import actions
from exports.actions import queue_run
from exports.models import ApiToken, Export

schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", get_wsgi_application())
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


@pytest.fixture
def wsgi_in_test_transaction():
    """Keep the test's connection open across requests, as Django's test client does:
    the WSGI handler would otherwise close it (and the test's transaction) after each."""
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    yield
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)


@dataclass
class Targets:
    """Real objects for generated requests to hit: random ids would only ever meet 404s."""

    token: str
    ids: dict[str, str]
    dataset_id: int
    connector_id: str

    def aim(self, case) -> None:
        """Well-formed ids become real ones; malformed ones stay, to be refused."""
        for name, value in (case.path_parameters or {}).items():
            if name in self.ids and _is_uuid(value):
                case.path_parameters[name] = self.ids[name]
        if isinstance(case.body, dict):
            if isinstance(case.body.get("DatasetId"), int):
                case.body["DatasetId"] = self.dataset_id
            if _is_uuid(case.body.get("ConnectorId")):
                case.body["ConnectorId"] = self.connector_id


def _is_uuid(value) -> bool:
    try:
        uuid.UUID(str(value))
    except ValueError:
        return False
    return True


@pytest.fixture
def targets(db, users, demo_database, s3, settings, wsgi_in_test_transaction) -> Targets:
    """A marketer with something to find: a draft, a scheduled incremental export, a run."""
    settings.API_RATE_LIMIT_PER_MINUTE = 1_000_000
    owner = users["owner"]
    dataset = demo_database.datasets.get(name="interactions")
    one_shot = Export.objects.create(name="Fuzzed one-shot", owner=owner, dataset=dataset)
    incremental = Export.objects.create(
        name="Fuzzed incremental",
        owner=owner,
        dataset=dataset,
        export_type="incremental",
        cursor_column="id",
        schedule_unit="hour",
        schedule_interval=3,
        schedule_start=timezone.now() + timedelta(days=1),
        schedule_end=timezone.now() + timedelta(days=90),
    )
    incremental = actions.schedule(incremental.owner, incremental)
    run = queue_run(one_shot, user=owner)
    # Drafts for the operations that change them; every example works on the same rows.
    draft = one_shot.copy(name="Fuzzed draft", owner=owner)
    return Targets(
        token=ApiToken.issue(owner, "schemathesis")[1],
        ids={"export_id": str(draft.id), "run_id": str(run.id)},
        dataset_id=dataset.id,
        connector_id=str(s3.connector(owner).id),
    )


@schema.parametrize()
@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_no_request_breaks_the_api_or_its_schema(case, targets):
    targets.aim(case)
    case.call_and_validate(headers={"Authorization": f"Bearer {targets.token}"}, checks=CHECKS)
