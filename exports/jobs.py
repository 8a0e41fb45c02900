"""The RQ job that executes a run: read the source, write part files, deliver, report."""

from __future__ import annotations

import dataclasses
import errno
import logging
import resource
import shutil
import threading
import time
from collections.abc import Callable
from contextlib import closing
from functools import partial
from pathlib import Path
from uuid import UUID

import django_rq
import pyarrow as pa
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.template.defaultfilters import filesizeformat
from django.utils import timezone
from rq.timeouts import JobTimeoutException

from exports import delivery, hooks, partitions, schema_watch
from exports.actions import AUTO_RETRY
from exports.dispatch import dispatch_quietly, no_job_will_run
from exports.engine import FileSpec, TooManyFiles, WrittenFile, read_ahead, write_copied_csv, write_files
from exports.filters import validate_filters
from exports.incremental import Lookback, Window, window_for
from exports.layout import context_for_run, delivery_folder, file_extension, render_template
from exports.models import Export, IncrementalMemory, Run, RunFile, RunPartition
from exports.notify import notify_run
from exports.sources import CopyRefused, DatasetReader, SchemaChanged, SourceError, arrow_schema, open_reader
from exportsite import redaction
from exportsite.logs import run_context

logger = logging.getLogger(__name__)


class RunCancelled(Exception):
    pass


class WorkDiskFull(Exception):
    """The worker's disk can't hold the run's files (before or while writing them)."""


class Interrupted(Exception):
    """The worker is stopping (a deploy): the run goes back to the queue."""


# Set in a work horse by SIGTERM (exports/worker.py): the run stops at its next batch.
_interrupted = threading.Event()


def request_interruption(signum, frame) -> None:
    _interrupted.set()


def _peak_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


class _Progress:
    """Writes rows done (`report`: a run's, or a partition's) at most a few times a
    second, and notices cancellation (`report` says False)."""

    def __init__(self, report: Callable[[int], bool], interval: float = 0.5):
        self.report = report
        self.interval = interval
        self.last = 0.0

    def __call__(self, rows_done: int) -> None:
        if _interrupted.is_set():
            raise Interrupted()
        now = time.monotonic()
        if now - self.last < self.interval:
            return
        self.last = now
        if not self.report(rows_done):
            raise RunCancelled()


class _Heartbeat(threading.Thread):
    """Writes `heartbeat_at` every EXPORT_HEARTBEAT_SECONDS while the run (or one of its
    partitions) executes: the scheduler's reconciler takes a silent one for a dead worker
    (WORKER_LOST). A failed write (a locked database, a dropped connection) is tried
    again at the next beat; it doesn't end the heartbeat."""

    def __init__(self, run_id: UUID, partition: RunPartition | None = None):
        super().__init__(name=f"heartbeat-{run_id}", daemon=True)
        self.run_id = run_id
        self.partition = partition
        self.stopped = threading.Event()

    def run(self) -> None:
        try:
            while not self.stopped.wait(settings.EXPORT_HEARTBEAT_SECONDS):
                try:
                    self.beat()
                except Exception:
                    logger.warning("run %s: writing its heartbeat failed; trying again", self.run_id, exc_info=True)
                    connection.close()
        finally:
            connection.close()

    def beat(self) -> None:
        if self.partition is not None:
            partitions.beat(self.partition)
            return
        # A cancelled run's worker holds its organisation's place until it stops.
        Run.objects.filter(id=self.run_id, status__in=[Run.Status.RUNNING, Run.Status.CANCELLED]).update(
            heartbeat_at=timezone.now()
        )

    def stop(self) -> None:
        self.stopped.set()
        self.join(timeout=10)


def run_export(run_id: str) -> str:
    """RQ entry point. Safe to run twice: only the job that claims the run does the work."""
    with run_context(run_id):
        return _run_export(run_id)


