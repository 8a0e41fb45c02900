"""Schema watch: an export learns that a column it uses is gone, or changed type, when its
source is refreshed, not from a failed run at night (docs/sources.md, "Schema watch").

1. When an export is saved, it records the columns it uses with their types
   (`Export.schema_columns`): the columns it delivers (all of the dataset's, when none
   are chosen), its filters' and its cursor.
2. Every refresh of a source (the daily one, `refresh_due`, and the Sources page's
   button) compares each export of it with what it found (`watch`): a column that is
   gone, a type that changed incompatibly, or a table that vanished flags the export
   (`Export.schema_problem`, shown on Manage Exports and the export's page), and its
   owner and report recipients get an e-mail, once per new problem. A refresh that finds
   the columns back clears the flag.
3. A run of a flagged export fails before reading with SCHEMA_CHANGED, naming the
   column (`problem_of`, from exports/jobs.py). Saving the definition again (edit the
   draft) records the columns as they are now.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

import django_rq
from django.conf import settings
from django.core.mail import send_mail
from django.db.models import Q
from django.utils import timezone

from exports.models import Database, Dataset, Export, recipients_of, refresh_datasets
from orgs.scope import site_reverse

logger = logging.getLogger(__name__)


def signature(column: dict) -> str:
    """A column's type as the watch compares it: `decimal(12,2)`, `integer`, `text`..."""
    if column["type"] == "decimal":
        return f"decimal({column['precision']},{column['scale']})"
    return column["type"]


def _decimal(sig: str) -> tuple[int, int] | None:
    if not sig.startswith("decimal("):
        return None
    precision, scale = sig[len("decimal(") : -1].split(",")
    return int(precision), int(scale)


def compatible(was: str, now: str) -> bool:
    """Whether values of type `was` still read the same as `now`: the same type, or a
    wider one that holds every value (a longer decimal of the same scale, an integer
    into a decimal with 19 digits before the point)."""
    if was == now:
        return True
    old, new = _decimal(was), _decimal(now)
    if old and new:
        return new[1] == old[1] and new[0] >= old[0]
    if was == "integer" and new:
        return new[0] - new[1] >= 19
    return False


def used_names(export: Export) -> list[str]:
    delivered = list(export.columns) or export.dataset.column_names
    filtered = [spec.get("column", "") for spec in export.filters or []]
    cursor = [export.cursor_column] if export.is_incremental and export.cursor_column else []
    return [name for name in dict.fromkeys([*delivered, *filtered, *cursor]) if name]


GONE = "gone"


def columns_used(export: Export, columns: list[dict] | None = None) -> dict[str, str]:
    """{name: type} of the columns `export` uses, as `columns` (the dataset's) has them;
    a name it uses that isn't there any more stays, as GONE: saving a flagged draft
    without taking the column out keeps it flagged."""
    by_name = {column["name"]: column for column in (export.dataset.columns if columns is None else columns)}
    return {name: signature(by_name[name]) if name in by_name else GONE for name in used_names(export)}


FIELDS = ["schema_columns", "schema_problem", "schema_problem_at"]


def record(export: Export) -> None:
    """Before an export's definition is saved: the columns it uses, as they are now, and
    whether one of them is gone."""
    export.schema_columns = columns_used(export)
    problem = problem_of(export)
    if problem != export.schema_problem:
        export.schema_problem = problem
        export.schema_problem_at = timezone.now() if problem else None


def problem_of(export: Export, dataset: Dataset | None = None) -> str:
    """What is wrong with the export's columns in its dataset as last refreshed; ''
    when nothing is."""
    dataset = dataset or export.dataset
    if dataset.missing_since is not None:
        return f"the table {dataset.qualified_name} is gone from {dataset.database.name}"
    current = {column["name"]: signature(column) for column in dataset.columns}
    problems = []
    for name, was in (export.schema_columns or {}).items():
        now = current.get(name)
        if now is None:
            problems.append(f"the column {name} is gone from {dataset.qualified_name}")
        elif was != GONE and not compatible(was, now):  # a column back is fine, whatever its type
            problems.append(f"the column {name} of {dataset.qualified_name} changed type, from {was} to {now}")
    return "; ".join(problems)


def baseline(dataset: Dataset) -> None:
    """Before a refresh changes a dataset's columns: exports that never recorded theirs
    (saved before the watch existed) record them from the columns they were built on."""
    for export in Export.objects.filter(dataset=dataset, schema_columns={}).select_related("dataset"):
        export.schema_columns = columns_used(export, dataset.columns)
        Export.objects.filter(id=export.id).update(schema_columns=export.schema_columns)


