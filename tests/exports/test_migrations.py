"""Migrations that move data: runs made before 0007 learn where their files are from
what the worker wrote then, not from where their export delivers today."""

from __future__ import annotations

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

BEFORE = [("exports", "0006_api_tokens"), ("connectors", "0002_test_results_and_key_events")]
AFTER = [("exports", "0007_run_destination")]


@pytest.mark.django_db(transaction=True)
def test_old_runs_keep_the_destination_they_delivered_to():
    executor = MigrationExecutor(connection)
    executor.migrate(BEFORE)
    old = executor.loader.project_state(BEFORE).apps
    user = old.get_model("auth", "User").objects.create(username="alice")
    database = old.get_model("exports", "Database").objects.create(name="d", url="sqlite:///x")
    dataset = old.get_model("exports", "Dataset").objects.create(database=database, name="t")
    Connector = old.get_model("connectors", "Connector")
    lake = Connector.objects.create(name="lake", kind="s3", owner=user, options={"bucket": "lake"})
    other = Connector.objects.create(name="other", kind="s3", owner=user, options={"bucket": "other"})
    Export = old.get_model("exports", "Export")
    OldRun = old.get_model("exports", "Run")

    def run(connector, destination: str):
        export = Export.objects.create(name="e", owner=user, dataset=dataset, connector=connector)
        return OldRun.objects.create(export=export, status="succeeded", destination=destination).id

    cases = {
        run(lake, "Desktop"): ("desktop", None),  # moved to S3 after a Desktop run
        run(None, "s3://lake/"): ("s3", None),  # moved to Desktop after an S3 run
        run(lake, "s3://lake/"): ("s3", lake.id),
        run(other, "s3://lake/"): ("s3", None),  # another bucket since
        run(lake, ""): ("s3", lake.id),  # never started: where it would have gone
        run(None, ""): ("desktop", None),
    }

    executor = MigrationExecutor(connection)
    try:
        executor.migrate(AFTER)
        # The models as of 0007: today's have fields that later migrations add.
        NewRun = executor.loader.project_state(AFTER).apps.get_model("exports", "Run")
        for run_id, expected in cases.items():
            migrated = NewRun.objects.get(id=run_id)
            assert (migrated.destination_kind, migrated.connector_id) == expected, migrated.destination
    finally:
        executor = MigrationExecutor(connection)
        executor.migrate(executor.loader.graph.leaf_nodes())