def _run_export(run_id: str) -> str:
    run = Run.claim(run_id)
    if run is None:
        logger.info("run %s is not queued any more; nothing to do", run_id)
        return "skipped"
    heartbeat = _Heartbeat(run.id)
    heartbeat.start()
    try:
        with redaction.scope(_secrets(run.export)):
            execute_run(run)
    finally:
        heartbeat.stop()
        # Let go: a cancelled run's place is free once its worker stopped; the next run goes.
        Run.objects.filter(id=run.id, status=Run.Status.CANCELLED).update(heartbeat_at=None)
        if not _interrupted.is_set():
            dispatch_quietly()  # else the worker does, once RQ is done with this job (after_horse)
    run.refresh_from_db()
    if not run.is_active:  # queued again (a deploy), or split into partitions, it goes on
        hooks.enqueue_calls_of(run)
        notify_run(run)
    return run.status


def lose(run: Run, message: str) -> bool:
    """A run whose worker died: WORKER_LOST (the reconciler retries it), what it had
    started to deliver removed, its owner told. False when it was not running any more."""
    if not run.fail(Run.ErrorCode.WORKER_LOST, message):
        return False
    shutil.rmtree(settings.EXPORT_WORK_DIR / str(run.id), ignore_errors=True)  # on this machine, if it was here
    delivery.discard_partial(run)
    if run.partition_count:
        partitions.discard_files(run)
    hooks.enqueue_calls_of(run)
    notify_run(run)
    logger.warning("run %s: worker lost", run.id)
    return True


def horse_died(run_id: str, how: str) -> None:
    """RQ saw the work horse of a run die (exports/worker.py): the run is lost now, not
    when its heartbeat goes stale."""
    run = Run.objects.filter(id=run_id, status=Run.Status.RUNNING).select_related("export", "connector").first()
    if run is None:
        return  # it ended, or never started: a queued run's ended job is the reconciler's
    if lose(
        run, f"the worker process running it died ({how}): it was killed, or ran out of memory; nothing was delivered"
    ):
        dispatch_quietly()  # its place is free


def after_horse(run_id: str) -> None:
    """After a work horse exited: a run it put back in the queue goes to the workers again."""
    if Run.objects.filter(id=run_id, status=Run.Status.QUEUED, dispatched_at__isnull=True).exists():
        dispatch_quietly()


def _secrets(export: Export) -> list[str]:
    """The source's password and the connector's secrets: what a run holds."""
    secrets = redaction.url_secrets(export.dataset.database.url)
    if export.connector is not None:
        secrets += list(export.connector.secret_values().values())
    return secrets


def _redacted(text: str, export: Export) -> str:
    """A message without the run's secrets, in any form."""
    return redaction.redact(text, _secrets(export))


def _through(lookback: Lookback, batches, wanted: list[str]):
    for batch in batches:
        batch = lookback(batch)
        if batch.num_rows:
            yield batch.select(wanted)


def _remember(export: Export, window: Window, lookback: Lookback | None) -> None:
    """Keep what the next run's lookback needs, or nothing if this run had none."""
    if lookback is None or window.settled is None:
        IncrementalMemory.objects.filter(export=export).delete()
        return
    keys, count = lookback.memory()
    IncrementalMemory.objects.update_or_create(
        export=export,
        defaults={
            "dataset_id": export.dataset_id,
            "column": window.column,
            "cursor_type": window.cursor_type,
            "key_columns": list(window.key),
            "watermark": window.next_watermark,
            "settled": window.settled,
            "history": window.history,
            "key_count": count,
            "keys": keys,
        },
    )


