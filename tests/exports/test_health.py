"""/healthz for load balancers, `manage.py health` for monitors, /metrics for Prometheus."""

from __future__ import annotations

import json
import re
import shutil
import time
from io import StringIO

import pytest
import redis
from django.core.management import call_command
from prometheus_client.parser import text_string_to_metric_families

from exports import health
from exports.actions import queue_run
from exports.health import export_workers
from exports.models import Database, Export, Run, refresh_datasets
from exports.scheduler import tick
from exportsite.embedded import free_port
from tests.conftest import start_worker_in_background

pytestmark = pytest.mark.django_db(transaction=True)


def test_healthz_says_ok_when_the_database_and_redis_answer(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["checks"] == {"database": True, "redis": True}
    assert "no-cache" in response["Cache-Control"] or "max-age=0" in response["Cache-Control"]


def test_healthz_fails_with_503_naming_redis_when_it_is_down(client, monkeypatch):
    nowhere = redis.Redis(port=free_port(), socket_connect_timeout=1)
    monkeypatch.setattr(health, "_redis", lambda: nowhere)
    response = client.get("/healthz")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "failing"
    assert body["checks"] == {"database": True, "redis": False}
    assert "Connection" not in response.content.decode()  # why stays in the log: it may name hosts


def _health() -> tuple[int, str]:
    out = StringIO()
    try:
        call_command("health", stdout=out)
    except SystemExit as exc:
        return int(exc.code or 0), out.getvalue()
    return 0, out.getvalue()


def test_manage_health_fails_without_a_scheduler_or_a_worker_then_passes(live_worker):
    health._redis().delete(health.LAST_TICK)
    code, out = _health()
    assert code == 1
    assert "FAIL scheduler: no scheduler has ticked" in out
    assert "ok   database" in out

    tick()
    deadline = time.monotonic() + 30
    while not export_workers() and time.monotonic() < deadline:
        time.sleep(0.2)
    code, out = _health()
    assert code == 0, out
    assert re.search(r"ok   scheduler: last tick [0-9] s ago", out), out
    assert "ok   workers: 1 on the" in out


def test_manage_health_fails_when_the_scheduler_stopped_ticking(settings):
    health._redis().set(health.LAST_TICK, f"{time.time() - 120:.3f}")
    settings.HEALTH_SCHEDULER_MAX_AGE = 60
    code, out = _health()
    assert code == 1
    assert "FAIL scheduler: last tick 120 s ago (more than 60 s)" in out


def _metrics(client, **headers) -> dict:
    response = client.get("/metrics", **headers)
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain; version=0.0.4")
    samples = {}
    for family in text_string_to_metric_families(response.content.decode()):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def test_metrics_move_when_a_run_fails(client, users, demo_path, tmp_path, worker):
    copy = tmp_path / "copy.sqlite3"
    shutil.copy(demo_path, copy)
    database = Database.objects.create(name="Soon gone", url=f"sqlite:///{copy}")
    refresh_datasets(database)
    export = Export.objects.create(name="broken", owner=users["owner"], dataset=database.datasets.get(name="profiles"))
    before = _metrics(client)
    run = queue_run(export, user=users["owner"])
    queued = _metrics(client)
    assert queued[("exportsite_queue_depth", (("state", "dispatched"),))] == 1
    assert (
        queued[("exportsite_runs", (("status", "queued"),))] == before[("exportsite_runs", (("status", "queued"),))] + 1
    )
    copy.unlink()  # the source file vanishes before the run reads it
    worker()
    run.refresh_from_db()
    assert run.error_code == Run.ErrorCode.SOURCE_UNAVAILABLE
    after = _metrics(client)
    failed = ("exportsite_runs", (("status", "failed"),))
    assert after[failed] == before[failed] + 1
    count = ("exportsite_run_duration_seconds_count", ())
    assert after[count] == before[count] + 1
    assert after[("exportsite_queue_depth", (("state", "dispatched"),))] == 0


def test_metrics_count_rows_bytes_durations_and_the_scheduler(client, users, demo_database, worker):
    before = _metrics(client)
    dataset = demo_database.datasets.get(name="profiles")
    run = queue_run(Export.objects.create(name="good", owner=users["owner"], dataset=dataset), user=users["owner"])
    worker()
    tick()
    run.refresh_from_db()
    assert run.status == Run.Status.SUCCEEDED
    after = _metrics(client)
    succeeded = ("exportsite_runs", (("status", "succeeded"),))
    assert after[succeeded] == before[succeeded] + 1
    assert after[("exportsite_rows_written_total", ())] == before[("exportsite_rows_written_total", ())] + run.row_count
    assert after[("exportsite_bytes_written_total", ())] == before[("exportsite_bytes_written_total", ())] + run.bytes
    count = ("exportsite_run_duration_seconds_count", ())
    assert after[count] == before[count] + 1
    assert after[("exportsite_run_duration_seconds_bucket", (("le", "+Inf"),))] == after[count]
    assert 0 <= after[("exportsite_scheduler_lag_seconds", ())] < 10
    assert after[("exportsite_queue_depth", (("state", "waiting"),))] == 0


def test_metrics_are_for_internal_clients_or_the_token_holder(client, settings):
    assert client.get("/metrics", REMOTE_ADDR="203.0.113.9").status_code == 403
    settings.METRICS_TOKEN = "scrape-me-2f9a"
    refused = client.get("/metrics")
    assert refused.status_code == 401
    assert refused["WWW-Authenticate"] == "Bearer"
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 401
    assert _metrics(client, REMOTE_ADDR="203.0.113.9", HTTP_AUTHORIZATION="Bearer scrape-me-2f9a")


def test_json_logs_carry_the_run_id_on_every_line_a_job_writes(users, demo_path, tmp_path):
    """LOG_FORMAT=json: one JSON object per line; the job's lines name its run."""
    copy = tmp_path / "copy.sqlite3"
    shutil.copy(demo_path, copy)
    database = Database.objects.create(name="Soon gone", url=f"sqlite:///{copy}")
    refresh_datasets(database)
    dataset = database.datasets.get(name="profiles")
    ok = queue_run(Export.objects.create(name="ok", owner=users["owner"], dataset=dataset), user=users["owner"])
    process = start_worker_in_background(burst=True, env={"LOG_FORMAT": "json"})
    _out, err = process.communicate(timeout=120)
    assert process.returncode == 0, err[-3000:]
    lines = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    assert lines, err[-3000:]
    ours = [line for line in lines if line.get("logger") == "exports.jobs"]
    assert ours, lines
    for line in ours:
        assert line["run_id"] == str(ok.id)
        assert {"time", "level", "message"} <= set(line)
    assert any("succeeded" in line["message"] for line in ours)
