"""The scheduler's tick: turn due exports into runs, reconcile lost runs, expire old
downloads, keep after-export hook calls going (exports/hooks.py), refresh each source
daily (exports/schema_watch.py). `manage.py scheduler` calls `tick()` every few seconds.

Exactly once, with any number of schedulers: each due export is handled in its own
transaction that locks its row (`select_for_update(skip_locked=True)` on PostgreSQL;
SQLite serialises writers), re-checks that it is still due, and creates the run for one
slot (`actions.start_due_run`); a unique constraint on (export, scheduled_for) backs
this up. Missed slots (the
scheduler was down) collapse into one run for the latest of them. A slot whose previous
run is still going is skipped, and the skip is recorded.

The database is the source of truth, Redis only carries work: a running run whose
worker stopped writing its heartbeat is failed with WORKER_LOST, a queued run whose job
vanished from Redis is enqueued again, queued runs waiting for a place in their
organisation's limit are dispatched (exports/dispatch.py), and runs that failed for a passing reason are
retried automatically, with backoff, up to EXPORT_MAX_ATTEMPTS attempts.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from uuid import UUID

import django_rq
from django.conf import settings
from django.db.models import Exists, OuterRef
from django.utils import timezone

from exports import actions, hooks, jobs, partitions, schema_watch
from exports.delivery import delete_downloads
from exports.dispatch import dispatch, enqueue_run, no_job_will_run
from exports.health import record_tick
from exports.models import DESKTOP, Export, Run, RunPartition, SkippedSlot

logger = logging.getLogger(__name__)


@dataclass
class TickReport:
    created: list[Run] = field(default_factory=list)
    skipped: list[SkippedSlot] = field(default_factory=list)
    lost: list[Run] = field(default_factory=list)
    lost_partitions: list[RunPartition] = field(default_factory=list)
    requeued_partitions: list[RunPartition] = field(default_factory=list)
    requeued: list[Run] = field(default_factory=list)
    retried: list[Run] = field(default_factory=list)
    expired: list[Run] = field(default_factory=list)
    dispatched: list[UUID] = field(default_factory=list)
    hook_calls: hooks.HookTick = field(default_factory=hooks.HookTick)
    refreshed: list[int] = field(default_factory=list)


def tick(now: datetime | None = None) -> TickReport:
    now = now or timezone.now()
    report = TickReport()
    reconcile(now, report)
    start_due(now, report)
    expire_downloads(now, report)
    report.hook_calls = hooks.tick(now)
    report.refreshed = schema_watch.refresh_due(now)
    # Runs that ended, failed or were retried above free places: fill them.
    report.dispatched = dispatch()
    record_tick()
    return report


DUE_BATCH = 500  # measured on SQLite, 10,000 due: 100 at a time 6.9 s, 500 at a time 4.9 s


def start_due(now: datetime, report: TickReport) -> None:
    """Every export due at `now` gets its slot's run, DUE_BATCH at a time
    (`actions.start_due_runs`), until none is due. Another scheduler takes the batches
    this one finds locked, so two share the work."""
    due = Export.objects.filter(status=Export.Status.SCHEDULED, next_run_at__lte=now).order_by("next_run_at", "id")
    seen: set = set()
    while True:
        ids = [export_id for export_id in due.values_list("id", flat=True)[: DUE_BATCH * 4] if export_id not in seen]
        if not ids:
            return
        seen.update(ids)
        batches = [ids[i : i + DUE_BATCH] for i in range(0, len(ids), DUE_BATCH)]
        random.shuffle(batches)  # two schedulers walk the same list from different ends
        for batch in batches:
            for outcome in actions.start_due_runs(batch, now):  # one dispatch in `tick`, for all
                if outcome.run is not None:
                    report.created.append(outcome.run)
                if outcome.skipped is not None:
                    report.skipped.append(outcome.skipped)


def reconcile(now: datetime, report: TickReport | None = None) -> None:
    """Fail runs whose worker died, re-enqueue queued runs Redis lost, retry what may pass."""
    report = report or TickReport()
    stale = now - timedelta(seconds=settings.EXPORT_HEARTBEAT_TIMEOUT)
    lost = Run.objects.filter(status=Run.Status.RUNNING, heartbeat_at__lt=stale) | Run.objects.filter(
        status=Run.Status.RUNNING, heartbeat_at__isnull=True, started_at__lt=stale
    )
    # A partitioned run's partitions have heartbeats of their own (below).
    for run in lost.filter(partition_count=0).select_related("export", "connector"):
        if jobs.lose(
            run,
            f"the worker stopped reporting at {(run.heartbeat_at or run.started_at):%Y-%m-%d %H:%M:%S} UTC "
            "(it was killed, or its machine stopped); nothing was delivered",
        ):
            report.lost.append(run)

    _reconcile_partitions(now, report)

    grace = now - timedelta(seconds=settings.EXPORT_REQUEUE_AFTER)
    redis = django_rq.get_connection(settings.EXPORTS_QUEUE)
    # Only runs the dispatcher handed over are in Redis; the others wait for it.
    for run in Run.objects.filter(status=Run.Status.QUEUED, dispatched_at__lt=grace):
        # Left without a job, the run would hold a place of its organisation's
        # EXPORT_MAX_RUNS_PER_ORG for good.
        if no_job_will_run(str(run.id), redis):
            enqueue_run(run.id)
            report.requeued.append(run)
            logger.warning("run %s: its job was lost from Redis; enqueued again", run.id)

    # Candidates; actions.retry holds the rules, under the export's lock.
    retryable = Run.objects.filter(
        status=Run.Status.FAILED,
        error_code__in=actions.AUTO_RETRY,
        attempt__lt=settings.EXPORT_MAX_ATTEMPTS,
        finished_at__gte=now - timedelta(days=1),
    ).exclude(Exists(Run.objects.filter(relaunch_of=OuterRef("pk"))))
    for run in retryable.select_related("export__dataset"):
        try:
            report.retried.append(actions.retry(run, now))
        except actions.ActionRefused as exc:
            # Most refusals only mean "not now" (waiting, another run going); a dataset
            # that is gone leaves the run failed, and says so.
            if exc.code == actions.CANNOT_LAUNCH:
                logger.warning("run %s: not retried: %s", run.id, exc)


def _reconcile_partitions(now: datetime, report: TickReport) -> None:
    """A partition whose worker died is tried again alone; one whose job Redis lost is
    enqueued again; a run whose last partition's worker died as it delivered the run is
    lost (and retried whole); what ended runs' partitions still hold goes."""
    for partition in partitions.stale_partitions(now):
        at = partition.heartbeat_at or partition.started_at
        if jobs.lose_partition(
            partition,
            f"the worker stopped reporting at {at:%Y-%m-%d %H:%M:%S} UTC (it was killed, or its machine stopped)",
        ):
            report.lost_partitions.append(partition)
    for partition in partitions.failed_under_running(now):
        jobs.retry_or_fail(partition)
    report.requeued_partitions = partitions.requeue_lost_jobs(now)
    for run in partitions.stranded_runs(now):
        if jobs.lose(
            run, "the worker delivering it stopped reporting after every partition was read; nothing was delivered"
        ):
            report.lost.append(run)
    partitions.clear_ended(now)


def expire_downloads(now: datetime, report: TickReport | None = None) -> None:
    """Desktop files past their time are deleted; the run shows as expired."""
    report = report or TickReport()
    # The run's own destination: the export may deliver elsewhere since.
    old = Run.objects.filter(
        status=Run.Status.SUCCEEDED, destination_kind=DESKTOP, expires_at__lte=now
    ).prefetch_related("files")
    for run in old[:200]:
        if not Run.objects.filter(id=run.id, status=Run.Status.SUCCEEDED).update(status=Run.Status.EXPIRED):
            continue
        delete_downloads([run_file.path for run_file in run.files.all()], f"run {run.id}")
        report.expired.append(run)