def execute_run(run: Run) -> None:
    export = run.export
    work_dir = settings.EXPORT_WORK_DIR / str(run.id)
    delivered: list = []
    tnf = ""
    try:
        problem = schema_watch.problem_of(export)
        if problem:
            raise SchemaChanged(
                f"{problem}: nothing was read, so that no file of another shape is delivered. Change the export "
                "to fit the table as it is now, or restore the column and refresh the source"
            )
        window = None
        memory = None
        filter_specs = list(export.filters)
        if export.is_incremental:
            memory = IncrementalMemory.objects.filter(export=export).first()
            window = window_for(export, lambda: open_reader(export.dataset, [], []), timezone.now(), memory)
            filter_specs += window.filters()
            Run.objects.filter(id=run.id).update(
                window_from=window.low,
                window_to=window.high,
                lookback_from=window.lookback_from,
                warning=window.warning,
            )
        try:
            filters = validate_filters(filter_specs, export.dataset.columns)
        except ValidationError as exc:
            raise SourceError(f"the export's filters no longer fit the dataset: {'; '.join(exc.messages)}") from None
        spec = FileSpec(
            file_format=export.file_format,
            compression=export.compression,
            rows_per_file=export.rows_per_file,
            name_stem=render_template(export.file_template, context_for_run(run)),
            csv_delimiter=export.csv_delimiter,
            csv_header=export.csv_header,
            spreadsheet_safe=run.spreadsheet_safe,
        )
        wanted = list(export.columns) or export.dataset.column_names
        lookback = None
        extra: list[str] = []
        if window is not None and window.remembers:
            # The lookback needs the cursor and the key, delivered or not.
            extra = [name for name in dict.fromkeys((window.column, *window.key)) if name not in wanted]
        with open_reader(export.dataset, wanted + extra, filters, batch_rows=settings.EXPORT_BATCH_ROWS) as reader:
            estimate = reader.estimate_rows()
            Run.objects.filter(id=run.id).update(estimated_rows=estimate)
            if _split(run, reader, estimate, window, filter_specs, wanted, spec):
                return  # its partitions' jobs go on (exports/partitions.py)
            check_work_disk(estimate, len(wanted), compressed=export.compression != Export.Compression.NONE)
            files = None
            if window is None or not window.remembers:
                files = _copied(reader, spec, estimate, wanted, work_dir, _Progress(run.report_progress))
            if files is None:
                schema = pa.schema([field for field in reader.schema if field.name not in extra])
                batches = reader.batches()
                if window is not None and window.remembers:
                    lookback = Lookback(window, memory.keys if window.lookback_from is not None and memory else None)
                    batches = _through(lookback, batches, wanted)
                with closing(read_ahead(batches, depth=1)) as stream:
                    files = write_files(stream, schema, spec, work_dir, on_progress=_Progress(run.report_progress))
        if lookback is not None:
            Run.objects.filter(id=run.id).update(late_rows=lookback.late_rows)
        folder, delivered, tnf = delivery.deliver(run, files)
        with transaction.atomic():
            if not run.succeed(files=delivered, delivery_folder=folder, tnf_path=tnf, peak_rss_bytes=_peak_rss_bytes()):
                raise RunCancelled()
            if window is not None:
                # Only a complete delivery moves the watermark, and the memory with it.
                Export.objects.filter(id=export.id).update(
                    watermark={"column": window.column, "value": window.next_watermark}
                )
                _remember(export, window, lookback)
        logger.info("run %s succeeded: %s rows in %s files", run.id, run.row_count, len(delivered))
    except RunCancelled:
        logger.info("run %s was cancelled", run.id)
        delivery.discard(run, delivered, tnf)
    except Interrupted:
        delivery.discard(run, delivered, tnf)
        if run.put_back():
            logger.info("run %s: its worker is stopping; the run is back in the queue", run.id)
    except SourceError as exc:
        delivery.discard(run, delivered)
        run.fail(exc.code, _redacted(str(exc), export), peak_rss_bytes=_peak_rss_bytes())
    except TooManyFiles as exc:
        delivery.discard(run, delivered)
        run.fail(Run.ErrorCode.TOO_MANY_FILES, str(exc), peak_rss_bytes=_peak_rss_bytes())
    except delivery.DeliveryFailed as exc:
        logger.info("run %s: delivery failed: %s", run.id, exc)
        run.fail(exc.code, str(exc), peak_rss_bytes=_peak_rss_bytes())
    except WorkDiskFull as exc:
        delivery.discard(run, delivered)
        _disk_full(run, str(exc))
    except JobTimeoutException:
        delivery.discard(run, delivered)
        run.fail(
            Run.ErrorCode.TIMEOUT,
            f"the export ran longer than {settings.RQ_QUEUES[settings.EXPORTS_QUEUE]['DEFAULT_TIMEOUT']} s",
        )
    except Exception as exc:
        delivery.discard(run, delivered)
        if _out_of_space(exc):
            _disk_full(run, f"the worker's disk filled up while writing the files ({exc})")
        else:
            logger.exception("run %s failed", run.id)
            run.fail(Run.ErrorCode.INTERNAL_ERROR, _redacted(f"unexpected error: {type(exc).__name__}: {exc}", export))
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)