def watch(database: Database) -> list[Export]:
    """After a refresh: flag the exports of `database` whose columns are gone or changed
    (e-mailing their people about each new problem), and clear the flags that no longer
    hold. The exports newly flagged."""
    flagged = []
    now = timezone.now()
    # Not the exports that never run again (a finished one-shot, an expired schedule).
    exports = Export.objects.filter(dataset__database=database).exclude(
        status__in=[Export.Status.EXPIRED, Export.Status.FINISHED]
    )
    for export in exports.select_related("dataset__database", "owner", "sandbox"):
        problem = problem_of(export)
        if problem == export.schema_problem:
            continue
        # From what this refresh read: a refresh running beside it (the page's button and
        # the daily one) finds it changed, and tells nobody a second time.
        changed = Export.objects.filter(id=export.id, schema_problem=export.schema_problem).update(
            schema_problem=problem, schema_problem_at=now if problem else None
        )
        export.schema_problem = problem
        if problem and changed:
            flagged.append(export)
            _tell(export, problem)
            logger.warning("export %s: %s", export.id, problem)
    return flagged


def _tell(export: Export, problem: str) -> None:
    to = list(dict.fromkeys([address for address in [export.owner.email, *recipients_of(export)] if address]))
    if not to:
        return
    url = settings.SITE_URL + site_reverse("exports-detail", sandbox=export.sandbox, args=[export.id])
    body = (
        f"The source of the export {export.name!r} changed: {problem}.\n\n"
        "Its next run fails with SCHEMA_CHANGED before reading anything, rather than delivering "
        "files of another shape. Change the export to fit the table as it is now (unschedule it, "
        "edit it, schedule it again), or restore the column in the source and refresh it.\n\n"
        f"{url}\n"
    )
    try:
        send_mail(
            subject=f"[Exports] {export.name}: a column it uses changed",
            message=body,
            from_email=settings.DEFAULT_FROM_EMAIL,
            recipient_list=to,
        )
    except Exception:
        logger.exception("export %s: the schema change e-mail could not be sent", export.id)


# The daily refresh ----------------------------------------------------------------------


def refresh(database: Database) -> list[Dataset]:
    """Refresh a source's datasets (exports/models.py, `refresh_datasets`) and watch its
    exports; a SourceError when the source can't be read."""
    for dataset in database.datasets.all():
        baseline(dataset)
    datasets = refresh_datasets(database)
    watch(database)
    return datasets


def refresh_source(database_id: int) -> str:
    """RQ entry point: the daily refresh of one source."""
    database = Database.objects.filter(id=database_id).first()
    if database is None:
        return "gone"
    try:
        refresh(database)
    except Exception:
        # Said on the Sources page too (Database.refresh_error); tried again tomorrow.
        logger.warning("source %s: the daily refresh failed", database.name, exc_info=True)
        return "failed"
    return "refreshed"


def refresh_due(now: datetime | None = None) -> list[int]:
    """The scheduler's part: each source not refreshed for SOURCE_REFRESH_HOURS is
    claimed (one scheduler wins) and refreshed by a worker. The ids enqueued."""
    now = now or timezone.now()
    stale = now - timedelta(hours=settings.SOURCE_REFRESH_HOURS)
    # Never refreshed (its first refresh failed): tried a day after it was added.
    due = Database.objects.filter(Q(refreshed_at__lt=stale) | Q(refreshed_at__isnull=True, created_at__lt=stale))
    queue = django_rq.get_queue(settings.EXPORTS_QUEUE)
    enqueued = []
    for database in due.only("id", "refreshed_at")[:100]:
        # Claimed by moving its refresh time: a second scheduler finds it fresh. A
        # refresh that then fails is tried again a day later (the page says why).
        was = database.refreshed_at
        claimed = Database.objects.filter(id=database.id, refreshed_at=was).update(refreshed_at=now)
        if not claimed:
            continue
        try:
            queue.enqueue("exports.schema_watch.refresh_source", database.id, job_id=f"refresh-{database.id}")
        except Exception:
            # Redis is down: given back, for the next tick.
            Database.objects.filter(id=database.id, refreshed_at=now).update(refreshed_at=was)
            logger.warning("source %s: its daily refresh could not be enqueued", database.id, exc_info=True)
            break
        enqueued.append(database.id)
    return enqueued
