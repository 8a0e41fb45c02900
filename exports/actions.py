"""Every action on exports and runs, in one place.

Pages, the API, the scheduler, the reconciler and the admin call these functions; none
of them re-implements a rule. Each action runs in a transaction, re-reads (and on
PostgreSQL locks) the row it acts on, checks permission and state, does the work, and
returns its result or raises one `ActionRefused(code, message)`. The codes are stable:
the API returns them (docs/api.md) and pages show the message.

A run only comes to exist through `queue_run`, and a job only reaches Redis through the
dispatcher (exports/dispatch.py), after the transaction commits and while the run's
organisation is within EXPORT_MAX_RUNS_PER_ORG.
"""

from __future__ import annotations

import logging
import shutil
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast
from uuid import UUID

import django_rq
from django.conf import settings
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction
from django.db.models import Q, QuerySet
from django.utils import timezone
from rq.exceptions import InvalidJobOperation, NoSuchJobError
from rq.job import Job

from connectors.models import Connector
from exports import hooks, schema_watch
from exports.delivery import delete_downloads, desktop_storage
from exports.dispatch import dispatch_quietly
from exports.models import DESKTOP, Database, Dataset, Export, Hook, HookCall, Run, RunFile, RunQuerySet, SkippedSlot
from exports.permissions import Actor, can_change, can_create, can_use_connector, is_admin, is_member
from exports.schedule import for_export
from exportsite import outbound
from orgs.models import Sandbox

logger = logging.getLogger(__name__)

# The codes an action may refuse with. Permission and existence refusals map to 403 and
# 404, invalid input to 400, too many requests to 429; every other one is a conflict with
# the current state (409).
FORBIDDEN = "FORBIDDEN"
NOT_FOUND = "NOT_FOUND"
VALIDATION_FAILED = "VALIDATION_FAILED"
NOT_A_DRAFT = "NOT_A_DRAFT"
NOT_SCHEDULED = "NOT_SCHEDULED"
NOT_ONE_SHOT = "NOT_ONE_SHOT"
NOT_INCREMENTAL = "NOT_INCREMENTAL"
ALREADY_RUNNING = "ALREADY_RUNNING"
DATASET_BUSY = "DATASET_BUSY"
RUN_IN_PROGRESS = "RUN_IN_PROGRESS"
CANNOT_SCHEDULE = "CANNOT_SCHEDULE"
CANNOT_LAUNCH = "CANNOT_LAUNCH"
NOT_IN_PROGRESS = "NOT_IN_PROGRESS"
NOT_RELAUNCHABLE = "NOT_RELAUNCHABLE"
EXPIRED = "EXPIRED"
RATE_LIMITED = "RATE_LIMITED"
CUSTOM_EXPORT = "CUSTOM_EXPORT"
HOOK_REMOVED = "HOOK_REMOVED"
SOURCE_IN_USE = "SOURCE_IN_USE"
ALREADY_SENDING = "ALREADY_SENDING"

_STATUS = {FORBIDDEN: 403, NOT_FOUND: 404, VALIDATION_FAILED: 400, RATE_LIMITED: 429, CUSTOM_EXPORT: 403}

CHANGE_FORBIDDEN = "only the export's owner (a marketer) or an admin may do this"


class ActionRefused(Exception):
    """An action that can't be done, and why.

    `already` says the state the action wants holds already (a second Unschedule, Cancel
    or Launch): pages treat that as a quiet no-op. `run_id` names the run a conflict is
    about; `fields` the input at fault."""

    def __init__(
        self,
        code: str,
        message: str,
        *,
        run_id: Any = None,
        already: bool = False,
        fields: dict[str, list[str]] | None = None,
    ):
        super().__init__(message)
        self.code = code
        self.message = message
        self.run_id = run_id
        self.already = already
        self.fields = fields

    @property
    def status(self) -> int:
        return _STATUS.get(self.code, 409)


# Reading and checking --------------------------------------------------------------


def _locked(export: Export) -> Export:
    """The export's row as it is now, locked until the transaction ends (PostgreSQL;
    SQLite serialises writers anyway)."""
    rows = Export.objects.select_related("dataset__database", "connector", "owner").filter(id=export.id)
    if connection.features.has_select_for_update:
        rows = rows.select_for_update(of=("self",))
    current = rows.first()
    if current is None:
        raise ActionRefused(NOT_FOUND, "this export no longer exists")
    return current


# Finding: what a sandbox holds ---------------------------------------------------------
#
# Pages look objects up in the sandbox of their URL, the API in its token's. An object of
# any other sandbox is simply not found: the same answer as one that never existed.

NOT_FOUND_MESSAGES = {"export": "no such export", "run": "no such run", "hook": "no such hook"}


def exports_in(sandbox_id: int) -> QuerySet[Export]:
    return Export.objects.filter(sandbox_id=sandbox_id)


def runs_in(sandbox_id: int) -> RunQuerySet:
    return Run.objects.filter(sandbox_id=sandbox_id)


def find_export(sandbox_id: int, export_id: Any) -> Export:
    export = (
        exports_in(sandbox_id).select_related("dataset__database", "owner", "connector").filter(id=export_id).first()
    )
    if export is None:
        raise ActionRefused(NOT_FOUND, NOT_FOUND_MESSAGES["export"])
    return export


