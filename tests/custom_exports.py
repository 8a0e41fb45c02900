"""An incremental custom export for the tests that need one (pages, API, browser)."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from connectors.models import Connector
from exports import actions
from exports.models import Export
from orgs.models import default_sandbox


def incremental_custom_export(users, demo_database, name: str) -> Export:
    """Set up by staff, over the plain `interactions` dataset with columns and filters,
    to an S3 connector (never reached), scheduled."""
    connector = Connector.objects.create(
        name="Client lake", kind=Connector.Kind.S3, owner=users["admin"], options={"bucket": "lake", "region": "x"}
    )
    export = Export(
        sandbox_id=default_sandbox(),
        name=name,
        dataset=demo_database.datasets.get(name="interactions"),
        columns=["id", "occurred_at", "country_code"],
        filters=[{"column": "event_type", "operator": "eq", "value": "click"}],
        export_type=Export.Type.INCREMENTAL,
        cursor_column="id",
        connector=connector,
        schedule_unit="hour",
        schedule_interval=6,
        schedule_start=timezone.now() + timedelta(hours=1),
        schedule_end=timezone.now() + timedelta(days=10),
    )
    return actions.create_custom_export(users["superuser"], export)
