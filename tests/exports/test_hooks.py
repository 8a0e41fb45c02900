"""After-export hooks end to end: a real worker runs the export and makes the call, a
real local receiver gets it and verifies it with the `standardwebhooks` library, the
scheduler's tick retries it (its clock moved on rather than slept through)."""

from __future__ import annotations

import hashlib
import json
import threading
from datetime import timedelta
from urllib.parse import urlsplit

import django_rq
import pytest
from django.conf import settings
from django.db import connection
from django.test import Client, override_settings
from django.utils import timezone
from standardwebhooks import Webhook, WebhookVerificationError

from exports import actions, hooks, webhook
from exports.actions import ActionRefused, queue_run
from exports.models import Export, Hook, HookAttempt, HookCall, Run
from tests.receiver import Receiver

pytestmark = pytest.mark.django_db(transaction=True)


def make_export(owner, dataset, **fields) -> Export:
    fields.setdefault("name", "Nightly orders")
    return Export.objects.create(owner=owner, dataset=dataset, **fields)


@pytest.fixture
def receiver():
    receiver = Receiver().start()
    yield receiver
    receiver.stop()


@pytest.fixture
def orders(demo_database):
    return demo_database.datasets.get(name="orders")


def verified(received, secret: str) -> dict:
    """The call's payload, once its signature checks out (as a receiver would check it)."""
    return Webhook(secret).verify(received.body, received.headers)


def test_a_receiver_gets_a_signed_call_for_a_success_and_for_a_failure(users, orders, receiver, worker):
    owner = users["owner"]
    export = make_export(owner, orders)
    _hook, secret = actions.add_hook(owner, export, receiver.url, Hook.Events.BOTH)
    succeeded = queue_run(export, user=owner)
    worker()
    succeeded.refresh_from_db()
    assert succeeded.status == Run.Status.SUCCEEDED, succeeded.error_message

    [call] = receiver.wait_for(1)
    payload = verified(call, secret)
    assert call.headers["webhook-id"] == HookCall.objects.get(run=succeeded).webhook_id
    assert payload["type"] == "export.run.succeeded"
    data = payload["data"]
    assert (data["Id"], data["ExportId"], data["ExportName"]) == (str(succeeded.id), str(export.id), export.name)
    assert data["Status"] == "Success"
    assert "Worker" not in data  # our machines' names stay ours
    assert data["ErrorCode"] is None
    assert data["Rows"] == succeeded.row_count > 0
    [run_file] = succeeded.files.all()
    [sent_file] = data["Files"]
    assert (sent_file["Name"], sent_file["SizeInBytes"], sent_file["Rows"], sent_file["Sha256"]) == (
        run_file.name,
        run_file.size_bytes,
        run_file.rows,
        run_file.sha256,
    )
    # A Desktop run's files come with a signed URL that works without a session.
    url = urlsplit(sent_file["Url"])
    response = Client().get(f"{url.path}?{url.query}")
    assert response.status_code == 200
    assert hashlib.sha256(b"".join(response.streaming_content)).hexdigest() == run_file.sha256

    # A tampered body, or another secret, fails the check.
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(call.body.replace(b"Success", b"Failed!"), call.headers)
    with pytest.raises(WebhookVerificationError):
        verified(call, Hook.new_secret())

    Export.objects.filter(id=export.id).update(filters=[{"column": "total_amount", "operator": "gt", "value": "x"}])
    failed = queue_run(export, user=owner)
    worker()
    failed.refresh_from_db()
    assert failed.status == Run.Status.FAILED
    second = receiver.wait_for(2)[1]
    payload = verified(second, secret)
    assert payload["type"] == "export.run.failed"
    assert payload["data"]["Id"] == str(failed.id)
    assert payload["data"]["Status"] == "Failed"
    assert payload["data"]["ErrorCode"] == "SOURCE_QUERY_FAILED"
    assert "'x' is not a decimal number" in payload["data"]["ErrorMessage"]
    assert payload["data"]["Files"] == []
    assert second.headers["webhook-id"] != call.headers["webhook-id"]
    attempt = HookAttempt.objects.get(call__run=failed)
    assert attempt.status_code == 200
    assert attempt.duration_ms is not None
    assert attempt.next_retry_at is None


