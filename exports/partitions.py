"""Partitioned runs: one large export read by many workers at once.

A run whose estimated rows exceed EXPORT_PARTITION_ROWS, on a dataset with an integer,
timestamp or date key (the leading column of its primary key, or its cursor column), is
split into key ranges of about that many rows (`plan`). The ranges come from the key's
MIN and MAX and, where the source keeps them, the planner's statistics (PostgreSQL's
pg_stats histogram): the table is never counted. A key that may be empty gets one more
partition for those rows, so that no row falls between the ranges.

Each range is a `RunPartition`, whose RQ job (`jobs.run_partition`) any worker on any
machine may take. It reads its range, writes its part files, takes the next part
numbers of the run (`reserve_parts`: numbered across the whole run, in the order the
partitions finish) and uploads them under the run's delivery folder, without a TNF. The
partition that finishes last delivers the run (`jobs.finish_partitioned_run`): the TNF
listing every partition's files, then the run's success. So the TNF exists only when
every partition succeeded.

- A partition whose worker died, or whose source went away, is retried alone, up to
  EXPORT_MAX_ATTEMPTS attempts; the others keep what they delivered.
- A partition that fails for good fails the run, and every file the run delivered goes.
- Progress is the sum of the partitions'. Cancelling the run stops them all: each
  notices at its next batch; the reconciler clears what is left (`reconcile`).
- The plan (columns, filters, file settings, folder) is fixed when the run is split: an
  export edited meanwhile doesn't give one run files of two shapes.
"""

from __future__ import annotations

import logging
import math
from datetime import date, datetime, timedelta
from functools import partial

import django_rq
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Sum
from django.utils import timezone

from exports import delivery
from exports.dispatch import no_job_will_run
from exports.engine import MAX_PARTS, FileSpec
from exports.incremental import _moment_text, _typed
from exports.models import Export, Run, RunFile, RunPartition, worker_name

logger = logging.getLogger(__name__)

KEY_TYPES = {"integer", "timestamp", "datetime", "date"}
# More would be a mistake in EXPORT_PARTITION_ROWS, not a plan.
MAX_PARTITIONS = 1_000
JOB = "exports.jobs.run_partition"
# Runs whose leftovers one tick removes: a store that is down must not hold the tick up for long.
CLEAR_PER_TICK = 3


def partition_key(export: Export) -> dict | None:
    """The column a large run of `export` splits on: the leading column of the
    dataset's primary key; for an incremental window, else its cursor. A full export
    never splits on a cursor: partitions read at different moments, and a row whose
    cursor moved meanwhile (`updated_at`) could leave a range not yet read for one read
    already. A custom query isn't split (its rows may differ from one reading to the
    next), nor a SQLite timestamp (compared as text, which no range covers for sure)."""
    dataset = export.dataset
    if dataset.kind == dataset.Kind.QUERY:
        return None
    names = list((dataset.primary_key or [])[:1])
    if export.is_incremental:
        names.append(export.cursor_column)
    for name in names:
        column = dataset.column(name) if name else None
        if column is None or column["type"] not in KEY_TYPES:
            continue
        if dataset.database.engine == "sqlite" and column["type"] != "integer":
            continue
        return column
    return None


