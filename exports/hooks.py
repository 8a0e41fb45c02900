"""After-export hooks: a signed POST to each URL an export names, when one of its runs
succeeds or fails (docs/hooks.md). This module keeps the calls going; exports/webhook.py
sends one.

1. A run's outcome and its calls commit together (`HookCall.record`, from `Run.succeed`
   and `Run.fail`), each call with its first attempt queued: a worker that dies right
   after the outcome committed loses no call.
2. The worker that ended the run enqueues those attempts on the hooks queue
   (`enqueue_calls_of`). The scheduler's tick (`tick`) queues the retries that are due,
   enqueues again what Redis lost, and closes attempts whose worker died mid-call.
3. A worker sends an attempt (`webhook.send_attempt`): it claims the row (a duplicate job is a
   no-op), builds the message (the run's API document), signs it the Standard Webhooks
   way with the hook's secret, and POSTs it through the outbound address policy,
   without following redirects. It records the status code and the duration, and after a
   failure `finish` sets the next retry: after each of EXPORT_HOOK_RETRY_DELAYS in turn, never
   later than EXPORT_HOOK_RETRY_HOURS after the run ended.

Every attempt of a call carries the same `webhook-id`: a receiver that saw it already
drops the repeat. A 2xx answer delivers the call; nothing else the receiver says is kept.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial

import django_rq
from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from exports.dispatch import no_job_will_run
from exports.models import HookAttempt, HookCall, Run

logger = logging.getLogger(__name__)


def job_id(attempt_id: int) -> str:
    return f"hook-{attempt_id}"


# Enqueueing ----------------------------------------------------------------------------


def enqueue(attempt_ids: Iterable[int]) -> None:
    """Hand attempts to the workers. Marked first: an attempt Redis then fails to take is
    enqueued again by the tick."""
    queue = django_rq.get_queue(settings.HOOKS_QUEUE)
    for attempt_id in attempt_ids:
        HookAttempt.objects.filter(id=attempt_id).update(enqueued_at=timezone.now())
        queue.enqueue("exports.webhook.send_attempt", attempt_id, job_id=job_id(attempt_id))


def enqueue_quietly(attempt_ids: Iterable[int]) -> None:
    """Enqueue; Redis down only delays the attempts until the tick finds them."""
    try:
        enqueue(attempt_ids)
    except Exception:
        logger.warning("hook attempts could not be enqueued; the scheduler's tick does", exc_info=True)


def enqueue_calls_of(run: Run) -> None:
    """After a run ended (its worker, or whoever found it lost): its calls' first attempts
    go to the workers."""
    queued = HookAttempt.objects.filter(call__run=run, started_at__isnull=True, enqueued_at__isnull=True)
    enqueue_quietly(list(queued.values_list("id", flat=True)))


def send_again(call: HookCall, user) -> HookAttempt | None:
    """One more attempt of a call, whatever became of the others, enqueued once the
    transaction commits; None while one of its attempts is queued or going (a call is
    never sent twice at once). `actions.send_hook_again` checks who may, then calls this."""
    call = _locked_call(call.id)
    if has_open_attempt(call):
        return None
    attempt = HookAttempt.objects.create(call=call, manual=True, requested_by=user)
    transaction.on_commit(partial(enqueue_quietly, [attempt.id]), robust=True)
    return attempt


def retry_at(call: HookCall, failed: int, now: datetime) -> datetime | None:
    """When the attempt after `failed` automatic failures is due; None: no more."""
    delays = settings.EXPORT_HOOK_RETRY_DELAYS
    deadline = call.created_at + timedelta(hours=settings.EXPORT_HOOK_RETRY_HOURS)
    if failed > len(delays) or now >= deadline:
        return None
    return min(now + timedelta(seconds=delays[failed - 1]), deadline)


@dataclass
class Answer:
    """What an attempt got: the receiver's status code, or why there was none (in our
    words, never quoting the receiver)."""

    status_code: int | None = None
    error: str = ""

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


def _locked_call(call_id) -> HookCall:
    """The call's row as it is now, locked until the transaction ends (PostgreSQL;
    SQLite serialises writers anyway): whoever starts or ends an attempt holds it."""
    rows = HookCall.objects.filter(id=call_id)
    if connection.features.has_select_for_update:
        rows = rows.select_for_update()
    return rows.get()


def has_open_attempt(call: HookCall) -> bool:
    return HookAttempt.objects.filter(call=call, finished_at__isnull=True).exists()


def finish(attempt: HookAttempt, answer: Answer, now: datetime, duration_ms: int | None) -> bool:
    """Record the attempt; the call is delivered, or its next retry set, or given up.
    False when the attempt was closed already (the tick took its worker for dead)."""
    with transaction.atomic():
        call = _locked_call(attempt.call_id)
        closed = HookAttempt.objects.filter(id=attempt.id, finished_at__isnull=True).update(
            finished_at=now, duration_ms=duration_ms, status_code=answer.status_code, error=answer.error[:500]
        )
        if not closed:
            return False
        if answer.ok:
            if not call.is_delivered:
                HookCall.objects.filter(id=call.id).update(
                    status=HookCall.Status.DELIVERED, delivered_at=now, next_attempt_at=None
                )
        elif not attempt.manual and call.is_pending:
            failed = call.attempts + 1
            retry = None if call.hook_id is None else retry_at(call, failed, now)
            HookCall.objects.filter(id=call.id).update(
                attempts=failed,
                next_attempt_at=retry,
                status=HookCall.Status.PENDING if retry else HookCall.Status.GAVE_UP,
            )
            HookAttempt.objects.filter(id=attempt.id).update(next_retry_at=retry)
    return True


# The scheduler's part ------------------------------------------------------------------


@dataclass
class HookTick:
    retried: int = 0
    requeued: int = 0
    abandoned: int = 0


def tick(now: datetime | None = None) -> HookTick:
    """1. Calls whose retry is due get their next attempt.
    2. Queued attempts Redis lost (or never got) are enqueued again.
    3. Attempts whose worker died mid-call count as failed, and the call goes on."""
    now = now or timezone.now()
    report = HookTick()
    due = HookCall.objects.filter(status=HookCall.Status.PENDING, next_attempt_at__lte=now)
    for call_id in list(due.order_by("next_attempt_at").values_list("id", flat=True)[:1000]):
        with transaction.atomic():
            call = _locked_call(call_id)
            # Due still (another scheduler may have been first), and not being sent by a
            # Send again: the retry waits for that attempt's answer.
            if not call.is_pending or call.next_attempt_at is None or call.next_attempt_at > now:
                continue
            if has_open_attempt(call):
                continue
            HookCall.objects.filter(id=call.id).update(next_attempt_at=None)
            attempt = HookAttempt.objects.create(call=call)
            transaction.on_commit(partial(enqueue_quietly, [attempt.id]), robust=True)
            report.retried += 1

    grace = now - timedelta(seconds=settings.EXPORT_REQUEUE_AFTER)
    redis = django_rq.get_connection(settings.HOOKS_QUEUE)
    waiting = HookAttempt.objects.filter(started_at__isnull=True, queued_at__lt=grace)
    for attempt in waiting[:1000]:
        if attempt.enqueued_at is None or no_job_will_run(job_id(attempt.id), redis):
            enqueue([attempt.id])
            report.requeued += 1

    # RQ stops a call's job after HOOK_JOB_TIMEOUT (its attempt is then recorded as failed):
    # an attempt open longer than that, and a margin, lost its worker.
    stale = now - timedelta(seconds=settings.HOOK_JOB_TIMEOUT + settings.EXPORT_HEARTBEAT_TIMEOUT)
    for attempt in HookAttempt.objects.filter(finished_at__isnull=True, started_at__lt=stale):
        if finish(attempt, Answer(error="the worker stopped during the call: no answer was recorded"), now, None):
            report.abandoned += 1
    return report
