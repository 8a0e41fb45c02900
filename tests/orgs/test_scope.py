"""Where a request acts (orgs/scope.py): the URL's sandbox, old URLs, and the runs a
worker still holds for its organisation's limit."""

from __future__ import annotations

from datetime import timedelta

import django_rq
import pytest
from django.conf import settings
from django.test import Client
from django.utils import timezone
from rq.job import Job, JobStatus

from exports import actions
from exports.dispatch import with_the_workers
from exports.models import Run
from exports.scheduler import tick
from tests.tenants import signed_in

pytestmark = pytest.mark.django_db


def test_old_urls_open_in_the_current_sandbox(tenants):
    acme, _ = tenants
    client = signed_in(acme.admin)
    page = client.get(f"/exports/{acme.export.id}/?tab=draft")
    assert (page.status_code, page["Location"]) == (302, f"/o/acme/production/exports/{acme.export.id}/?tab=draft")
    client.get("/o/acme/test/exports/")  # now the current sandbox is test
    assert client.get("/connectors/")["Location"] == "/o/acme/test/connectors/"
    posted = client.post(f"/exports/{acme.export.id}/launch/")
    assert (posted.status_code, posted["Location"]) == (307, f"/o/acme/test/exports/{acme.export.id}/launch/")
    assert client.get("/o/acme/test")["Location"] == "/o/acme/test/"
    assert client.get("/")["Location"] == "/o/acme/test/"
    assert client.get("/o/acme/test/")["Location"] == "/o/acme/test/exports/"


def test_anonymous_visitors_sign_in_first(tenants):
    response = Client().get("/o/acme/production/exports/")
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/?next=/o/acme/production/exports/")
    assert Client().get("/o/nowhere/production/exports/").status_code == 302  # nothing said before signing in


def test_a_row_action_returns_to_the_filtered_list_of_its_sandbox(tenants):
    acme, _ = tenants
    client = signed_in(acme.admin)
    back = "/o/acme/production/exports/?tab=scheduled&q=nightly"
    response = client.post(f"/o/acme/production/exports/{acme.scheduled.id}/unschedule/", {"next": back})
    assert response["Location"] == back


def test_a_cancelled_run_holds_its_place_until_its_worker_lets_go(tenants):
    acme, _ = tenants
    now = timezone.now()
    run = Run.objects.create(export=acme.export, status=Run.Status.CANCELLED, dispatched_at=now, heartbeat_at=now)
    assert Run.objects.filter(with_the_workers(), id=run.id).exists()
    Run.objects.filter(id=run.id).update(heartbeat_at=None)  # its worker stopped
    assert not Run.objects.filter(with_the_workers(), id=run.id).exists()
    stale = now - timedelta(seconds=settings.EXPORT_HEARTBEAT_TIMEOUT + 1)
    Run.objects.filter(id=run.id).update(heartbeat_at=stale)  # its worker died
    assert not Run.objects.filter(with_the_workers(), id=run.id).exists()


@pytest.mark.django_db(transaction=True)  # the launch commits, and its run is dispatched
def test_a_run_whose_job_failed_before_claiming_it_is_enqueued_again(tenants):
    acme, _ = tenants
    run = actions.launch(acme.marketer, acme.export)
    run.refresh_from_db()
    assert run.dispatched_at is not None
    redis = django_rq.get_connection(settings.EXPORTS_QUEUE)
    Job.fetch(str(run.id), connection=redis).set_status(JobStatus.FAILED)  # its worker died before the claim
    Run.objects.filter(id=run.id).update(dispatched_at=timezone.now() - timedelta(minutes=5))
    assert run.id in [requeued.id for requeued in tick().requeued]
    assert Job.fetch(str(run.id), connection=redis).get_status() == JobStatus.QUEUED
