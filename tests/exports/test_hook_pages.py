"""The hooks on an export's page and the calls on a run's report: who sees and changes
what, the secret shown once, the confirmation before removing."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from exports import actions
from exports.models import Export, HookAttempt, HookCall, Run
from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db


def login(client, user):
    assert client.login(username=user.username, password=PASSWORD)
    return client


@pytest.fixture
def export(users, demo_database):
    return Export.objects.create(name="Orders", owner=users["owner"], dataset=demo_database.datasets.get(name="orders"))


def failed_run(export) -> Run:
    run = Run.objects.create(export=export, status=Run.Status.RUNNING, started_at=timezone.now())
    assert run.fail(Run.ErrorCode.TIMEOUT, "too long")
    return run


def test_the_owner_adds_a_hook_and_sees_its_secret_only_once(client, users, export):
    login(client, users["owner"])
    page = client.get(export.get_absolute_url()).content.decode()
    assert 'id="hook-form"' in page
    assert "No hooks" in page
    response = client.post(
        reverse("exports-hooks-add", args=[export.id]), {"url": "http://127.0.0.1:9/in", "events": "success"}
    )
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"] or "max-age=0" in response["Cache-Control"]
    hook = export.hooks.get()
    assert hook.events == "success"
    assert f'value="{hook.secret}"' in response.content.decode()
    again = client.get(export.get_absolute_url()).content.decode()
    assert hook.secret not in again
    assert "http://127.0.0.1:9/in" in again


def test_a_hook_on_a_disallowed_address_is_refused_with_the_reason_on_the_page(client, users, export):
    login(client, users["owner"])
    response = client.post(
        reverse("exports-hooks-add", args=[export.id]), {"url": "https://169.254.169.254/latest", "events": "both"}
    )
    page = response.content.decode()
    assert response.status_code == 200
    assert "The address is not allowed: 169.254.169.254 is link-local" in page
    assert 'value="https://169.254.169.254/latest"' in page  # kept, to correct
    assert not export.hooks.exists()


def test_removing_a_hook_asks_first(client, users, export):
    hook, _ = actions.add_hook(users["owner"], export, "http://127.0.0.1:9/in")
    login(client, users["owner"])
    url = reverse("exports-hooks-remove", args=[export.id, hook.id])
    confirm = client.get(url)
    assert confirm.status_code == 200
    assert "Remove the hook to" in confirm.content.decode()
    assert export.hooks.exists()
    response = client.post(url)
    assert response.status_code == 302
    assert not export.hooks.exists()


def test_others_see_the_hooks_without_their_path_and_no_form(client, users, export):
    actions.add_hook(users["owner"], export, "http://127.0.0.1:9/secret-path/token")
    run = failed_run(export)
    login(client, users["viewer"])
    page = client.get(export.get_absolute_url()).content.decode()
    assert "http://127.0.0.1:9/…" in page
    assert "secret-path" not in page
    assert 'id="hook-form"' not in page
    report = client.get(run.get_absolute_url()).content.decode()
    assert "secret-path" not in report
    assert "Send again" not in report
    assert (
        client.post(reverse("exports-hooks-add", args=[export.id]), {"url": "http://127.0.0.1:9/"}).status_code == 403
    )
    call = HookCall.objects.get(run=run)
    response = client.post(reverse("runs-hooks-send-again", args=[run.id, call.id]))
    assert response.status_code == 403


def test_the_report_shows_every_attempt_and_sends_again(client, users, export):
    actions.add_hook(users["owner"], export, "http://127.0.0.1:9/in")
    run = failed_run(export)
    call = HookCall.objects.get(run=run)
    retry = timezone.now() + timezone.timedelta(minutes=5)
    HookAttempt.objects.filter(call=call).update(
        started_at=timezone.now(),
        finished_at=timezone.now(),
        status_code=503,
        error="the receiver answered 503",
        duration_ms=1234,
        next_retry_at=retry,
    )
    HookCall.objects.filter(id=call.id).update(attempts=1, next_attempt_at=retry)
    login(client, users["owner"])
    report = client.get(run.get_absolute_url()).content.decode()
    assert "HTTP 503" in report
    assert "1,234 ms" in report
    assert call.webhook_id in report
    assert "Send again" in report
    response = client.post(reverse("runs-hooks-send-again", args=[run.id, call.id]))
    assert response.status_code == 302
    assert call.attempt_log.filter(manual=True, requested_by=users["owner"]).count() == 1
    report = client.get(run.get_absolute_url()).content.decode()
    assert "waiting for a worker" in report
    assert 'class="secondary send-again"' not in report  # not twice at once
    assert 'hx-trigger="every 1s"' in report  # the report follows the call


def test_the_report_takes_a_constant_number_of_queries_whatever_the_calls(client, users, export):
    login(client, users["owner"])
    run = failed_run(export)

    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert client.get(run.get_absolute_url()).status_code == 200
        return len(captured)

    for n in range(2):
        actions.add_hook(users["owner"], export, f"http://127.0.0.1:9/{n}")
    run.hook_calls.all().delete()
    HookCall.record(run)
    few = queries()
    for n in range(2, 6):
        actions.add_hook(users["owner"], export, f"http://127.0.0.1:9/{n}")
    run.hook_calls.all().delete()
    HookCall.record(run)
    assert run.hook_calls.count() == 6
    assert queries() == few