def find_run(sandbox_id: int, run_id: Any) -> Run:
    run = (
        runs_in(sandbox_id)
        .select_related("export__dataset__database", "export__owner", "export__connector", "connector")
        .filter(id=run_id)
        .first()
    )
    if run is None:
        raise ActionRefused(NOT_FOUND, NOT_FOUND_MESSAGES["run"])
    return run


def find_hook(sandbox_id: int, hook_id: Any) -> Hook:
    hook = Hook.objects.select_related("export").filter(export__sandbox_id=sandbox_id, id=hook_id).first()
    if hook is None:
        raise ActionRefused(NOT_FOUND, NOT_FOUND_MESSAGES["hook"])
    return hook


def find_hook_call(sandbox_id: int, call_id: Any) -> HookCall:
    call = HookCall.objects.select_related("run__export").filter(run__export__sandbox_id=sandbox_id, id=call_id).first()
    if call is None:
        raise ActionRefused(NOT_FOUND, "no such hook call")
    return call


def require_member(user: Actor, export: Export) -> None:
    """Whoever doesn't belong to the export's organisation learns nothing of it, not even
    that it exists."""
    if not is_member(user, export.sandbox_id):
        raise ActionRefused(NOT_FOUND, NOT_FOUND_MESSAGES["export"])


def require_change(user: Actor, export: Export) -> User:
    """The user, once it is clear they may change `export` (so they are signed in).
    Pages ask it before showing a form that leads to an action."""
    require_member(user, export)
    if not can_change(user, export):
        raise ActionRefused(FORBIDDEN, CHANGE_FORBIDDEN)
    return cast(User, user)


def require_create(user: Actor, sandbox_id: int | None) -> User:
    """The user, once it is clear they may create exports in the sandbox."""
    if not is_member(user, sandbox_id):
        raise ActionRefused(NOT_FOUND, "no such sandbox")
    if not can_create(user, sandbox_id):
        raise ActionRefused(FORBIDDEN, "viewers can't create exports")
    return cast(User, user)


def check_in_sandbox(user: Actor, export: Export) -> None:
    """What a definition names is in its own sandbox: its dataset's database, and its
    connector, which the user may use there. A connector of another sandbox gets the
    same answer as one that doesn't exist."""
    if export.dataset_id is not None and export.dataset.database.sandbox_id != export.sandbox_id:
        raise ActionRefused(
            VALIDATION_FAILED, "dataset: no such dataset", fields={"dataset": ["Select a valid choice."]}
        )
    connector = export.connector
    if connector is not None and not can_use_connector(user, connector, export.sandbox_id):
        raise ActionRefused(
            VALIDATION_FAILED, "connector: no such connector", fields={"connector": ["Select a valid choice."]}
        )


# Custom exports ------------------------------------------------------------------------
#
# Platform staff (superusers) set them up for a client and manage them. Everyone else sees
# them, their runs and reports, and may run them now, cancel and relaunch their runs as
# any export's; but never edits, deletes or downloads them. An *incremental custom* export
# (`Export.has_standard_equivalent`) may also be copied into a standard draft, and
# unscheduled, which makes it a standard export that operators no longer manage.


def custom_refusal(user: Actor, export: Export, doing: str) -> ActionRefused | None:
    """Why `user` may not do `doing` ("edit", "delete", "copy", "unschedule", "download",
    "view the definition of") to a custom export; None when they may, or it isn't one."""
    if not export.managed or user.is_superuser:
        return None
    if export.has_standard_equivalent and doing in {"copy", "unschedule", "view the definition of"}:
        return None
    return ActionRefused(
        CUSTOM_EXPORT, f"operators manage this custom export: you can't {doing} it; ask them for changes"
    )


def _refuse_custom(user: Actor, export: Export, doing: str) -> None:
    refusal = custom_refusal(user, export, doing)
    if refusal is not None:
        raise refusal


def custom_offers(user: Actor, export: Export) -> frozenset[str]:
    """What pages offer `user` on a custom export, by these rules: "definition", "copy",
    "unschedule", "run now"."""
    offers = set()
    if custom_refusal(user, export, "view the definition of") is None:
        offers.add("definition")
    if export.has_standard_equivalent and can_create(user, export.sandbox_id):
        offers.add("copy")
    if export.is_scheduled and can_change(user, export):
        offers.add("run now")
        if custom_refusal(user, export, "unschedule") is None:
            offers.add("unschedule")
    return frozenset(offers)


def create_custom_export(user: Actor, export: Export) -> Export:
    """Platform staff set up a custom export for a client's sandbox: checked as any
    definition, to a connector of that sandbox, periodic or incremental; then scheduled."""
    if not user.is_superuser:
        raise ActionRefused(FORBIDDEN, "only platform staff set up custom exports")
    export.managed = True
    export.owner = user
    with transaction.atomic():
        check_in_sandbox(user, export)
        _full_clean(export)
        schema_watch.record(export)
        export.save()
        return schedule(user, export)


def _full_clean(export: Export) -> None:
    """The model's own checks on a definition, as one VALIDATION_FAILED naming each field."""
    try:
        export.full_clean(validate_unique=False, validate_constraints=False)
    except ValidationError as exc:
        fields = exc.message_dict
        summary = "; ".join(f"{name}: {' '.join(problems)}" for name, problems in fields.items())
        raise ActionRefused(VALIDATION_FAILED, f"the definition is not valid: {summary}", fields=fields) from None


