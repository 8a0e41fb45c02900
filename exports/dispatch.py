"""Fairness between organisations: which queued runs go to the workers, and when.

A run is created `queued` and waits in the database. The dispatcher hands it to RQ only
while its organisation has fewer than EXPORT_MAX_RUNS_PER_ORG runs in RQ or running, so
the workers only ever pick up work within every organisation's limit: one
organisation's 500 due exports fill its own places, never another's.

- Each organisation's runs go in the order they were created.
- Organisations take turns: the one with the fewest runs in hand goes first, then the
  one whose oldest waiting run is oldest. So B's one run, queued after A's twenty,
  waits behind at most A's first EXPORT_MAX_RUNS_PER_ORG.
- It runs when a run is queued (after its transaction commits), when a run ends (its
  worker calls it), when a queued run is cancelled, and on every scheduler tick, which
  also catches anything a crash left waiting.
- One dispatcher at a time, under a Redis lock: two counting at once could both see a
  free place and fill it twice.

The database says which runs were handed over (`Run.dispatched_at`); Redis only carries
them. A handed-over run whose job Redis lost is enqueued again by the reconciler
(exports/scheduler.py).
"""

from __future__ import annotations

import logging
from collections import Counter
from datetime import timedelta
from uuid import UUID

import django_rq
from django.conf import settings
from django.db.models import Count, Q
from django.utils import timezone
from rq.exceptions import NoSuchJobError
from rq.job import Job, JobStatus

from exports.models import Run

logger = logging.getLogger(__name__)

LOCK = "exportsite:dispatch"
ORGANISATION = "export__sandbox__organisation_id"


# A job in one of these states will not run again.
_ENDED = frozenset({JobStatus.FAILED, JobStatus.STOPPED, JobStatus.CANCELED, JobStatus.FINISHED})


def no_job_will_run(job_id: str, redis) -> bool:
    """Redis lost the job, or it ended (without doing its work, if the database still
    says it is to be done): whoever put it there may enqueue it again."""
    try:
        job = Job.fetch(job_id, connection=redis)
    except NoSuchJobError:
        return True
    return job.get_status(refresh=False) in _ENDED


def enqueue_run(run_id: UUID | str) -> None:
    """Hand a run to the workers. The job id is the run id, and the job only gets the id."""
    queue = django_rq.get_queue(settings.EXPORTS_QUEUE)
    queue.enqueue("exports.jobs.run_export", str(run_id), job_id=str(run_id))


def dispatch(*, wait: float = 30) -> list[UUID]:
    """Hand every run that may start now to RQ; the ids handed over, in order.

    A dispatcher that waits for another then sees the runs queued meanwhile; one that
    waited `wait` seconds in vain raises (redis's LockError)."""
    if not _waiting().exists():
        return []  # most ticks: nothing waits, no lock taken (a run queued now dispatches itself)
    redis = django_rq.get_connection(settings.EXPORTS_QUEUE)
    with redis.lock(LOCK, timeout=60, blocking_timeout=wait):
        return _dispatch(settings.EXPORT_MAX_RUNS_PER_ORG)


def dispatch_quietly() -> None:
    """After a run is queued or ends (in a web request, or a worker): a failure (Redis
    down, a dispatcher stuck) only delays the runs, which wait in the database for the
    scheduler's next tick."""
    try:
        dispatch(wait=5)
    except Exception:
        logger.warning("dispatching runs failed; the scheduler's next tick tries again", exc_info=True)


def _waiting():
    return Run.objects.filter(status=Run.Status.QUEUED, dispatched_at__isnull=True)


def with_the_workers() -> Q:
    """Runs with the workers: handed over and not over, or cancelled while running and
    still held by their worker (it writes their heartbeat until it stops, then clears
    it; a dead one's goes stale)."""
    fresh = timezone.now() - timedelta(seconds=settings.EXPORT_HEARTBEAT_TIMEOUT)
    return Q(dispatched_at__isnull=False) & (
        Q(status__in=Run.ACTIVE) | Q(status=Run.Status.CANCELLED, heartbeat_at__gt=fresh)
    )


def _dispatch(limit: int) -> list[UUID]:
    in_hand = Counter(
        dict(
            Run.objects.filter(with_the_workers())
            .order_by()  # no default ordering in the GROUP BY
            .values_list(ORGANISATION)
            .annotate(n=Count("pk"))
            .values_list(ORGANISATION, "n")
        )
    )
    waiting = _waiting()
    organisations = set(waiting.order_by().values_list(ORGANISATION, flat=True).distinct())
    # Each organisation's next runs, as many as it has places for, oldest first.
    queues: dict[int, list[Run]] = {}
    for organisation in organisations:
        places = limit - in_hand[organisation]
        if places > 0:
            queues[organisation] = list(
                waiting.filter(**{ORGANISATION: organisation}).order_by("queued_at", "id")[:places]
            )
    handed: list[UUID] = []
    while queues:
        organisation = min(queues, key=lambda org: (in_hand[org], queues[org][0].queued_at, org))
        run = queues[organisation].pop(0)
        if not queues[organisation]:
            del queues[organisation]
        claimed = Run.objects.filter(id=run.id, status=Run.Status.QUEUED, dispatched_at__isnull=True).update(
            dispatched_at=timezone.now()
        )
        if not claimed:
            continue  # cancelled meanwhile
        in_hand[organisation] += 1
        # Marked first: a job Redis then fails to take is enqueued again by the reconciler.
        enqueue_run(run.id)
        handed.append(run.id)
    return handed