def _copied(
    reader: DatasetReader, spec: FileSpec, estimate, names: list[str], work_dir: Path, progress
) -> list[WrittenFile] | None:
    """CSV the source writes itself (PostgreSQL's COPY), when its column types allow our
    file contract byte for byte and the rows fit in one file; None otherwise, and when
    there turned out to be more rows than a file holds (then the Arrow path writes them)."""
    if spec.file_format != Export.Format.CSV or estimate is None or estimate > spec.rows_per_file:
        return None
    chunks = reader.csv_copy(spec.csv_delimiter, spreadsheet_safe=spec.spreadsheet_safe)
    if chunks is None:
        return None
    try:
        with closing(chunks):  # a cancel or a stop closes the COPY, and its connection, now
            written = write_copied_csv(
                chunks, names, spec, work_dir, rows=lambda: reader.copied_rows, on_progress=progress
            )
    except CopyRefused as exc:
        logger.info("COPY can't write these rows as our file contract does (%s): the Arrow path writes them", exc)
        shutil.rmtree(work_dir, ignore_errors=True)
        return None
    if written.rows > spec.rows_per_file:
        logger.info(
            "the COPY held %s rows, more than a file's %s: written again in parts", written.rows, spec.rows_per_file
        )
        shutil.rmtree(work_dir, ignore_errors=True)
        return None
    return [written]


def _split(run: Run, reader, estimate, window: Window | None, filter_specs, wanted, spec: FileSpec) -> bool:
    """A large run goes to many workers: split into key ranges, one job each."""
    export = run.export
    if estimate is None or estimate <= settings.EXPORT_PARTITION_ROWS or (window is not None and window.remembers):
        return False  # a lookback's memory is the whole window's: such a run reads in one job
    key = partitions.partition_key(export)
    if key is None:
        return False
    folder = delivery.desktop_folder(run) if run.is_desktop else delivery_folder(export, context_for_run(run))
    watermark = {"column": window.column, "value": window.next_watermark} if window is not None else None
    count = partitions.plan(
        run,
        reader,
        key=key,
        estimate=estimate,
        filter_specs=filter_specs,
        columns=wanted,
        spec=spec,
        folder=folder,
        watermark=watermark,
    )
    return count > 0


# --- partitions -------------------------------------------------------------------------------


def run_partition(partition_id: str) -> str:
    """RQ entry point of one key range of a partitioned run (exports/partitions.py)."""
    partition = partitions.claim(partition_id)
    if partition is None:
        return "skipped"
    run = partition.run
    with run_context(str(run.id)):
        heartbeat = _Heartbeat(run.id, partition)
        heartbeat.start()
        try:
            with redaction.scope(_secrets(run.export)):
                outcome = execute_partition(partition)
                if outcome == "last":
                    # The heartbeat goes on, for the run itself: it isn't stranded while its TNF is written.
                    heartbeat.partition = None
                    finish_partitioned_run(run.id)
        finally:
            heartbeat.stop()
    return outcome


def _partition_dir(partition: RunPartition) -> Path:
    return settings.EXPORT_WORK_DIR / f"{partition.run_id}-{partition.number}"


def _renumbered(files: list[WrittenFile], first: int, spec: FileSpec) -> list[WrittenFile]:
    """A partition's files under the run's part numbers, from `first`."""
    extension = file_extension(spec.file_format, spec.compression)
    renamed = []
    for offset, written in enumerate(files):
        part = first + offset
        name = f"{spec.name_stem}-{part}.{extension}"
        path = written.path.rename(written.path.with_name(f".{name}"))  # never onto a file not yet renamed
        renamed.append(dataclasses.replace(written, part=part, name=name, path=path))
    return renamed