def check_editable(user: Actor, export: Export) -> None:
    """Changing a definition: its owner or an admin, and only while it is a draft."""
    require_change(user, export)
    _refuse_custom(user, export, "edit")
    if not export.is_draft:
        raise ActionRefused(NOT_A_DRAFT, "only drafts can be edited: unschedule the export first")


def _check_startable(export: Export) -> None:
    """A new run of `export` may start: its dataset exists and it has no run going."""
    active = export.runs.active().first()
    if active is not None:
        raise ActionRefused(
            ALREADY_RUNNING, "this export already has a run queued or running", run_id=active.id, already=True
        )
    if export.dataset.missing_since is not None:
        raise ActionRefused(
            CANNOT_LAUNCH, f"the dataset {export.dataset.qualified_name} no longer exists in its database"
        )


def delete_refusal(user: Actor, export: Export) -> ActionRefused | None:
    """Why `export` can't be deleted by `user` (None: it can). Pages use it to say why on
    the button; `delete` to refuse. An `has_active_run` annotation saves the query."""
    if not can_change(user, export):
        return ActionRefused(FORBIDDEN, CHANGE_FORBIDDEN)
    custom = custom_refusal(user, export, "delete")
    if custom is not None:
        return custom
    if not export.is_draft:
        return ActionRefused(NOT_A_DRAFT, "only drafts can be deleted: unschedule the export first")
    active = getattr(export, "has_active_run", None)
    if active is None:
        active = export.runs.active().exists()
    if active:
        return ActionRefused(
            RUN_IN_PROGRESS, "a run of this export is queued or running: cancel it, or wait until it finishes"
        )
    return None


# Runs: created and enqueued here only ----------------------------------------------


def queue_run(
    export: Export,
    *,
    trigger: str = Run.Trigger.MANUAL,
    user: User | None = None,
    relaunch_of: Run | None = None,
    scheduled_for: datetime | None = None,
    enqueue: bool = True,
) -> Run:
    """Create a queued run of `export` and dispatch it once the transaction commits, so
    a failed request leaves no job behind and the worker always finds the row.
    `enqueue=False` leaves it to the next dispatch (the scheduler's tick makes one after
    starting every due run).

    Launch, Run now, Relaunch, the scheduler and the reconciler's retries all come here;
    callers check the rules first. Two partial unique indexes back them up when two
    requests race: one active run per export, one run per schedule slot."""
    try:
        with transaction.atomic():
            run = Run.objects.create(
                export=export,
                trigger=trigger,
                launched_by=user,
                estimated_rows=export.dataset.estimated_rows,
                relaunch_of=relaunch_of,
                attempt=relaunch_of.attempt + 1 if relaunch_of else 1,
                scheduled_for=scheduled_for,
            )
    except IntegrityError:
        active = export.runs.active().first()
        raise ActionRefused(
            ALREADY_RUNNING,
            "this export already has a run queued or running",
            run_id=active.id if active else None,
            already=True,
        ) from None
    if export.export_type == Export.Type.ONE_SHOT and export.is_draft:
        # A launched one-shot is no longer a definition in progress.
        export.status = Export.Status.FINISHED
        export.save(update_fields=["status", "updated_at"])
    if enqueue:
        transaction.on_commit(dispatch_quietly)
    return run


def _refuse_if_dataset_busy(user: User, export: Export) -> None:
    busy = (
        Run.objects.active()
        .filter(export__sandbox_id=export.sandbox_id, export__dataset_id=export.dataset_id)
        .filter(Q(launched_by=user) | Q(export__owner=user))
        .first()
    )
    if busy is not None:
        raise ActionRefused(
            DATASET_BUSY,
            f"you already have a run of {export.dataset.qualified_name} queued or running ({busy.id}); "
            "choose Queue anyway (in the API, send QueueAnyway: true) to queue this one too",
            run_id=busy.id,
        )


def launch(user: Actor, export: Export, *, queue_anyway: bool = False, trigger: str = Run.Trigger.MANUAL) -> Run:
    """Run a one-shot now.

    Refused while the same user has a run of the same dataset queued or running, unless
    `queue_anyway` (so a retrying script doesn't pile up identical exports); an export
    never has two runs at once."""
    with transaction.atomic():
        export = _locked(export)
        person = require_change(user, export)
        if export.export_type != Export.Type.ONE_SHOT:
            raise ActionRefused(
                NOT_ONE_SHOT, "only one-shot exports are launched; schedule a repeating one, then run it now"
            )
        if export.is_scheduled:
            raise ActionRefused(
                NOT_A_DRAFT, "it is scheduled to run at its start: Run now runs it at once, Unschedule cancels that"
            )
        _check_startable(export)
        if not queue_anyway:
            _refuse_if_dataset_busy(person, export)
        return queue_run(export, trigger=trigger, user=person)


def _refuse_if_relaunched(run: Run) -> None:
    """A failed run is run again once: by hand or by the reconciler, not both."""
    again = Run.objects.filter(relaunch_of=run).order_by("-queued_at").first()
    if again is not None:
        raise ActionRefused(NOT_RELAUNCHABLE, "this run was run again already", run_id=again.id, already=True)


