"""After-export hooks through the API: set, list, remove; a run's calls, Send again."""

from __future__ import annotations

import pytest
from django.utils import timezone

from exports import actions
from exports.models import Export, Hook, HookAttempt, Run

pytestmark = pytest.mark.django_db


@pytest.fixture
def export(users, demo_database):
    return Export.objects.create(name="Orders", owner=users["owner"], dataset=demo_database.datasets.get(name="orders"))


def test_a_token_sets_a_hook_and_gets_its_secret_once(users, export, api_as):
    api = api_as(users["owner"])
    response = api.post(
        f"exports/{export.id}/hooks", {"Url": "http://127.0.0.1:9/hooks?key=s3cret", "Events": "failure"}
    )
    assert response.status_code == 201, response.content
    created = response.json()
    assert created["Secret"].startswith("whsec_")
    assert (created["Url"], created["Events"], created["CreatedBy"]) == (
        "http://127.0.0.1:9/hooks?key=s3cret",
        "failure",
        "alice",
    )
    hook = Hook.objects.get(id=created["Id"])
    assert hook.secret == created["Secret"]
    [listed] = api.get(f"exports/{export.id}/hooks").json()
    assert "Secret" not in listed
    assert listed["Url"] == created["Url"]
    assert api.delete(f"exports/{export.id}/hooks/{hook.id}").status_code == 204
    assert api.get(f"exports/{export.id}/hooks").json() == []
    assert api.delete(f"exports/{export.id}/hooks/{hook.id}").status_code == 404


def test_a_hook_on_a_disallowed_address_is_refused_with_the_reason(users, export, api_as):
    response = api_as(users["owner"]).post(f"exports/{export.id}/hooks", {"Url": "http://192.168.1.10/hooks"})
    assert response.status_code == 400
    body = response.json()
    assert body["Code"] == "VALIDATION_FAILED"
    assert "192.168.1.10 is private" in body["Fields"]["Url"][0]
    assert not export.hooks.exists()
    response = api_as(users["owner"]).post(
        f"exports/{export.id}/hooks", {"Url": "http://127.0.0.1/", "Events": "never"}
    )
    assert response.status_code == 400
    assert "Events" in response.json()["Fields"]


def test_others_see_a_custom_exports_hooks_without_their_path_and_cant_change_them(users, export, api_as):
    Export.objects.filter(id=export.id).update(managed=True)
    actions.add_hook(users["superuser"], Export.objects.get(id=export.id), "http://127.0.0.1:9/private/token")
    api = api_as(users["teammate"])
    [listed] = api.get(f"exports/{export.id}/hooks").json()
    assert listed["Url"] == "http://127.0.0.1:9/…"
    assert api.post(f"exports/{export.id}/hooks", {"Url": "http://127.0.0.1:9/mine"}).status_code == 403
    # Not even the client's owner of it: operators manage it.
    response = api_as(users["owner"]).post(f"exports/{export.id}/hooks", {"Url": "http://127.0.0.1:9/mine"})
    assert response.status_code == 403
    assert response.json()["Code"] == "CUSTOM_EXPORT"


def test_a_runs_hook_calls_and_send_again(users, export, api_as):
    actions.add_hook(users["owner"], export, "http://127.0.0.1:9/hooks")
    run = Run.objects.create(export=export, status=Run.Status.RUNNING, started_at=timezone.now())
    run.fail(Run.ErrorCode.TIMEOUT, "too long")
    api = api_as(users["owner"])
    [call] = api.get(f"runs/{run.id}/hook-calls").json()
    assert call["Type"] == "export.run.failed"
    assert call["Status"] == "Sending"
    assert call["WebhookId"].startswith("msg_")
    [attempt] = call["Attempts"]
    assert (attempt["Manual"], attempt["SentUtc"], attempt["StatusCode"]) == (False, None, None)
    # Answered (here by hand), it may be sent again.
    HookAttempt.objects.filter(call_id=call["Id"]).update(
        started_at=timezone.now(), finished_at=timezone.now(), status_code=500, error="the receiver answered 500"
    )
    response = api.post(f"runs/{run.id}/hook-calls/{call['Id']}/send-again")
    assert response.status_code == 202, response.content
    assert [a["Manual"] for a in response.json()["Attempts"]] == [False, True]
    response = api.post(f"runs/{run.id}/hook-calls/{call['Id']}/send-again")
    assert response.status_code == 409
    assert response.json()["Code"] == "ALREADY_SENDING"
    # Someone else's run is not found, whatever its calls.
    assert api_as(users["teammate"]).get(f"runs/{run.id}/hook-calls").status_code == 404
