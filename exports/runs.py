"""Workflows around runs that span several rows: launching an export."""

from __future__ import annotations

import django_rq
from django.conf import settings
from django.db import IntegrityError, transaction

from exports.models import Export, Run


class LaunchRefused(Exception):
    pass


def enqueue_run(run_id) -> None:
    """Hand a run to the workers. The job id is the run id, and the job only gets the id."""
    queue = django_rq.get_queue(settings.EXPORTS_QUEUE)
    queue.enqueue("exports.jobs.run_export", str(run_id), job_id=str(run_id))


def launch_export(
    export: Export, *, user, trigger: str = Run.Trigger.MANUAL, relaunch_of: Run | None = None
) -> tuple[Run, bool]:
    """Queue a run of `export`; returns (run, created).

    1. A run already queued or running for this export is returned as is: a double
       click or a retried request never starts the export twice (a partial unique
       index backs this up when two requests race).
    2. The job is enqueued only once the transaction commits, so a failed request
       leaves no job behind and the worker always finds the run row.
    """
    if export.dataset.missing_since is not None:
        raise LaunchRefused(f"the dataset {export.dataset.qualified_name} no longer exists in its database")
    with transaction.atomic():
        active = export.runs.filter(status__in=Run.ACTIVE).first()
        if active is not None:
            return active, False
        try:
            with transaction.atomic():
                run = Run.objects.create(
                    export=export,
                    trigger=trigger,
                    launched_by=user,
                    estimated_rows=export.dataset.estimated_rows,
                    relaunch_of=relaunch_of,
                    attempt=relaunch_of.attempt + 1 if relaunch_of else 1,
                )
        except IntegrityError:
            return export.runs.get(status__in=Run.ACTIVE), False
        if export.export_type == Export.Type.ONE_SHOT and export.status == Export.Status.DRAFT:
            # A launched one-shot is no longer a definition in progress.
            export.status = Export.Status.FINISHED
            export.save(update_fields=["status", "updated_at"])
        transaction.on_commit(lambda: enqueue_run(run.id))
    return run, True


def cancel_run(run: Run) -> bool:
    """Cancel a queued or running run: its job is dropped from the queue, or the worker
    stops at its next batch and delivers nothing."""
    if not run.cancel():
        return False
    from rq.exceptions import InvalidJobOperation, NoSuchJobError
    from rq.job import Job

    try:
        Job.fetch(str(run.id), connection=django_rq.get_connection(settings.EXPORTS_QUEUE)).cancel()
    except (NoSuchJobError, InvalidJobOperation):
        pass  # already gone, or already finishing: the run's status is what counts
    return True