def relaunch(user: Actor, run: Run) -> Run:
    """Run a failed run again, after its cause was fixed (credentials, a bucket...)."""
    with transaction.atomic():
        export = _locked(run.export)
        person = require_change(user, export)
        run.refresh_from_db()
        if not run.is_relaunchable:
            raise ActionRefused(
                NOT_RELAUNCHABLE, "only runs that failed for a reason a relaunch can fix are relaunched"
            )
        _refuse_if_relaunched(run)
        _check_startable(export)
        return queue_run(export, trigger=Run.Trigger.RELAUNCH, user=person, relaunch_of=run)


# Failures that may pass by themselves: the reconciler retries them.
AUTO_RETRY = frozenset(
    {
        Run.ErrorCode.WORKER_LOST,
        Run.ErrorCode.WORK_DISK_FULL,
        Run.ErrorCode.DESTINATION_UNREACHABLE,
        Run.ErrorCode.SOURCE_UNAVAILABLE,
    }
)


def retry_due_at(run: Run) -> datetime | None:
    """When the reconciler retries `run` by itself: a failure that may pass
    (`AUTO_RETRY`), after EXPORT_RETRY_BACKOFF seconds doubled with each attempt, up to
    EXPORT_MAX_ATTEMPTS attempts; None when it won't."""
    if not (run.is_failed and run.error_code in AUTO_RETRY and run.attempt < settings.EXPORT_MAX_ATTEMPTS):
        return None
    wait = timedelta(seconds=settings.EXPORT_RETRY_BACKOFF * 2 ** (run.attempt - 1))
    return (run.finished_at or run.queued_at) + wait


@dataclass
class NextAttempt:
    """What follows a failed run: the run that ran it again, or the retry to come."""

    run: Run | None = None
    due_at: datetime | None = None
    attempt: int = 0
    of: int = 0


def next_attempt(run: Run) -> NextAttempt | None:
    """For the run's report and e-mail (one query)."""
    if not run.is_failed:
        return None
    again = Run.objects.filter(relaunch_of=run).order_by("queued_at").first()
    if again is not None:
        return NextAttempt(run=again, attempt=again.attempt)
    due = retry_due_at(run)
    if due is None or (run.export.is_draft and run.trigger == Run.Trigger.SCHEDULE):
        return None
    return NextAttempt(due_at=due, attempt=run.attempt + 1, of=settings.EXPORT_MAX_ATTEMPTS)


def retry(run: Run, now: datetime) -> Run:
    """The reconciler's automatic retry of a run that failed for a passing reason, once
    it is due (`retry_due_at`); not a scheduled run whose export was unscheduled since."""
    with transaction.atomic():
        export = _locked(run.export)
        run.refresh_from_db()
        due = retry_due_at(run)
        if due is None:
            raise ActionRefused(NOT_RELAUNCHABLE, "not a failure to retry, or its attempts are used up")
        if due > now:
            raise ActionRefused(NOT_RELAUNCHABLE, f"it is retried at {due:%Y-%m-%d %H:%M:%S} UTC")
        if export.is_draft and run.trigger == Run.Trigger.SCHEDULE:
            raise ActionRefused(NOT_SCHEDULED, "its export was unscheduled since")
        _refuse_if_relaunched(run)
        _check_startable(export)
        return queue_run(export, trigger=Run.Trigger.RETRY, relaunch_of=run)


def cancel(user: Actor, run: Run) -> Run:
    """Queued or running → cancelled: its job leaves the queue, or the worker stops at
    its next batch and delivers nothing."""
    with transaction.atomic():
        require_change(user, run.export)
        if not run.cancel():
            run.refresh_from_db()
            if run.status == Run.Status.CANCELLED:
                raise ActionRefused(NOT_IN_PROGRESS, "the run is cancelled already", already=True)
            raise ActionRefused(
                NOT_IN_PROGRESS,
                f"the run is over ({run.get_status_display().lower()}): only queued or running runs stop",
            )
        transaction.on_commit(lambda: _drop_job(run.id))
    run.refresh_from_db()
    return run


def _drop_job(run_id: UUID) -> None:
    try:
        Job.fetch(str(run_id), connection=django_rq.get_connection(settings.EXPORTS_QUEUE)).cancel()
    except (NoSuchJobError, InvalidJobOperation):
        pass  # already gone, or already finishing: the run's status is what counts
    except Exception:  # Redis down: the run is cancelled all the same; a job left finds it so
        logger.warning("run %s: its job could not be dropped from Redis", run_id, exc_info=True)
    # A run that never started frees its place now; a running one when its worker lets go.
    dispatch_quietly()


# Schedules ---------------------------------------------------------------------------