def execute_partition(partition: RunPartition) -> str:
    """Read, write and deliver one partition: "last" when it was the run's last
    (the caller delivers the run), "more" while others go on, or how it ended."""
    run = partition.run
    export = run.export
    work_dir = _partition_dir(partition)
    delivered: list = []
    try:
        problem = schema_watch.problem_of(export)
        if problem:
            raise SchemaChanged(f"{problem}: nothing more was read, so that no file of another shape is delivered")
        try:
            filters = validate_filters(partition.filters, export.dataset.columns)
        except ValidationError as exc:
            raise SourceError(f"the export's filters no longer fit the dataset: {'; '.join(exc.messages)}") from None
        spec = partitions.file_spec(run)
        with open_reader(export.dataset, partition.columns, filters, batch_rows=settings.EXPORT_BATCH_ROWS) as reader:
            share = (run.estimated_rows or 0) // max(run.partition_count, 1)
            check_work_disk(share, len(partition.columns), compressed=spec.compression != Export.Compression.NONE)
            progress = _Progress(partial(partitions.report_progress, partition))
            with closing(read_ahead(reader.batches(), depth=1)) as stream:
                files = write_files(stream, reader.schema, spec, work_dir, on_progress=progress)
        if not any(written.rows for written in files):
            files = []  # an empty range delivers nothing (an empty run gets its one file when it finishes)
        if files:
            first = partitions.reserve_parts(partition, len(files))
            files = _renumbered(files, first, spec)
            own = {written.name for written in files} if partition.attempt > 1 else set()
            note = partial(partitions.note, partition)
            delivered = delivery.deliver_part(run, files, (run.plan or {})["folder"], note, own)
        outcome = partitions.succeed(partition, delivered, _peak_rss_bytes())
        if outcome == "ended":
            raise RunCancelled()
        logger.info("%s succeeded: %s rows in %s files", partition, sum(f.rows for f in delivered), len(delivered))
        return outcome
    except partitions.Superseded:
        # Taken for lost: another attempt has the partition, and writes the same names.
        logger.warning("%s: another attempt has it now; this one stops", partition)
        return "superseded"
    except RunCancelled:
        delivery.discard(run, delivered)
        partitions.stop(partition)
        if not Run.objects.filter(id=run.id, status=Run.Status.RUNNING).exists():
            partitions.discard_files(run)  # the run ended: what the others delivered goes too
        return "cancelled"
    except Interrupted:
        delivery.discard(run, delivered)
        partitions.put_back(partition)  # the worker enqueues it again once this horse is gone
        return "interrupted"
    except SourceError as exc:
        delivery.discard(run, delivered)
        return _partition_failed(partition, exc.code, _redacted(str(exc), export))
    except (TooManyFiles, partitions.TooManyParts) as exc:
        delivery.discard(run, delivered)
        return _partition_failed(partition, Run.ErrorCode.TOO_MANY_FILES, str(exc))
    except delivery.DeliveryFailed as exc:
        return _partition_failed(partition, exc.code, str(exc))
    except WorkDiskFull as exc:
        delivery.discard(run, delivered)
        return _partition_failed(partition, Run.ErrorCode.WORK_DISK_FULL, str(exc))
    except JobTimeoutException:
        delivery.discard(run, delivered)
        timeout = settings.RQ_QUEUES[settings.EXPORTS_QUEUE]["DEFAULT_TIMEOUT"]
        return _partition_failed(partition, Run.ErrorCode.TIMEOUT, f"the partition ran longer than {timeout} s")
    except Exception as exc:
        delivery.discard(run, delivered)
        if _out_of_space(exc):
            return _partition_failed(
                partition, Run.ErrorCode.WORK_DISK_FULL, f"the worker's disk filled up while writing the files ({exc})"
            )
        logger.exception("%s failed", partition)
        message = _redacted(f"unexpected error: {type(exc).__name__}: {exc}", export)
        return _partition_failed(partition, Run.ErrorCode.INTERNAL_ERROR, message)
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)


