"""One rulebook: every action, from every state an export can be in, through the page
and through the API, ends in the same state with the same refusal code.

Each case sets the state up, does the action through the page, records what changed,
rolls back to a savepoint, and does it again through the API."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import urlencode

import pytest
from django.core import mail
from django.db import transaction
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connectors.models import Connector
from exports import actions
from exports.jobs import horse_died
from exports.models import ApiToken, Export, Run
from exports.scheduler import tick
from tests.api.conftest import ApiClient
from tests.pages import refusal_of

STATES = ["draft", "draft_queued", "draft_running", "scheduled", "finished_run", "failed_run"]
KINDS = ["one_shot", "incremental"]


def make_export(owner, dataset, kind: str) -> Export:
    start = timezone.now() + timedelta(days=1)
    fields = {"schedule_start": start, "watermark": {"column": "id", "value": "5"}}
    if kind == "incremental":
        fields.update(
            export_type=Export.Type.INCREMENTAL,
            schedule_unit="hour",
            schedule_interval=3,
            schedule_end=start + timedelta(days=30),
            cursor_column="id",
        )
    return Export.objects.create(name="Matrix", owner=owner, dataset=dataset, **fields)


def put_in_state(export: Export, state: str) -> Run | None:
    """The export in `state`, and the run the run actions act on (its latest)."""
    if state == "scheduled":
        actions.schedule(export.owner, export)
        return None
    statuses = {
        "draft_queued": Run.Status.QUEUED,
        "draft_running": Run.Status.RUNNING,
        "finished_run": Run.Status.SUCCEEDED,
        "failed_run": Run.Status.FAILED,
    }
    if state not in statuses:
        return None
    if state in {"finished_run", "failed_run"}:
        Export.objects.filter(id=export.id).update(status=Export.Status.FINISHED)
    failed = state == "failed_run"
    return Run.objects.create(
        export=export,
        status=statuses[state],
        launched_by=export.owner,
        error_code=Run.ErrorCode.DESTINATION_UNREACHABLE if failed else "",
        finished_at=timezone.now() if state in {"finished_run", "failed_run"} else None,
    )


@dataclass
class Action:
    """One action through both doors: the page's request and the API's."""

    page: Callable[[Client, Export, Run | None], object]
    api: Callable[[ApiClient, Export, Run | None], object]
    needs_run: bool = False


FILE_STEP = {
    "file_format": "csv",
    "compression": "gzip",
    "csv_delimiter": ",",
    "csv_header": "on",
    "rows_per_file": "10",
    "file_template": "matrix",
}

ACTIONS = {
    "update": Action(
        lambda c, e, r: c.post(reverse("exports-wizard", args=[e.id, "file"]), FILE_STEP),
        lambda a, e, r: a.patch(f"exports/{e.id}", {"RowsPerFile": 10, "FileTemplate": "matrix"}),
    ),
    "launch": Action(
        lambda c, e, r: c.post(reverse("exports-launch", args=[e.id])),
        lambda a, e, r: a.post(f"exports/{e.id}/launch", {}),
    ),
    "run_now": Action(
        lambda c, e, r: c.post(reverse("exports-run-now", args=[e.id])),
        lambda a, e, r: a.post(f"exports/{e.id}/run-now"),
    ),
    "schedule": Action(
        lambda c, e, r: c.post(reverse("exports-schedule", args=[e.id])),
        lambda a, e, r: a.post(f"exports/{e.id}/schedule"),
    ),
    "unschedule": Action(
        lambda c, e, r: c.post(reverse("exports-unschedule", args=[e.id])),
        lambda a, e, r: a.post(f"exports/{e.id}/unschedule"),
    ),
    "copy": Action(
        lambda c, e, r: c.post(reverse("exports-copy", args=[e.id]), {"name": "Matrix copy"}),
        lambda a, e, r: a.post(f"exports/{e.id}/copy", {"Name": "Matrix copy"}),
    ),
    "delete": Action(
        lambda c, e, r: c.post(reverse("exports-delete", args=[e.id])),
        lambda a, e, r: a.delete(f"exports/{e.id}"),
    ),
    "reset_watermark": Action(
        lambda c, e, r: c.post(reverse("exports-reset-watermark", args=[e.id])),
        lambda a, e, r: a.post(f"exports/{e.id}/reset-watermark"),
    ),
    "cancel": Action(
        lambda c, e, r: c.post(reverse("runs-cancel", args=[r.id])),
        lambda a, e, r: a.post(f"runs/{r.id}/cancel"),
        needs_run=True,
    ),
    "relaunch": Action(
        lambda c, e, r: c.post(reverse("runs-relaunch", args=[r.id])),
        lambda a, e, r: a.post(f"runs/{r.id}/relaunch"),
        needs_run=True,
    ),
}


def signed_in(user) -> Client:
    """A browser of its own, so no message from an earlier action is still waiting."""
    client = Client()
    client.force_login(user)
    return client


def page_code(response) -> str:
    if response.status_code == 403:
        return "FORBIDDEN"
    assert response.status_code in {200, 302}, response.status_code
    return refusal_of(response)


def api_code(response) -> str:
    assert response.status_code < 500, response.content
    return response.json()["Code"] if response.status_code >= 400 else ""


def snapshot() -> dict:
    """What an action may change, leaving out what says which door it came through."""
    return {
        "exports": sorted(
            (e.name, e.status, e.next_run_at is not None, e.rows_per_file, e.file_template, repr(e.watermark))
            for e in Export.objects.all()
        ),
        "runs": sorted((r.export.name, r.status, r.relaunch_of_id is not None) for r in Run.objects.all()),
    }


def through(door: Callable[[], object], code_of: Callable[[object], str]) -> tuple[str, dict]:
    savepoint = transaction.savepoint()
    try:
        code = code_of(door())
        return code, snapshot()
    finally:
        transaction.savepoint_rollback(savepoint)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("state", STATES)
def test_every_action_has_the_same_outcome_on_the_page_and_in_the_api(users, demo_database, kind, state):
    owner = users["owner"]
    export = make_export(owner, demo_database.datasets.get(name="interactions"), kind)
    run = put_in_state(export, state)
    api = ApiClient(Client(enforce_csrf_checks=True), ApiToken.issue(owner, "matrix")[1])
    before = snapshot()
    seen = {}
    for name, action in ACTIONS.items():
        if action.needs_run and run is None:
            continue
        by_page = through(lambda action=action: action.page(signed_in(owner), export, run), page_code)
        by_api = through(lambda action=action: action.api(api, export, run), api_code)
        assert by_page == by_api, f"{name} from {state} ({kind}): page {by_page} != API {by_api}"
        seen[name] = by_page[0]
        assert (by_page[1] == before) == bool(by_page[0]), f"{name} from {state}: refused, yet changed"
    # Spot checks that the table above holds the rules it should.
    assert seen["copy"] == ""
    if state in {"draft_queued", "draft_running"}:
        assert seen["delete"] == "RUN_IN_PROGRESS"
        assert seen["cancel"] == ""
        assert seen["reset_watermark"] == ("RUN_IN_PROGRESS" if kind == "incremental" else "NOT_INCREMENTAL")
    if state == "scheduled":
        assert (seen["delete"], seen["update"], seen["unschedule"]) == ("NOT_A_DRAFT", "NOT_A_DRAFT", "")
        assert seen["run_now"] == ""
    if state == "draft":
        assert (seen["delete"], seen["update"], seen["schedule"], seen["run_now"]) == ("", "", "", "NOT_SCHEDULED")
        assert seen["launch"] == ("" if kind == "one_shot" else "NOT_ONE_SHOT")
    if state == "failed_run":
        assert seen["relaunch"] == ""
        assert seen["cancel"] == "NOT_IN_PROGRESS"
    if state == "finished_run":
        assert seen["relaunch"] == "NOT_RELAUNCHABLE"


def test_a_teammate_is_refused_every_action_on_the_page(users, demo_database):
    export = make_export(users["owner"], demo_database.datasets.get(name="interactions"), "incremental")
    run = put_in_state(export, "failed_run")
    before = snapshot()
    for name, action in ACTIONS.items():
        assert page_code(action.page(signed_in(users["teammate"]), export, run)) == "FORBIDDEN", name
    assert snapshot() == before


def test_an_admin_is_refused_nothing_a_marketer_may_do(users, demo_database):
    export = make_export(users["owner"], demo_database.datasets.get(name="interactions"), "one_shot")
    api = ApiClient(Client(enforce_csrf_checks=True), ApiToken.issue(users["admin"], "admin")[1])
    for name in ("update", "copy", "launch"):
        by_page = through(lambda name=name: ACTIONS[name].page(signed_in(users["admin"]), export, None), page_code)
        by_api = through(lambda name=name: ACTIONS[name].api(api, export, None), api_code)
        assert by_page == by_api, name
        assert by_page[0] == "", name


# Double clicks: the second one is a quiet no-op ---------------------------------------


def test_a_second_unschedule_cancel_and_launch_change_nothing_and_show_no_error_page(users, demo_database):
    owner = users["owner"]
    dataset = demo_database.datasets.get(name="interactions")

    repeating = actions.schedule(owner, make_export(owner, dataset, "incremental"))
    unschedule = reverse("exports-unschedule", args=[repeating.id])
    assert refusal_of(signed_in(owner).post(unschedule)) == ""
    second = signed_in(owner).post(unschedule, follow=True)
    assert second.status_code == 200
    assert "is a draft already" in second.content.decode()
    repeating.refresh_from_db()
    assert repeating.status == Export.Status.DRAFT

    one_shot = make_export(owner, dataset, "one_shot")
    launch = reverse("exports-launch", args=[one_shot.id])
    first = signed_in(owner).post(launch)
    run = one_shot.runs.get()
    assert first.url == run.get_absolute_url()
    again = signed_in(owner).post(launch)
    assert refusal_of(again) == "ALREADY_RUNNING"
    assert again.url == run.get_absolute_url()
    assert one_shot.runs.count() == 1

    cancel = reverse("runs-cancel", args=[run.id])
    assert refusal_of(signed_in(owner).post(cancel)) == ""
    second_cancel = signed_in(owner).post(cancel, follow=True)
    assert second_cancel.status_code == 200
    assert b"cancelled already" in second_cancel.content
    run.refresh_from_db()
    assert run.status == Run.Status.CANCELLED
    # The double click's message is information, not an error.
    [message] = second_cancel.context["messages"]
    assert message.level_tag == "info"
    assert message.extra_tags == "NOT_IN_PROGRESS"


def test_a_launch_on_a_busy_dataset_offers_to_queue_anyway_on_the_page(client, users, demo_database):
    owner = users["owner"]
    client.force_login(owner)
    dataset = demo_database.datasets.get(name="interactions")
    first = make_export(owner, dataset, "one_shot")
    second = make_export(owner, dataset, "one_shot")
    busy = actions.launch(owner, first)
    response = client.post(reverse("exports-launch", args=[second.id]))
    assert refusal_of(response) == "DATASET_BUSY"
    page = client.get(response.url).content.decode()
    assert "Queue anyway" in page
    assert str(busy.id) in page
    queued = client.post(reverse("exports-launch", args=[second.id]), {"queue_anyway": "1"})
    assert queued.url == second.runs.get().get_absolute_url()


# Malformed query values on Manage Exports ----------------------------------------------


@pytest.mark.parametrize(
    "query",
    ["database=²", "database=99999999999999999999999999", "database=-1", "page=²", "q=%00", "tab=%00", "sort=²"],
)
def test_a_malformed_filter_is_ignored(client, users, demo_database, query):
    client.force_login(users["owner"])
    assert client.get(f"{reverse('exports-list')}?{query}").status_code == 200


MANAGE_PARAMETERS = ["tab", "q", "database", "data_type", "export_type", "status", "sort", "page"]


@settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    query=st.dictionaries(
        st.sampled_from(MANAGE_PARAMETERS),
        st.lists(st.text(max_size=30), min_size=1, max_size=3),
        min_size=1,
    ),
    tab=st.sampled_from(["draft", "scheduled", "in_progress", "finished"]),
)
def test_any_query_string_answers_the_manage_exports_page(client, users, demo_database, query, tab):
    client.force_login(users["owner"])
    params = {"tab": [tab], **query}
    url = f"{reverse('exports-list')}?{urlencode(params, doseq=True)}"
    assert client.get(url).status_code == 200, url
    assert client.get(url, HTTP_HX_REQUEST="true").status_code == 200, url


# Rules the review found missing -----------------------------------------------------------


def test_a_scheduled_one_shot_run_now_runs_once_and_launch_points_to_run_now(users, demo_database):
    owner = users["owner"]
    one_shot = actions.schedule(owner, make_export(owner, demo_database.datasets.get(name="orders"), "one_shot"))
    with pytest.raises(actions.ActionRefused) as refused:
        actions.launch(owner, one_shot)
    assert refused.value.code == "NOT_A_DRAFT"
    run = actions.run_now(owner, one_shot)
    one_shot.refresh_from_db()
    assert (one_shot.status, one_shot.next_run_at) == (Export.Status.FINISHED, None)
    Run.objects.filter(id=run.id).update(status=Run.Status.SUCCEEDED)
    assert tick(one_shot.schedule_start + timedelta(minutes=1)).created == []  # not a second time at its start
    assert one_shot.runs.count() == 1


def test_saving_a_draft_keeps_the_state_that_moved_since_it_was_read(users, demo_database):
    owner = users["owner"]
    export = make_export(owner, demo_database.datasets.get(name="interactions"), "incremental")
    stale = Export.objects.get(id=export.id)
    Export.objects.filter(id=export.id).update(watermark={"column": "id", "value": "99"})  # a run finished
    stale.rows_per_file = 10
    actions.save_draft(owner, stale)
    export.refresh_from_db()
    assert (export.rows_per_file, export.watermark["value"]) == (10, "99")


def test_a_failed_run_is_run_again_once(users, demo_database):
    owner = users["owner"]
    export = make_export(owner, demo_database.datasets.get(name="interactions"), "one_shot")
    failed = put_in_state(export, "failed_run")
    again = actions.relaunch(owner, failed)
    Run.objects.filter(id=again.id).update(status=Run.Status.FAILED, error_code=Run.ErrorCode.TIMEOUT)
    response = signed_in(owner).post(reverse("runs-relaunch", args=[failed.id]))
    assert refusal_of(response) == "NOT_RELAUNCHABLE"
    assert response.url == again.get_absolute_url()  # the run that ran it again
    with pytest.raises(actions.ActionRefused, match="run again already"):
        actions.retry(failed, timezone.now() + timedelta(days=1))
    assert Run.objects.filter(relaunch_of=failed).count() == 1


def test_a_refusal_asked_for_by_htmx_reloads_the_page_it_belongs_to(users, demo_database):
    owner = users["owner"]
    export = make_export(owner, demo_database.datasets.get(name="interactions"), "incremental")
    put_in_state(export, "draft_running")
    response = signed_in(owner).get(reverse("exports-delete", args=[export.id]), HTTP_HX_REQUEST="true")
    assert response.status_code == 204
    assert response["HX-Redirect"] == reverse("exports-list")


def test_a_connector_with_a_run_going_cannot_be_deleted(users, demo_database):
    owner = users["owner"]
    connector = Connector.objects.create(name="Lake", kind=Connector.Kind.S3, owner=owner, options={"bucket": "b"})
    export = make_export(owner, demo_database.datasets.get(name="orders"), "one_shot")
    export.connector = connector
    export.save()
    run = actions.launch(owner, export)
    assert (run.destination_kind, run.connector_id, run.destination) == ("s3", connector.id, "s3://b/")
    Export.objects.filter(id=export.id).update(connector=None)  # the export moved on; its run did not
    browser = signed_in(users["admin"])  # admins manage destinations
    assert "can't be deleted yet" in browser.get(reverse("connectors-delete", args=[connector.id])).content.decode()
    browser.post(reverse("connectors-delete", args=[connector.id]))
    assert Connector.objects.filter(id=connector.id).exists()


def test_a_lost_run_says_when_it_is_retried_then_links_to_its_retry(users, demo_database, settings):
    """A work horse killed: the report and the e-mail say when the automatic retry comes;
    once it came, the report links to it."""
    settings.EXPORT_RETRY_BACKOFF = 60
    owner = users["owner"]
    export = make_export(owner, demo_database.datasets.get(name="interactions"), "one_shot")
    Export.objects.filter(id=export.id).update(report_recipients="ops@example.com")
    run = actions.queue_run(export, user=owner, enqueue=False)
    Run.claim(run.id)

    horse_died(str(run.id), "signal 9")

    run.refresh_from_db()
    assert (run.status, run.error_code) == (Run.Status.FAILED, Run.ErrorCode.WORKER_LOST)
    assert "died (signal 9)" in run.error_message
    due = run.finished_at + timedelta(seconds=60)
    page = signed_in(owner).get(reverse("runs-detail", args=[run.id])).content.decode()
    assert f"automatically at {timezone.localtime(due):%Y-%m-%d %H:%M:%S}" in page
    assert "attempt 2 of 3" in page
    [message] = mail.outbox
    assert f"Retry:        automatically at {due:%Y-%m-%d %H:%M:%S} UTC, attempt 2 of 3" in message.body

    with pytest.raises(actions.ActionRefused, match="it is retried at"):
        actions.retry(run, timezone.now())
    again = actions.retry(run, due)
    page = signed_in(owner).get(reverse("runs-detail", args=[run.id])).content.decode()
    assert reverse("runs-detail", args=[again.id]) in page
    assert "attempt 2</a> (automatic retry, queued)" in page