def schedule(user: Actor, export: Export) -> Export:
    """Draft → scheduled, with its first run time. Slots that passed while it was a draft
    are not caught up: it starts with the next one."""
    now = timezone.now()
    with transaction.atomic():
        export = _locked(export)
        require_change(user, export)
        _refuse_custom(user, export, "schedule")
        if export.is_scheduled:
            raise ActionRefused(NOT_A_DRAFT, f"{export.name!r} is scheduled already", already=True)
        if not export.is_draft:
            raise ActionRefused(NOT_A_DRAFT, "only drafts can be scheduled")
        plan = for_export(export)
        if plan is None:
            raise ActionRefused(CANNOT_SCHEDULE, "it has no start time: give it a Start in its schedule")
        first = plan.slot(0) if plan.slot(0) >= now else plan.next_after(now)
        if first is None:
            raise ActionRefused(
                CANNOT_SCHEDULE, "no run time is left: its start (one shot) or its end has passed; change its schedule"
            )
        export.schedule(
            first_run_at=first, last_scheduled_for=plan.latest_due(None, now) if plan.slot(0) < now else None, now=now
        )
    return export


def check_unschedule(user: Actor, export: Export) -> None:
    """Before asking to confirm (a custom export): its owner or an admin, and not a
    custom export without a standard equivalent."""
    require_change(user, export)
    _refuse_custom(user, export, "unschedule")


def unschedule(user: Actor, export: Export) -> Export:
    """Scheduled → draft. A run in progress finishes; the watermark is kept."""
    with transaction.atomic():
        export = _locked(export)
        check_unschedule(user, export)
        if not export.unschedule():
            if export.is_draft:
                raise ActionRefused(NOT_SCHEDULED, f"{export.name!r} is a draft already", already=True)
            raise ActionRefused(NOT_SCHEDULED, "only scheduled exports can be unscheduled")
        export.refresh_from_db()
    return export


@dataclass
class SlotOutcome:
    run: Run | None = None
    skipped: SkippedSlot | None = None


def start_due_run(
    export_id: UUID, now: datetime, *, trigger: str = Run.Trigger.SCHEDULE, dispatch: bool = True
) -> SlotOutcome:
    """The scheduler: start the run of a due export's latest slot, exactly once.

    The export's row is locked and skipped when another scheduler holds it
    (PostgreSQL), and re-checked to be still due; `run_one_per_slot` backs this up."""
    with transaction.atomic():
        due = Export.objects.select_related("dataset").filter(
            id=export_id, status=Export.Status.SCHEDULED, next_run_at__lte=now
        )
        if connection.features.has_select_for_update_skip_locked:
            due = due.select_for_update(skip_locked=True, of=("self",))
        export = due.first()
        if export is None:
            return SlotOutcome()  # another scheduler has it, or it is no longer due
        return _start_slot(export, now, trigger, dispatch=dispatch)


# What starting a slot reads of an export (its schedule, state and destination) and of
# its dataset (`_skip_reason`, the run's estimate).
_DUE_FIELDS = (
    "sandbox_id",
    "status",
    "export_type",
    "schedule_unit",
    "schedule_interval",
    "schedule_start",
    "schedule_end",
    "schedule_timezone",
    "last_scheduled_for",
    "next_run_at",
    "updated_at",
    "connector",
    "dataset__estimated_rows",
    "dataset__missing_since",
)


def start_due_runs(export_ids: list[UUID], now: datetime, *, trigger: str = Run.Trigger.SCHEDULE) -> list[SlotOutcome]:
    """`start_due_run` for many due exports at once (the scheduler's tick), by the same
    rules in a few queries: the exports locked together (skipping those another
    scheduler holds), their runs created and the exports moved on in bulk. When a run
    can't be created (another scheduler created it: the unique slot index), the batch
    goes back and each export goes through `start_due_run` alone."""
    try:
        with transaction.atomic():
            due = (
                Export.objects.select_related("dataset", "connector")
                .filter(id__in=export_ids, status=Export.Status.SCHEDULED, next_run_at__lte=now)
                .only(*_DUE_FIELDS)  # thousands at a tick: no JSON columns decoded for nothing
            )
            if connection.features.has_select_for_update_skip_locked:
                due = due.select_for_update(skip_locked=True, of=("self",))
            exports = list(due)
            busy = set(Run.objects.active().filter(export__in=exports).values_list("export_id", flat=True))
            outcomes, runs = [], []
            moment = timezone.now()
            for export in exports:
                slot, plan = _due_slot(export, now)
                reason = _skip_reason(export, busy=export.id in busy)
                outcome = SlotOutcome()
                if reason:
                    outcome.skipped = _record_skip(export, slot, reason)
                else:
                    outcome.run = Run(
                        export=export,
                        trigger=trigger,
                        estimated_rows=export.dataset.estimated_rows,
                        scheduled_for=slot,
                        queued_at=moment,
                    )
                    outcome.run.remember_destination()
                    runs.append(outcome.run)
                _move_on(export, slot, plan, now, at=moment)
                outcomes.append(outcome)
            Run.objects.bulk_create(runs)
            # One UPDATE per next slot: exports due together mostly move on together
            # (Django's bulk_update builds a CASE per row and field: most of a tick's time).
            moved = defaultdict(list)
            for export, outcome in zip(exports, outcomes, strict=True):
                moved[(export.last_scheduled_for, export.next_run_at, export.status, bool(outcome.run))].append(
                    export.id
                )
            for (last, next_run_at, status, ran), ids in moved.items():
                # A new run is the export's latest (`Export.last_run_at`, which Run.save keeps).
                Export.objects.filter(id__in=ids).update(
                    last_scheduled_for=last,
                    next_run_at=next_run_at,
                    status=status,
                    updated_at=moment,
                    **({"last_run_at": moment} if ran else {}),
                )
            return outcomes
    except IntegrityError:
        return [start_due_run(export_id, now, trigger=trigger, dispatch=False) for export_id in export_ids]