def test_a_hook_hears_only_of_the_outcomes_it_is_for(users, orders, receiver, worker):
    owner = users["owner"]
    export = make_export(owner, orders, filters=[{"column": "total_amount", "operator": "gt", "value": "x"}])
    _, success_secret = actions.add_hook(owner, export, receiver.url + "?for=success", Hook.Events.SUCCESS)
    _, failure_secret = actions.add_hook(owner, export, receiver.url + "?for=failure", Hook.Events.FAILURE)
    failed = queue_run(export, user=owner)
    worker()
    [call] = receiver.wait_for(1)
    assert call.path.endswith("?for=failure")
    assert verified(call, failure_secret)["data"]["Id"] == str(failed.id)
    Export.objects.filter(id=export.id).update(filters=[])
    succeeded = queue_run(export, user=owner)
    worker()
    calls = receiver.wait_for(2)
    assert len(calls) == 2
    assert calls[1].path.endswith("?for=success")
    assert verified(calls[1], success_secret)["data"]["Id"] == str(succeeded.id)
    # A cancelled run is neither: no call.
    cancelled = queue_run(export, user=owner)
    actions.cancel(owner, cancelled)
    worker()
    assert not HookCall.objects.filter(run=cancelled).exists()
    assert len(receiver.received) == 2


def test_a_receiver_down_for_three_attempts_gets_the_call_on_the_fourth_exactly_once(users, orders, worker):
    owner = users["owner"]
    down = Receiver()  # its port has nothing listening yet
    export = make_export(owner, orders)
    _, secret = actions.add_hook(owner, export, down.url)
    run = queue_run(export, user=owner)
    worker()  # the run, then the first attempt
    call = HookCall.objects.get(run=run)
    clock = timezone.now()
    for attempt in (2, 3):
        call.refresh_from_db()
        assert (call.status, call.attempts) == (HookCall.Status.PENDING, attempt - 1)
        clock = call.next_attempt_at + timedelta(seconds=1)
        assert hooks.tick(clock).retried == 1
        worker()
    call.refresh_from_db()
    assert call.attempts == 3
    failures = list(call.attempt_log.all())
    assert [a.status_code for a in failures] == [None, None, None]
    assert all("could not be reached" in a.error for a in failures)
    assert all(a.next_retry_at is not None for a in failures)
    # Back-off: each wait is longer than the one before.
    waits = [(a.next_retry_at - a.finished_at).total_seconds() for a in failures]
    assert waits == sorted(waits)
    assert waits[0] < waits[-1]

    down.start()
    try:
        assert hooks.tick(call.next_attempt_at + timedelta(seconds=1)).retried == 1
        worker()
        [received] = down.wait_for(1)
        assert verified(received, secret)["data"]["Id"] == str(run.id)
        call.refresh_from_db()
        assert call.status == HookCall.Status.DELIVERED
        assert call.attempts == 3  # three failures; the fourth delivered
        assert call.attempt_log.count() == 4
        # Later ticks, a day on, send nothing more.
        for hours in (1, 30):
            report = hooks.tick(clock + timedelta(hours=hours))
            assert report.retried == report.requeued == 0
            worker()
        assert len(down.received) == 1
    finally:
        down.stop()


def test_a_call_gives_up_after_its_retries_and_its_24_hours(users, orders, worker):
    owner = users["owner"]
    export = make_export(owner, orders)
    actions.add_hook(owner, export, Receiver().url)
    run = queue_run(export, user=owner)
    worker()
    call = HookCall.objects.get(run=run)
    for _ in range(len(settings.EXPORT_HOOK_RETRY_DELAYS) + 3):
        call.refresh_from_db()
        if call.status != HookCall.Status.PENDING:
            break
        hooks.tick(call.next_attempt_at + timedelta(seconds=1))
        worker()
    call.refresh_from_db()
    assert call.status == HookCall.Status.GAVE_UP
    assert call.next_attempt_at is None
    assert call.attempt_log.count() == len(settings.EXPORT_HOOK_RETRY_DELAYS) + 1
    assert call.attempt_log.last().next_retry_at is None


def test_the_retry_schedule_backs_off_and_ends_within_24_hours(users, orders):
    export = make_export(users["owner"], orders)
    run = Run.objects.create(export=export, status=Run.Status.SUCCEEDED)
    start = timezone.now()
    call = HookCall.objects.create(run=run, url="http://127.0.0.1/", event="export.run.succeeded", created_at=start)
    now, due = start, []
    for failed in range(1, 20):
        retry = hooks.retry_at(call, failed, now)
        if retry is None:
            break
        due.append(retry)
        now = retry
    gaps = [(b - a).total_seconds() for a, b in zip([start, *due], due, strict=False)]
    assert gaps[:6] == [5, 300, 1800, 7200, 18000, 36000]
    assert due[-1] == start + timedelta(hours=24)  # the last try is at the deadline, not past it
    assert hooks.retry_at(call, 1, start + timedelta(hours=24)) is None