def _partition_failed(partition: RunPartition, code: str, message: str) -> str:
    if not partitions.failed(partition, code, message):
        return "ended"
    return _retry_or_fail(partition, code, message)


def _retry_or_fail(partition: RunPartition, code: str, message: str) -> str:
    """After a partition failed: tried again alone when the failure may pass and
    attempts are left (a lost worker's at once, the others after EXPORT_RETRY_BACKOFF,
    doubled with each attempt), else the run fails, and everything it delivered goes."""
    run = partition.run
    delay = 0 if code == Run.ErrorCode.WORKER_LOST else settings.EXPORT_RETRY_BACKOFF * 2 ** (partition.attempt - 1)
    if code in AUTO_RETRY:
        outcome = partitions.retry(partition, delay=delay)
        if outcome == "queued":
            logger.warning("%s failed (%s), tried again alone: %s", partition, code, message)
            return "retried"
        if outcome == "taken":
            return "retried"  # another scheduler (or the worker) queued it already
    label = f"partition {partition.number} of {run.partition_count} ({partition.range_label})"
    if run.fail(code, f"{label}: {message}", peak_rss_bytes=_peak_rss_bytes()):
        partitions.discard_files(run)
        hooks.enqueue_calls_of(run)
        notify_run(run)
        dispatch_quietly()
    return "failed"


def retry_or_fail(partition: RunPartition) -> str:
    """The reconciler, for a partition left failed under a running run (its worker died
    between failing it and what follows)."""
    return _retry_or_fail(partition, partition.error_code, partition.error_message)


def lose_partition(partition: RunPartition, message: str) -> bool:
    """A partition whose worker died: WORKER_LOST, what it had started to upload
    removed, and tried again alone (or the run fails when its attempts are used up)."""
    paths = list(partition.partial_paths or [])
    if not partitions.failed(partition, Run.ErrorCode.WORKER_LOST, message):
        return False
    shutil.rmtree(_partition_dir(partition), ignore_errors=True)  # on this machine, if it was here
    if paths and delivery.remove_paths(partition.run, paths[::-1]):
        RunPartition.objects.filter(id=partition.id).update(partial_paths=[])
    logger.warning("%s: worker lost", partition)
    _retry_or_fail(partition, Run.ErrorCode.WORKER_LOST, message)
    return True


def partition_horse_died(job_id: str, partition_id: str, how: str) -> None:
    """RQ saw the work horse of a partition's attempt die: lost now, and tried again alone."""
    partition = (
        RunPartition.objects.filter(id=partition_id, status=RunPartition.Status.RUNNING)
        .select_related("run__export", "run__connector")
        .first()
    )
    if partition is not None and partitions.job_id(partition) == job_id:  # not a later attempt's
        lose_partition(partition, f"the worker process reading it died ({how}): it was killed, or ran out of memory")


def after_partition_horse(partition_id: str) -> None:
    """A partition its horse put back in the queue (a deploy) goes to the workers again."""
    partition = RunPartition.objects.filter(
        id=partition_id, status=RunPartition.Status.QUEUED, queued_at__lte=timezone.now()
    ).first()  # a retry after a back-off is the reconciler's to enqueue
    if partition is not None and no_job_will_run(partitions.job_id(partition), _redis()):
        partitions.enqueue(partition)


def _redis():
    return django_rq.get_connection(settings.EXPORTS_QUEUE)


def _empty_file(run: Run) -> list[RunFile]:
    """Every range was empty: the run still delivers one file (a CSV header, an empty
    Parquet file with the schema), as a run in one job does."""
    first = run.partitions.order_by("number").first()
    assert first is not None  # a partitioned run has partitions
    columns = [run.export.dataset.column(name) for name in first.columns]
    if None in columns:
        raise SchemaChanged(f"a column of the export is gone from {run.export.dataset.qualified_name}")
    work_dir = settings.EXPORT_WORK_DIR / f"{run.id}-empty"
    try:
        written = write_files([], arrow_schema([c for c in columns if c]), partitions.file_spec(run), work_dir)
        return delivery.deliver_part(run, written, (run.plan or {})["folder"], partial(delivery.note, run))
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)