def _due_slot(export: Export, now: datetime):
    """The slot due at `now` (or brought forward to it), and the export's schedule."""
    plan = for_export(export)
    slot = plan.latest_due(export.last_scheduled_for, now) if plan else None
    if slot is None:
        slot = export.next_run_at  # brought forward by Run now
    return slot, plan


def _skip_reason(export: Export, *, busy: bool) -> str:
    if busy:
        return "the previous run was still in progress"
    if export.dataset.missing_since is not None:
        return "the dataset no longer exists"
    return ""


def _record_skip(export: Export, slot: datetime | None, reason: str) -> SkippedSlot | None:
    skip, created = SkippedSlot.objects.get_or_create(export=export, scheduled_for=slot, defaults={"reason": reason})
    if not created:
        return None
    logger.info("export %s: slot %s skipped: %s", export.id, slot, reason)
    return skip


def _move_on(export: Export, slot: datetime | None, plan, now: datetime, *, at: datetime | None = None) -> None:
    """The export's next slot (saved by the caller); `at` the moment it was changed."""
    export.last_scheduled_for = max(filter(None, [export.last_scheduled_for, slot]))
    # A one-shot runs once: brought forward by Run now, it doesn't run again at its start.
    export.next_run_at = plan.next_after(now) if plan and plan.repeats else None
    if export.next_run_at is None:
        export.status = Export.Status.FINISHED
    export.updated_at = at or timezone.now()


def _start_slot(
    export: Export, now: datetime, trigger: str, user: User | None = None, *, dispatch: bool = True
) -> SlotOutcome:
    """Start the run of the slot due at `now` (or brought forward to it), or record
    why it was skipped; then move the export on to its next slot."""
    slot, plan = _due_slot(export, now)
    outcome = SlotOutcome()
    reason = _skip_reason(export, busy=export.runs.active().exists())
    if reason:
        outcome.skipped = _record_skip(export, slot, reason)
    else:
        try:
            outcome.run = queue_run(export, trigger=trigger, user=user, scheduled_for=slot, enqueue=dispatch)
        except ActionRefused:
            pass  # the slot's run exists already: created by another scheduler
    _move_on(export, slot, plan, now)
    export.save(update_fields=["last_scheduled_for", "next_run_at", "status", "updated_at"])
    return outcome


def run_now(user: Actor, export: Export, *, trigger: str = Run.Trigger.MANUAL) -> Run:
    """Start a scheduled export's next run now (incremental: from its watermark); later
    runs keep their times."""
    now = timezone.now()
    with transaction.atomic():
        export = _locked(export)
        person = require_change(user, export)
        if not export.is_scheduled:
            raise ActionRefused(NOT_SCHEDULED, "only scheduled exports run now; launch a one-shot draft instead")
        _check_startable(export)
        export.next_run_at = now
        run = _start_slot(export, now, trigger, person).run
        if run is None:
            raise ActionRefused(CANNOT_LAUNCH, "the export changed meanwhile; read it again")
    return run


def check_watermark_reset(user: Actor, export: Export) -> None:
    """Before asking to confirm a reset: its owner or an admin, an incremental export."""
    require_change(user, export)
    _refuse_custom(user, export, "reset the watermark of")
    if not export.is_incremental:
        raise ActionRefused(NOT_INCREMENTAL, "only incremental exports have a watermark")


def reset_watermark(user: Actor, export: Export) -> Export:
    """Incremental: the next run exports every row again. Not while a run is going: its
    success would move the watermark on again."""
    with transaction.atomic():
        export = _locked(export)
        check_watermark_reset(user, export)
        active = export.runs.active().first()
        if active is not None:
            raise ActionRefused(
                RUN_IN_PROGRESS,
                "a run of this export is in progress; reset the watermark once it has finished",
                run_id=active.id,
            )
        export.reset_watermark()
    return export


# Definitions ---------------------------------------------------------------------------


def save_draft(user: Actor, export: Export) -> Export:
    """Create a draft, or save a draft's changed definition.

    The caller validated the input with the wizard's forms (or the admin's); the model's
    own checks run again here, so nothing saved can bypass them. Only the definition is
    written: the state (status, watermark, schedule position) may have moved since the
    caller read the row, and only the actions move it."""
    with transaction.atomic():
        adding = export._state.adding
        if adding:
            require_create(user, export.sandbox_id)
        else:
            check_editable(user, _locked(export))
        check_in_sandbox(user, export)
        _full_clean(export)
        schema_watch.record(export)  # the columns it uses, as they are now
        export.save(update_fields=None if adding else [*Export.definition_fields(), *schema_watch.FIELDS])
    return export


MAX_NAME: int = Export._meta.get_field("name").max_length or 200


def check_copy(user: Actor, export: Export) -> User:
    """Before asking for the copy's name: who may copy it, and not an expired export."""
    if export.has_standard_equivalent:
        # An incremental custom export: whoever may create exports may take a copy of their own.
        person = require_create(user, export.sandbox_id)
    elif export.managed:
        # Staff included: its copy would be a standard export, the client's to change and download.
        require_member(user, export)
        raise ActionRefused(CUSTOM_EXPORT, "a custom export can't be copied: operators set up another one in the admin")
    else:
        person = require_change(user, export)
    if export.status == Export.Status.EXPIRED:
        raise ActionRefused(EXPIRED, "an expired export can't be copied")
    return person