def test_a_call_whose_job_redis_lost_is_sent_once_by_the_tick(users, orders, receiver, worker):
    export = make_export(users["owner"], orders)
    actions.add_hook(users["owner"], export, receiver.url)
    run = Run.objects.create(export=export, status=Run.Status.RUNNING, started_at=timezone.now())
    assert run.fail(Run.ErrorCode.TIMEOUT, "too long")
    hooks.enqueue_calls_of(run)
    queue = django_rq.get_queue(settings.HOOKS_QUEUE)
    assert queue.count == 1
    queue.empty()  # Redis lost it
    assert hooks.tick(timezone.now() + timedelta(seconds=5)).requeued == 1
    worker()
    assert len(receiver.wait_for(1)) == 1
    # Sent: later ticks find nothing to enqueue again.
    assert hooks.tick(timezone.now() + timedelta(seconds=5)).requeued == 0
    worker()
    assert len(receiver.received) == 1


def test_an_attempt_whose_worker_died_mid_call_counts_as_failed_and_is_retried(users, orders):
    export = make_export(users["owner"], orders)
    _hook, _ = actions.add_hook(users["owner"], export, Receiver().url)
    run = Run.objects.create(export=export, status=Run.Status.RUNNING, started_at=timezone.now())
    assert run.fail(Run.ErrorCode.INTERNAL_ERROR, "boom")
    attempt = HookAttempt.objects.get(call__run=run)
    HookAttempt.objects.filter(id=attempt.id).update(started_at=timezone.now(), enqueued_at=timezone.now())
    later = timezone.now() + timedelta(minutes=5)
    assert hooks.tick(later).abandoned == 1
    attempt.refresh_from_db()
    assert attempt.finished_at is not None
    assert "the worker stopped during the call" in attempt.error
    call = attempt.call
    call.refresh_from_db()
    assert (call.status, call.attempts) == (HookCall.Status.PENDING, 1)
    assert call.next_attempt_at == attempt.next_retry_at is not None


def test_a_slow_worker_answering_after_the_tick_closed_its_attempt_changes_nothing(users, orders):
    export = make_export(users["owner"], orders)
    actions.add_hook(users["owner"], export, Receiver().url)
    run = Run.objects.create(export=export, status=Run.Status.RUNNING, started_at=timezone.now())
    assert run.fail(Run.ErrorCode.TIMEOUT, "too long")
    attempt = HookAttempt.objects.get(call__run=run)
    HookAttempt.objects.filter(id=attempt.id).update(started_at=timezone.now(), enqueued_at=timezone.now())
    assert hooks.tick(timezone.now() + timedelta(minutes=5)).abandoned == 1
    call = HookCall.objects.get(id=attempt.call_id)
    retry = call.next_attempt_at
    # The worker was alive after all, and answers now: too late, nothing moves.
    assert not hooks.finish(attempt, hooks.Answer(status_code=500, error="x"), timezone.now(), 5)
    call.refresh_from_db()
    assert (call.attempts, call.next_attempt_at, call.status) == (1, retry, HookCall.Status.PENDING)
    attempt.refresh_from_db()
    assert attempt.status_code is None
    assert "the worker stopped" in attempt.error


def test_a_retry_due_during_a_send_again_waits_for_its_answer(users, orders):
    export = make_export(users["owner"], orders)
    actions.add_hook(users["owner"], export, Receiver().url)
    run = Run.objects.create(export=export, status=Run.Status.RUNNING, started_at=timezone.now())
    assert run.fail(Run.ErrorCode.TIMEOUT, "too long")
    call = HookCall.objects.get(run=run)
    first = call.attempt_log.get()
    hooks.finish(first, hooks.Answer(error="down"), timezone.now(), 3)
    call.refresh_from_db()
    assert call.next_attempt_at is not None
    actions.send_hook_again(users["owner"], call)  # queued, not answered yet
    later = call.next_attempt_at + timedelta(seconds=1)
    assert hooks.tick(later).retried == 0
    manual = call.attempt_log.get(manual=True)
    hooks.finish(manual, hooks.Answer(error="down"), timezone.now(), 3)
    assert hooks.tick(later).retried == 1


def test_a_host_that_stopped_resolving_is_a_failed_attempt_with_the_reason(users, orders):
    answer = webhook.post("https://no-such-host.invalid/hooks", "{}", {})
    assert answer.status_code is None
    assert "no-such-host.invalid can't be resolved" in answer.error