def split_points(low: str, high: str, logical_type: str, count: int, quantiles: list[str]) -> list[str]:
    """The `count - 1` values that cut [low, high] into `count` ranges of about as many
    rows: at the statistics' quantiles when there are enough of them, else evenly
    spaced. Strictly increasing, strictly above `low`; fewer when the key has fewer
    distinct values. Text in the form the filters parse (and the source gave)."""

    def typed(text):
        return _typed(text, logical_type, "key")

    lowest, highest = typed(low), typed(high)
    points: list = []
    if len(quantiles) >= count + 1:
        # m + 1 bounds of m equal-frequency buckets: cut at every (m / count)-th.
        bounds = sorted(typed(q) for q in quantiles)
        last = len(bounds) - 1
        points = [bounds[round(i * last / count)] for i in range(1, count)]
    else:
        span = highest - lowest
        steps = span // timedelta(microseconds=1) if isinstance(span, timedelta) else span
        for i in range(1, count):
            step = (steps * i + count // 2) // count  # rounded: two keys still split in two
            points.append(lowest + (timedelta(microseconds=step) if isinstance(span, timedelta) else step))
    unique = sorted({point for point in points if lowest < point <= highest})
    return [_text(point, low) for point in unique]


def _text(value, like: str) -> str:
    if isinstance(value, datetime):
        return _moment_text(value, like)
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def plan(
    run: Run,
    reader,
    *,
    key: dict,
    estimate: int,
    filter_specs: list[dict],
    columns: list[str],
    spec: FileSpec,
    folder: str,
    watermark: dict | None,
) -> int:
    """Split `run` into key-range partitions and hand them to the workers, once the
    transaction commits; how many (0: it doesn't split, and runs in one job)."""
    count = min(MAX_PARTITIONS, math.ceil(estimate / settings.EXPORT_PARTITION_ROWS))
    low, high = reader.key_bounds(key)
    if count < 2 or low is None or high is None:
        return 0
    try:
        points = split_points(low, high, key["type"], count, reader.key_quantiles(key))
    except ValidationError:
        return 0  # a key value the filters can't take (text in an INTEGER column): read in one job
    if not points:
        return 0  # one key value: nothing to split on
    name = key["name"]
    edges = [None, *points, None]
    ranges = [(edges[i], edges[i + 1]) for i in range(len(edges) - 1)]
    partitions = []
    for number, (start, end) in enumerate(ranges, start=1):
        bounds = []
        if start is not None:
            bounds.append({"column": name, "operator": "gte", "value": start})
        if end is not None:
            bounds.append({"column": name, "operator": "lt", "value": end})
        partitions.append(
            RunPartition(
                run=run,
                number=number,
                key_column=name,
                low=start or "",
                high=end or "",
                columns=columns,
                filters=[*filter_specs, *bounds],
            )
        )
    # The ranges' comparisons never match an empty key, even a primary key's (SQLite lets
    # most hold NULL): those rows get a partition of their own, an index lookup where the
    # key is indexed, which delivers nothing when there are none.
    partitions.append(
        RunPartition(
            run=run,
            number=len(partitions) + 1,
            key_column=name,
            empty_keys=True,
            columns=columns,
            filters=[*filter_specs, {"column": name, "operator": "is_empty"}],
        )
    )
    with transaction.atomic():
        split = Run.objects.filter(id=run.id, status=Run.Status.RUNNING).update(
            partition_count=len(partitions),
            estimated_rows=estimate,
            plan={
                "folder": folder,
                "file_format": spec.file_format,
                "compression": spec.compression,
                "rows_per_file": spec.rows_per_file,
                "name_stem": spec.name_stem,
                "csv_delimiter": spec.csv_delimiter,
                "csv_header": spec.csv_header,
                "spreadsheet_safe": spec.spreadsheet_safe,
                "watermark": watermark,
            },
            heartbeat_at=timezone.now(),
        )
        if not split:
            return 0  # cancelled meanwhile: the caller finds out at its next step
        RunPartition.objects.bulk_create(partitions)
        transaction.on_commit(partial(_enqueue_all, partitions))
    logger.info("run %s: split into %s partitions on %s", run.id, len(partitions), name)
    return len(partitions)


def file_spec(run: Run) -> FileSpec:
    """The file settings the run was planned with."""
    plan_ = run.plan or {}
    return FileSpec(
        file_format=plan_["file_format"],
        compression=plan_["compression"],
        rows_per_file=plan_["rows_per_file"],
        name_stem=plan_["name_stem"],
        csv_delimiter=plan_["csv_delimiter"],
        csv_header=plan_["csv_header"],
        spreadsheet_safe=plan_["spreadsheet_safe"],
    )


def _enqueue_all(partitions: list[RunPartition]) -> None:
    for partition in partitions:
        enqueue(partition)


def job_id(partition: RunPartition) -> str:
    """Each attempt its own job: a retry never reuses the job of the attempt it follows."""
    return f"{partition.id}-{partition.attempt}"


def enqueue(partition: RunPartition) -> None:
    queue = django_rq.get_queue(settings.EXPORTS_QUEUE)
    queue.enqueue(JOB, str(partition.id), job_id=job_id(partition))


def claim(partition_id) -> RunPartition | None:
    """Queued → running, for one worker, while its run runs; None otherwise (a partition
    of a run that ended meanwhile is cancelled)."""
    now = timezone.now()
    partition = RunPartition.objects.filter(id=partition_id).select_related("run").first()
    if partition is None:
        return None
    if partition.run.status != Run.Status.RUNNING:
        RunPartition.objects.filter(id=partition_id, status=RunPartition.Status.QUEUED).update(
            status=RunPartition.Status.CANCELLED, finished_at=now
        )
        return None
    claimed = RunPartition.objects.filter(id=partition_id, status=RunPartition.Status.QUEUED).update(
        status=RunPartition.Status.RUNNING,
        started_at=now,
        heartbeat_at=now,
        worker=worker_name(),
        rows_done=0,
    )
    if not claimed:
        return None
    return RunPartition.objects.select_related("run__export__dataset__database", "run__connector").get(id=partition_id)


def _current(partition: RunPartition):
    """The partition's row while this attempt is the one running it: every update of an
    attempt goes through here, so that one the reconciler gave up on (and queued again)
    changes nothing of its successor's."""
    return RunPartition.objects.filter(id=partition.id, attempt=partition.attempt, status=RunPartition.Status.RUNNING)


class Superseded(Exception):
    """This attempt was taken for lost, and another one runs (or will run) the partition."""


def report_progress(partition: RunPartition, rows_done: int) -> bool:
    """The partition's rows, and the run's as their sum; False once the run is no
    longer running (cancelled, or failed by another partition). Superseded when the
    partition is no longer this attempt's."""
    if not _current(partition).update(rows_done=rows_done):
        raise Superseded()
    total = RunPartition.objects.filter(run_id=partition.run_id).aggregate(total=Sum("rows_done"))["total"] or 0
    return bool(Run.objects.filter(id=partition.run_id, status=Run.Status.RUNNING).update(rows_done=total))


def beat(partition: RunPartition) -> None:
    now = timezone.now()
    if _current(partition).update(heartbeat_at=now):
        Run.objects.filter(id=partition.run_id, status__in=[Run.Status.RUNNING, Run.Status.CANCELLED]).update(
            heartbeat_at=now
        )


class TooManyParts(Exception):
    pass


def reserve_parts(partition: RunPartition, count: int) -> int:
    """The first of `count` part numbers for the partition's files: its earlier
    attempt's, when they are enough (a retry writes the same range), else the run's next."""
    with transaction.atomic():
        run = Run.objects.select_for_update().get(id=partition.run_id)
        current = _current(partition).first()
        if current is None:
            raise Superseded()
        if current.first_part is not None and count <= current.part_count:
            return current.first_part
        first = run.parts_reserved + 1
        if first + count - 1 > MAX_PARTS:
            raise TooManyParts(
                f"the export would write more than {MAX_PARTS:,} files of {file_spec(run).rows_per_file:,} rows: "
                "raise its rows per file"
            )
        Run.objects.filter(id=run.id).update(parts_reserved=first + count - 1)
        RunPartition.objects.filter(id=partition.id).update(first_part=first, part_count=count)
        return first


def note(partition: RunPartition, paths: list[str]) -> None:
    if not _current(partition).update(partial_paths=paths):
        raise Superseded()


def succeed(partition: RunPartition, files: list[RunFile], peak_rss_bytes: int) -> str:
    """Record a partition's delivered files. "last" when every partition of the run has
    now succeeded (the caller delivers the run), "more" while others go on, "ended" when
    the run ended meanwhile (the caller removes what it delivered); Superseded when
    another attempt has the partition (its files have the same names: nothing goes)."""
    with transaction.atomic():
        run = Run.objects.select_for_update().get(id=partition.run_id)
        if run.status != Run.Status.RUNNING:
            return "ended"
        updated = _current(partition).update(
            status=RunPartition.Status.SUCCEEDED,
            finished_at=timezone.now(),
            rows_done=sum(f.rows for f in files),
            row_count=sum(f.rows for f in files),
            bytes=sum(f.size_bytes for f in files),
            files=[_file_record(f) for f in files],
            partial_paths=[],
            peak_rss_bytes=peak_rss_bytes,
        )
        if not updated:
            raise Superseded()  # lost meanwhile (its heartbeat went stale): its retry delivers
        left = RunPartition.objects.filter(run_id=run.id).exclude(status=RunPartition.Status.SUCCEEDED).exists()
        return "more" if left else "last"


def _file_record(f: RunFile) -> dict:
    return {
        "part": f.part,
        "name": f.name,
        "path": f.path,
        "size_bytes": f.size_bytes,
        "rows": f.rows,
        "sha256": f.sha256,
    }


def run_files(run: Run) -> list[RunFile]:
    """Every partition's files, as the run's, in part order."""
    records = [record for partition in run.partitions.all() for record in partition.files]
    return [RunFile(**record) for record in sorted(records, key=lambda record: record["part"])]


def put_back(partition: RunPartition) -> bool:
    """Back in the queue on the same attempt: its worker stopped for a deploy. The
    worker enqueues it again once RQ is done with its job."""
    return bool(_current(partition).update(**_queued_fields(timezone.now())))


def _queued_fields(at: datetime) -> dict:
    return {
        "status": RunPartition.Status.QUEUED,
        "queued_at": at,
        "started_at": None,
        "heartbeat_at": None,
        "rows_done": 0,
        "partial_paths": [],
    }


def retry(partition: RunPartition, *, delay: float = 0) -> str:
    """A failed partition of a running run, queued again alone on its next attempt: at
    once, or after `delay` seconds (then the reconciler enqueues it, `requeue_lost_jobs`).
    "queued"; "taken" when someone else moved it on meanwhile (not a reason to fail the
    run); "no" when its attempts are used up or its run is over."""
    if partition.attempt >= settings.EXPORT_MAX_ATTEMPTS:
        return "no"
    if not Run.objects.filter(id=partition.run_id, status=Run.Status.RUNNING).exists():
        return "no"
    at = timezone.now() + timedelta(seconds=delay)
    moved = RunPartition.objects.filter(
        id=partition.id, attempt=partition.attempt, status=RunPartition.Status.FAILED
    ).update(**_queued_fields(at), attempt=partition.attempt + 1)
    if not moved:
        return "taken"
    successor = RunPartition.objects.get(id=partition.id)  # a copy: the old attempt's object stays its own
    if not delay:
        enqueue(successor)
    return "queued"


def stop(partition: RunPartition) -> None:
    """Running → cancelled: its run ended while it read."""
    _current(partition).update(status=RunPartition.Status.CANCELLED, finished_at=timezone.now())


def failed(partition: RunPartition, code: str, message: str) -> bool:
    """Running → failed; False when this attempt was not running it any more."""
    return bool(
        _current(partition).update(
            status=RunPartition.Status.FAILED,
            finished_at=timezone.now(),
            error_code=code,
            error_message=message[:4000],
        )
    )


def discard_files(run: Run) -> None:
    """Remove from the store what the run's partitions delivered or were writing: a run
    that ended without success keeps nothing. Partitions still queued are cancelled. A
    partition's records go once its files are gone (kept when the store can't be
    reached, for the reconciler's next try: `clear_ended`)."""
    RunPartition.objects.filter(run=run, status=RunPartition.Status.QUEUED).update(
        status=RunPartition.Status.CANCELLED, finished_at=timezone.now()
    )
    for partition in RunPartition.objects.filter(run=run).exclude(status=RunPartition.Status.RUNNING):
        paths = [*partition.partial_paths[::-1], *(record["path"] for record in partition.files)]
        if paths and delivery.remove_paths(run, list(dict.fromkeys(paths))):
            RunPartition.objects.filter(id=partition.id).update(files=[], partial_paths=[])


def stale_partitions(now: datetime):
    """Running partitions whose worker stopped writing their heartbeat."""
    stale = now - timedelta(seconds=settings.EXPORT_HEARTBEAT_TIMEOUT)
    return RunPartition.objects.filter(status=RunPartition.Status.RUNNING, heartbeat_at__lt=stale).select_related(
        "run__export", "run__connector"
    )


def requeue_lost_jobs(now: datetime) -> list[RunPartition]:
    """Queued partitions of running runs whose job Redis lost: enqueued again."""
    grace = now - timedelta(seconds=settings.EXPORT_REQUEUE_AFTER)
    redis = django_rq.get_connection(settings.EXPORTS_QUEUE)
    requeued = []
    for partition in RunPartition.objects.filter(
        status=RunPartition.Status.QUEUED, queued_at__lt=grace, run__status=Run.Status.RUNNING
    ):
        if no_job_will_run(job_id(partition), redis):
            enqueue(partition)
            requeued.append(partition)
            logger.warning("%s: its job was lost from Redis; enqueued again", partition)
    return requeued


def stranded_runs(now: datetime):
    """Partitioned runs that stay running with every partition done and nobody
    delivering them: the worker of the last one died as it delivered the run."""
    stale = now - timedelta(seconds=settings.EXPORT_HEARTBEAT_TIMEOUT)
    busy = RunPartition.objects.exclude(status=RunPartition.Status.SUCCEEDED).values("run_id")
    return (
        Run.objects.filter(status=Run.Status.RUNNING, partition_count__gt=0, heartbeat_at__lt=stale)
        .exclude(id__in=busy)
        .select_related("export", "connector")
    )


def clear_ended(now: datetime) -> None:
    """Partitioned runs that ended without success in the last day: what their
    partitions still hold goes (a cancel that no running partition saw, a failure, a
    store that could not be reached at the first try)."""
    ended = Run.objects.filter(
        partition_count__gt=0,
        status__in=[Run.Status.FAILED, Run.Status.CANCELLED],
        finished_at__gte=now - timedelta(days=1),
    )
    left = RunPartition.objects.filter(run__in=ended).exclude(status=RunPartition.Status.RUNNING)
    holding = {
        run_id
        for run_id, status, files, partial in left.values_list("run_id", "status", "files", "partial_paths")
        if status == RunPartition.Status.QUEUED or files or partial
    }
    for run in Run.objects.filter(id__in=holding).select_related("export", "connector")[:CLEAR_PER_TICK]:
        discard_files(run)


def failed_under_running(now: datetime):
    """Partitions left failed under a running run: their worker died between failing
    them and retrying them (or failing the run)."""
    grace = now - timedelta(seconds=settings.EXPORT_HEARTBEAT_TIMEOUT)
    return RunPartition.objects.filter(
        status=RunPartition.Status.FAILED, finished_at__lt=grace, run__status=Run.Status.RUNNING
    ).select_related("run__export", "run__connector")