def copy(user: Actor, export: Export, name: str | None = None) -> Export:
    """A new draft with the same definition, remembering where it came from."""
    name = (f"Copy of {export.name}"[:MAX_NAME] if name is None else name).strip()
    with transaction.atomic():
        export = _locked(export)
        person = check_copy(user, export)
        problem = ""
        if not name:
            problem = "the copy needs a name"
        elif len(name) > MAX_NAME:
            problem = f"a name has at most {MAX_NAME} characters, got {len(name)}"
        elif "\x00" in name:
            problem = "a name can't contain NUL characters"
        if problem:
            raise ActionRefused(VALIDATION_FAILED, f"Name: {problem}", fields={"Name": [problem]})
        draft = export.copy(name=name, owner=person)
        schema_watch.record(draft)
        draft.save(update_fields=schema_watch.FIELDS)
        return draft


def copy_to_sandbox(
    user: Actor, export: Export, target: Sandbox, *, connector: Connector | None = None, name: str | None = None
) -> Export:
    """Promote a definition: a draft copy of `export` in another sandbox of the same
    organisation. Its dataset is the one of the same database and table name there; its
    destination is one of the target's own (`connector`, or Desktop), never the
    original's. The copy is checked as any draft is (`save_draft`)."""
    name = (export.name if name is None else name).strip()
    with transaction.atomic():
        export = _locked(export)
        person = check_copy(user, export)
        if target.organisation_id != export.sandbox.organisation_id:
            raise ActionRefused(NOT_FOUND, "no such sandbox")
        if target.pk == export.sandbox_id:
            raise ActionRefused(VALIDATION_FAILED, "choose another sandbox: Copy makes a copy in this one")
        if connector is not None and not connector.usable_in(target.pk):
            raise ActionRefused(
                VALIDATION_FAILED, "connector: no such connector", fields={"connector": ["Select a valid choice."]}
            )
        source = export.dataset
        dataset = Dataset.objects.filter(
            database__sandbox=target,
            database__name=source.database.name,
            schema_name=source.schema_name,
            name=source.name,
            missing_since__isnull=True,
        ).first()
        if dataset is None:
            raise ActionRefused(
                VALIDATION_FAILED,
                f"{target.name} has no dataset {source.qualified_name} in a database named {source.database.name!r}: "
                "add that source database to the sandbox first",
                fields={"dataset": ["No dataset of that name in the target sandbox."]},
            )
        skip = {"name", "updated_at", "sandbox", "dataset", "connector"}
        fields = {field: getattr(export, field) for field in Export.definition_fields() if field not in skip}
        copy = Export(
            **fields, name=name, owner=person, sandbox=target, dataset=dataset, connector=connector, copied_from=export
        )
        return save_draft(person, copy)


# Hooks ---------------------------------------------------------------------------------
#
# Whoever may change an export adds and removes its hooks, whatever its state: a hook
# changes nothing the export delivers. A custom export's hooks are the operators'. A URL
# passes the outbound address policy when it is saved, and again at every call.

MAX_HOOK_URL: int = Hook._meta.get_field("url").max_length or 2000


def hooks_refusal(user: Actor, export: Export) -> ActionRefused | None:
    """Why `user` may not change the hooks of `export` (None: they may); pages show the
    forms, and the full URLs, only to those who may."""
    try:
        check_hooks(user, export)
    except ActionRefused as refusal:
        return refusal
    return None


def check_hooks(user: Actor, export: Export) -> User:
    person = require_change(user, export)
    _refuse_custom(user, export, "change the hooks of")
    return person


def _hook_problems(url: str, events: str) -> dict[str, list[str]]:
    problems: dict[str, list[str]] = {}
    if not url:
        problems["url"] = ["enter the URL to call, such as https://example.com/hooks/exports"]
    elif len(url) > MAX_HOOK_URL:
        problems["url"] = [f"a URL has at most {MAX_HOOK_URL} characters, got {len(url)}"]
    else:
        try:
            outbound.check_url(url, what="the hook URL", bare=False)
        except (outbound.AddressNotAllowed, outbound.HostNotFound) as exc:
            problems["url"] = [str(exc)]
    if events not in Hook.Events.values:
        problems["events"] = [f"choose one of {', '.join(Hook.Events.values)}, not {events!r}"]
    return problems


def add_hook(user: Actor, export: Export, url: str, events: str = Hook.Events.BOTH) -> tuple[Hook, str]:
    """A new hook on `export`, and its secret: shown to the caller once, kept encrypted
    to sign the calls."""
    url = (url or "").strip()
    with transaction.atomic():
        export = _locked(export)
        person = check_hooks(user, export)
        problems = _hook_problems(url, events)
        if problems:
            summary = "; ".join(f"{field}: {' '.join(messages)}" for field, messages in problems.items())
            raise ActionRefused(VALIDATION_FAILED, summary, fields=problems)
        if export.hooks.count() >= settings.EXPORT_HOOKS_PER_EXPORT:
            raise ActionRefused(
                VALIDATION_FAILED, f"an export has at most {settings.EXPORT_HOOKS_PER_EXPORT} hooks: remove one first"
            )
        secret = Hook.new_secret()
        hook = Hook.objects.create(export=export, url=url, events=events, secret=secret, created_by=person)
    return hook, secret