def test_the_outcome_and_its_calls_commit_together(users, orders):
    """The calls are rows of the run's own transaction: a worker killed right after the
    outcome committed leaves them for the tick to send."""
    export = make_export(users["owner"], orders)
    actions.add_hook(users["owner"], export, Receiver().url)
    run = Run.objects.create(export=export, status=Run.Status.RUNNING, started_at=timezone.now())
    assert run.fail(Run.ErrorCode.TIMEOUT, "too long")
    [attempt] = HookAttempt.objects.filter(call__run=run)
    assert attempt.enqueued_at is None  # nobody enqueued it: its worker "died"
    assert hooks.tick(timezone.now() + timedelta(seconds=5)).requeued == 1
    attempt.refresh_from_db()
    assert attempt.enqueued_at is not None
    assert django_rq.get_queue(settings.HOOKS_QUEUE).fetch_job(hooks.job_id(attempt.id)) is not None


def test_a_redirect_is_not_followed(users, orders, worker):
    redirecting = Receiver(status=302).start()
    try:
        export = make_export(users["owner"], orders)
        actions.add_hook(users["owner"], export, redirecting.url)
        run = queue_run(export, user=users["owner"])
        worker()
        attempt = HookAttempt.objects.get(call__run=run)
        assert attempt.status_code == 302
        assert "redirects are not followed" in attempt.error
        assert attempt.next_retry_at is not None
        assert len(redirecting.received) == 1
    finally:
        redirecting.stop()


def test_send_again_replays_the_call_with_its_webhook_id(users, orders, receiver, worker):
    owner = users["owner"]
    export = make_export(owner, orders)
    _, secret = actions.add_hook(owner, export, receiver.url)
    run = queue_run(export, user=owner)
    worker()
    [first] = receiver.wait_for(1)
    call = HookCall.objects.get(run=run)
    actions.send_hook_again(owner, call)
    # A second press while it is queued is a quiet no-op.
    with pytest.raises(ActionRefused) as refused:
        actions.send_hook_again(owner, call)
    assert refused.value.code == actions.ALREADY_SENDING
    assert refused.value.already
    worker()
    second = receiver.wait_for(2)[1]
    assert second.headers["webhook-id"] == first.headers["webhook-id"]
    assert verified(second, secret)["data"]["Id"] == str(run.id)
    manual = call.attempt_log.last()
    assert manual.manual
    assert manual.requested_by == owner
    assert manual.status_code == 200
    with pytest.raises(ActionRefused) as refused:
        actions.send_hook_again(users["viewer"], call)
    assert refused.value.code == actions.FORBIDDEN


# Saving hooks: who may, and which addresses -----------------------------------------


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://10.1.2.3/hooks", "10.1.2.3 is private"),
        ("https://169.254.169.254/latest/meta-data/", "link-local"),
        ("http://[::ffff:192.168.0.7]/x", "private"),
        ("ftp://127.0.0.1/x", "must be an https:// URL"),
        ("https://user:pw@127.0.0.1/x", "must not carry a user name or password"),
        ("https://no-such-host.invalid/x", "can't be resolved"),
        ("", "enter the URL to call"),
    ],
)
def test_a_hook_on_a_disallowed_address_is_refused_when_saved(users, orders, url, reason):
    export = make_export(users["owner"], orders)
    with pytest.raises(ActionRefused) as refused:
        actions.add_hook(users["owner"], export, url)
    assert refused.value.code == actions.VALIDATION_FAILED
    assert reason in refused.value.fields["url"][0]
    assert not export.hooks.exists()


def test_loopback_is_refused_unless_its_network_is_allowed(users, orders):
    export = make_export(users["owner"], orders)
    with override_settings(EXPORTSITE_ALLOWED_NETWORKS=""), pytest.raises(ActionRefused) as refused:
        actions.add_hook(users["owner"], export, "http://127.0.0.1:9/hooks")
    assert "127.0.0.1 is loopback" in refused.value.message
    # Outside the allowed networks, plain http is refused too.
    with override_settings(EXPORTSITE_ALLOWED_NETWORKS=""), pytest.raises(ActionRefused) as refused:
        actions.add_hook(users["owner"], export, "http://8.8.8.8/hooks")
    assert "https://" in refused.value.message
    hook, secret = actions.add_hook(users["owner"], export, "http://127.0.0.1:9/hooks")
    assert secret.startswith("whsec_")
    assert hook.secret == secret


def test_the_call_checks_the_address_again(users, orders):
    """A host the policy allowed when the hook was saved, refused when it is called."""
    with override_settings(EXPORTSITE_ALLOWED_NETWORKS=""):
        answer = webhook.post("http://127.0.0.1:9/hooks", "{}", {})
    assert answer.status_code is None
    assert "127.0.0.1 is loopback" in answer.error