def finish_partitioned_run(run_id: UUID) -> None:
    """Every partition delivered its files: the TNF listing them all, then the run's
    success (and the watermark of an incremental run)."""
    run = Run.objects.select_related("export__dataset", "connector").get(id=run_id)
    Run.objects.filter(id=run.id, status=Run.Status.RUNNING).update(heartbeat_at=timezone.now())
    plan = run.plan or {}
    tnf = ""
    files: list[RunFile] = []
    peak = max((p.peak_rss_bytes or 0 for p in run.partitions.all()), default=0) or None
    try:
        files = partitions.run_files(run) or _empty_file(run)
        folder, tnf = delivery.finish_parts(run, plan["folder"], files)
        with transaction.atomic():
            if not run.succeed(files=files, delivery_folder=folder, tnf_path=tnf, peak_rss_bytes=peak):
                raise RunCancelled()
            watermark = plan.get("watermark")
            if watermark is not None:
                Export.objects.filter(id=run.export_id).update(watermark=watermark)
                IncrementalMemory.objects.filter(export_id=run.export_id).delete()
        logger.info(
            "run %s succeeded: %s rows in %s files from %s partitions",
            run.id,
            run.row_count,
            len(files),
            run.partition_count,
        )
    except RunCancelled:
        delivery.discard_partial(run)  # the TNF, or the empty run's one file
        partitions.discard_files(run)
    except (delivery.DeliveryFailed, SchemaChanged) as exc:
        if run.fail(exc.code, str(exc)):
            delivery.discard_partial(run)
            partitions.discard_files(run)
    run.refresh_from_db()
    hooks.enqueue_calls_of(run)
    notify_run(run)
    dispatch_quietly()


# A guess at the bytes a value takes in an uncompressed file (numbers and dates take
# fewer, text often more), a quarter of it compressed: enough to turn away a run that
# cannot fit, not to promise that one will.
_BYTES_PER_VALUE = 16


def check_work_disk(estimated_rows: int | None, columns: int, *, compressed: bool) -> None:
    """Refuse a run before it reads when the work disk can't hold its estimated files
    plus EXPORT_WORK_MIN_FREE_BYTES."""
    settings.EXPORT_WORK_DIR.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(settings.EXPORT_WORK_DIR).free
    files = (estimated_rows or 0) * max(columns, 1) * _BYTES_PER_VALUE // (4 if compressed else 1)
    needed = files + settings.EXPORT_WORK_MIN_FREE_BYTES
    if free < needed:
        raise WorkDiskFull(
            f"the worker's disk has {filesizeformat(free)} free, and this export needs about "
            f"{filesizeformat(needed)} (about {estimated_rows or 0:,} rows, plus "
            f"{filesizeformat(settings.EXPORT_WORK_MIN_FREE_BYTES)} kept free); it is tried again later"
        )


def _out_of_space(exc: BaseException) -> bool:
    """ENOSPC (Python's files and pyarrow's writers both say so), or a library's wrapped message."""
    return isinstance(exc, OSError) and (exc.errno == errno.ENOSPC or "No space left on device" in str(exc))


def _disk_full(run: Run, message: str) -> None:
    """WORK_DISK_FULL, retried later; the work folders of runs not running here any more
    (left by killed workers) go, to make room."""
    run.fail(Run.ErrorCode.WORK_DISK_FULL, message, peak_rss_bytes=_peak_rss_bytes())
    running = {str(run_id) for run_id in Run.objects.filter(status=Run.Status.RUNNING).values_list("id", flat=True)}
    if settings.EXPORT_WORK_DIR.is_dir():
        for folder in settings.EXPORT_WORK_DIR.iterdir():
            if folder.name[:36] not in running and folder.name[:36] != str(run.id):  # partitions: <run>-<n>
                shutil.rmtree(folder, ignore_errors=True)