def remove_hook(user: Actor, hook: Hook) -> None:
    """The hook goes; the calls it made stay on their runs' reports, and those still
    being retried stop."""
    with transaction.atomic():
        check_hooks(user, _locked(hook.export))
        HookCall.objects.filter(hook=hook, status=HookCall.Status.PENDING).update(
            status=HookCall.Status.GAVE_UP, next_attempt_at=None
        )
        hook.delete()


def send_hook_again(user: Actor, call: HookCall) -> None:
    """Send Again: one more attempt of a call (same webhook-id, signed afresh), whatever
    became of the others. A call in flight is not sent twice at once."""
    with transaction.atomic():
        person = check_hooks(user, _locked(call.run.export))
        if call.hook_id is None or not Hook.objects.filter(id=call.hook_id).exists():
            raise ActionRefused(HOOK_REMOVED, "this hook was removed: there is nothing to send it with")
        if hooks.send_again(call, person) is None:
            raise ActionRefused(ALREADY_SENDING, "this call is being sent: wait for its answer", already=True)


# Sources --------------------------------------------------------------------------------
#
# A sandbox's admins add, change and remove its source databases (platform staff too, in
# the admin). A source whose datasets exports use stays: the page lists those exports.


def check_sources(user: Actor, sandbox_id: int) -> User:
    if not is_member(user, sandbox_id):
        raise ActionRefused(NOT_FOUND, "no such sandbox")
    if not is_admin(user, sandbox_id) and not user.is_superuser:
        raise ActionRefused(FORBIDDEN, "only admins manage source databases")
    return cast(User, user)


def save_source(user: Actor, database: Database) -> Database:
    """Add or change a source; its datasets are read (refreshed) right after. A source
    that can't be read is saved anyway, with the reason on the Sources page."""
    with transaction.atomic():
        check_sources(user, database.sandbox_id)
        if database.pk is not None and not Database.objects.filter(pk=database.pk, sandbox_id=database.sandbox_id):
            raise ActionRefused(NOT_FOUND, "no such source")
        if Database.objects.filter(sandbox_id=database.sandbox_id, name=database.name).exclude(pk=database.pk):
            raise ActionRefused(
                VALIDATION_FAILED,
                f"name: the sandbox has a source called {database.name!r} already",
                fields={"name": ["The sandbox has a source of that name already."]},
            )
        database.save()
    try:
        schema_watch.refresh(database)
    except Exception as exc:  # noqa: BLE001 - whatever the source answered, refresh_datasets recorded it
        logger.info("source %s saved; its first refresh failed: %s", database.id, exc)
    return database


def source_users(database: Database) -> QuerySet[Export]:
    """The exports that read one of the source's datasets."""
    return Export.objects.filter(dataset__database=database).order_by("name")


def delete_source_refusal(user: Actor, database: Database) -> ActionRefused | None:
    try:
        check_sources(user, database.sandbox_id)
    except ActionRefused as refusal:
        return refusal
    names = list(source_users(database).values_list("name", flat=True)[:11])
    if names:
        shown = ", ".join(repr(name) for name in names[:10]) + (" and more" if len(names) > 10 else "")
        return ActionRefused(SOURCE_IN_USE, f"exports read this source: {shown}; delete or change them first")
    return None


def delete_source(user: Actor, database: Database) -> None:
    with transaction.atomic():
        refusal = delete_source_refusal(user, database)
        if refusal is not None:
            raise refusal
        database.delete()


def desktop_files_of(export: Export, *, kept_only: bool = False) -> list[str]:
    """Paths of the Desktop files an export's runs recorded (in the exports storage);
    `kept_only`: just those still there to download (not expired)."""
    files = RunFile.objects.filter(run__export=export, run__destination_kind=DESKTOP)
    if kept_only:
        files = files.filter(run__status=Run.Status.SUCCEEDED)
    return list(files.values_list("path", flat=True))


def delete(user: Actor, export: Export) -> int:
    """Delete a draft with its runs and their Desktop files; returns how many of them were
    still there to download (expired runs' files went already; any left are removed too).

    Files in a connector's store stay: they were delivered to someone. Never while a run
    is queued or running: its worker would lose its row, and the report its run."""
    with transaction.atomic():
        export = _locked(export)
        refusal = delete_refusal(user, export)
        if refusal is not None:
            raise refusal
        paths = desktop_files_of(export)
        kept = len(desktop_files_of(export, kept_only=True))
        export_id = export.id
        export.delete()
        transaction.on_commit(lambda: _remove_desktop_files(export_id, paths))
    return kept


def _remove_desktop_files(export_id: UUID, paths: list[str]) -> None:
    delete_downloads(paths, f"export {export_id}")
    storage = desktop_storage()
    # On local disk, the export's folder (its runs' empty folders, and anything a crash
    # left behind) goes too.
    try:
        folder = storage.path(str(export_id))
    except NotImplementedError:
        return  # a remote storage: there are no folders to remove
    shutil.rmtree(folder, ignore_errors=True)