def test_an_unknown_event_choice_is_refused(users, orders):
    export = make_export(users["owner"], orders)
    with pytest.raises(ActionRefused) as refused:
        actions.add_hook(users["owner"], export, "http://127.0.0.1:9/", "sometimes")
    assert "choose one of success, failure, both" in refused.value.fields["events"][0]


def test_only_those_who_may_change_the_export_change_its_hooks(users, orders):
    export = make_export(users["owner"], orders)
    for who in ("viewer", "teammate", "nobody"):
        with pytest.raises(ActionRefused) as refused:
            actions.add_hook(users[who], export, "http://127.0.0.1:9/")
        assert refused.value.code == actions.FORBIDDEN
    hook, _ = actions.add_hook(users["admin"], export, "http://127.0.0.1:9/")
    with pytest.raises(ActionRefused):
        actions.remove_hook(users["viewer"], hook)
    actions.remove_hook(users["owner"], hook)
    assert not export.hooks.exists()


def test_a_custom_exports_hooks_are_the_operators(users, orders):
    export = make_export(users["owner"], orders, managed=True)
    with pytest.raises(ActionRefused) as refused:
        actions.add_hook(users["owner"], export, "http://127.0.0.1:9/")
    assert refused.value.code == actions.CUSTOM_EXPORT
    actions.add_hook(users["superuser"], export, "http://127.0.0.1:9/")
    assert export.hooks.count() == 1


@override_settings(EXPORT_HOOKS_PER_EXPORT=2)
def test_an_export_has_a_limited_number_of_hooks(users, orders):
    export = make_export(users["owner"], orders)
    for n in range(2):
        actions.add_hook(users["owner"], export, f"http://127.0.0.1:9/{n}")
    with pytest.raises(ActionRefused) as refused:
        actions.add_hook(users["owner"], export, "http://127.0.0.1:9/3")
    assert "at most 2 hooks" in refused.value.message


def test_a_removed_hooks_calls_stay_on_the_report_and_stop(users, orders):
    export = make_export(users["owner"], orders)
    hook, _ = actions.add_hook(users["owner"], export, "http://127.0.0.1:9/")
    run = Run.objects.create(export=export, status=Run.Status.RUNNING, started_at=timezone.now())
    run.fail(Run.ErrorCode.TIMEOUT, "too long")
    call = HookCall.objects.get(run=run)
    actions.remove_hook(users["owner"], hook)
    call.refresh_from_db()
    assert (call.hook, call.status, call.url) == (None, HookCall.Status.GAVE_UP, "http://127.0.0.1:9/")
    with pytest.raises(ActionRefused) as refused:
        actions.send_hook_again(users["owner"], call)
    assert refused.value.code == actions.HOOK_REMOVED
    # Its queued attempt is dropped, unsent.
    attempt = call.attempt_log.get()
    assert webhook.send_attempt(attempt.id) == "skipped"
    assert not HookAttempt.objects.filter(id=attempt.id).exists()


def test_the_secret_is_encrypted_at_rest(users, orders):
    export = make_export(users["owner"], orders)
    hook, secret = actions.add_hook(users["owner"], export, "http://127.0.0.1:9/")
    with connection.cursor() as cursor:
        cursor.execute("SELECT secret FROM exports_hook WHERE id = %s", [hook.id])
        [stored] = cursor.fetchone()
    assert secret not in stored
    assert json.dumps(secret) not in stored


def test_the_receiver_example_in_the_docs_verifies_a_real_call(users, orders, worker, capsys):
    """docs/hooks.md's receiver, run as it is written (its secret and port aside)."""
    text = (settings.BASE_DIR / "docs" / "hooks.md").read_text()
    code = text.split("## A receiver in a few lines of Python", 1)[1].split("```python", 1)[1].split("```", 1)[0]
    serve = 'HTTPServer(("0.0.0.0", 8080), Receiver).serve_forever()'
    assert serve in code
    export = make_export(users["owner"], orders)
    port = Receiver().port
    _hook, secret = actions.add_hook(users["owner"], export, f"http://127.0.0.1:{port}/hooks/exports")
    namespace: dict = {}
    exec(code.replace('"whsec_..."', repr(secret)).replace(serve, ""), namespace)
    server = namespace["HTTPServer"](("127.0.0.1", port), namespace["Receiver"])
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        run = queue_run(export, user=users["owner"])
        worker()
        call = HookCall.objects.get(run=run)
        attempt = call.attempt_log.get()
        assert attempt.status_code == 204, attempt.error
        assert namespace["seen"] == {call.webhook_id}
        assert f"export.run.succeeded {export.name} {run.files.get().rows}" in capsys.readouterr().out
    finally:
        server.shutdown()
        server.server_close()
