"""Sources, export definitions and their runs.

States are explicit: every status field is a `TextChoices`, every state that matters has
its own timestamp, and transitions that race (a worker claiming a run, a double click on
Launch) are conditional UPDATEs whose row count says who won.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import secrets
import socket
import uuid
from collections.abc import Collection
from datetime import datetime, timedelta
from typing import ClassVar
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MinValueValidator
from django.db import connection, models, transaction
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone

from exports.layout import COMPRESSIONS_BY_FORMAT, validate_file_template, validate_folder_template
from exportsite.crypto import EncryptedTextField
from exportsite.redaction import redact, url_secrets
from orgs.models import InSandbox


class Database(InSandbox):
    """A source database the platform reads from."""

    # Unique in its sandbox: a development sandbox has its own "CRM" beside production's,
    # and Copy to sandbox finds a dataset's twin by its database's name.
    name = models.CharField(max_length=200)
    # sqlite:///absolute/path.sqlite3, duckdb:///absolute/path.duckdb,
    # postgresql://user:pass@host:port/dbname or mysql://user:pass@host:port/dbname
    url = EncryptedTextField()
    created_at = models.DateTimeField(auto_now_add=True)
    refreshed_at = models.DateTimeField(null=True, blank=True)
    refresh_error = models.TextField(blank=True)

    class Meta:
        ordering: ClassVar[list[str]] = ["name"]
        constraints: ClassVar[list[models.BaseConstraint]] = [
            models.UniqueConstraint(fields=["sandbox", "name"], name="database_unique_name_in_sandbox"),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def engine(self) -> str:
        if self.url.startswith(("sqlite:", "duckdb:")):
            return self.url.split(":", 1)[0]
        if self.url.startswith(("mysql:", "mariadb:")):
            return "mysql"
        return "postgresql"


class DatasetQuerySet(models.QuerySet):
    def usable(self) -> DatasetQuerySet:
        """What a standard export (the wizard's, the API's) may read: datasets still in
        their database, and not custom queries, which are for operators' custom exports."""
        return self.filter(missing_since__isnull=True).exclude(kind=Dataset.Kind.QUERY)


class Dataset(models.Model):
    """One table or view of a Database, or a custom query over it, with its
    introspected column schema."""

    class DataType(models.TextChoices):
        PROFILE = "profile", "Profile"
        INTERACTION = "interaction", "Interaction"
        SUBSCRIPTION = "subscription", "Subscription"
        ORDER = "order", "Order"
        CUSTOM = "custom", "Custom"

    class Kind(models.TextChoices):
        TABLE = "table", "Table"
        VIEW = "view", "View"
        QUERY = "query", "Custom query"

    database = models.ForeignKey(Database, on_delete=models.CASCADE, related_name="datasets")
    schema_name = models.CharField(max_length=200, blank=True)
    name = models.CharField(max_length=200)
    kind = models.CharField(max_length=10, choices=Kind.choices, default=Kind.TABLE)
    # A custom dataset (kind "query"): platform staff's read-only SELECT over the database,
    # which may join tables (exports/custom.py). Read in place of a table.
    query = models.TextField(blank=True)
    data_type = models.CharField(max_length=20, choices=DataType.choices, default=DataType.CUSTOM)
    # [{"name": ..., "type": logical type (see sources.LOGICAL_TYPES), "source_type": ..., "nullable": bool}]
    columns = models.JSONField(default=list)
    estimated_rows = models.BigIntegerField(null=True, blank=True)
    cursor_column = models.CharField(max_length=200, blank=True)
    # The columns of the table's primary key, as the last refresh found them (empty: a
    # view, or a table without one; None: not refreshed since we began to record it).
    # Incremental runs read it afresh from the source.
    primary_key = models.JSONField(null=True, blank=True)
    # Set when the last refresh no longer found the table: kept for the exports that use it.
    missing_since = models.DateTimeField(null=True, blank=True)
    refreshed_at = models.DateTimeField(null=True, blank=True)

    objects = DatasetQuerySet.as_manager()

    class Meta:
        ordering: ClassVar[list[str]] = ["database__name", "schema_name", "name"]
        constraints: ClassVar[list[models.BaseConstraint]] = [
            models.UniqueConstraint(fields=["database", "schema_name", "name"], name="dataset_unique_table"),
        ]

    def __str__(self) -> str:
        return f"{self.database.name} / {self.qualified_name}"

    @property
    def qualified_name(self) -> str:
        return f"{self.schema_name}.{self.name}" if self.schema_name else self.name

    @property
    def is_custom(self) -> bool:
        return self.kind == self.Kind.QUERY

    def describe_query(self, now: datetime) -> str:
        """Read a custom dataset's columns from its query again (refresh); the problem, if
        the query fails now: the dataset is then marked missing, for its exports to say."""
        from exports import custom  # noqa: PLC0415 - pyarrow and the ADBC drivers load only where a source is read

        try:
            self.columns = custom.describe(self.database.url, self.query)
        except ValidationError as exc:
            if self.missing_since is None:
                self.missing_since = now
                self.save(update_fields=["missing_since"])
            return redact(exc.messages[0], url_secrets(self.database.url))
        self.missing_since = None
        self.refreshed_at = now
        self.save(update_fields=["columns", "missing_since", "refreshed_at"])
        return ""

    @property
    def column_names(self) -> list[str]:
        return [column["name"] for column in self.columns]

    def index_warning(self, name: str) -> str:
        """Why an incremental export on column `name` would read the whole table on every
        run (no index leads with it, as the last refresh found), or ""."""
        column = self.column(name)
        if column is None or column.get("indexed") is not False:
            return ""  # unknown: a view, a DuckDB file, a dataset not refreshed since
        return (
            f"No index of {self.qualified_name} starts with {name!r}: every incremental run reads the whole "
            f"table to find its new rows. Ask the database's owner for an index on {name}, then refresh the source."
        )

    def column(self, name: str) -> dict | None:
        return next((column for column in self.columns if column["name"] == name), None)


class Export(InSandbox):
    """An export definition. Its UUID is the export GUID used in delivery paths."""

    class Type(models.TextChoices):
        ONE_SHOT = "one_shot", "One shot"
        PERIODIC_FULL = "periodic_full", "Periodic full"
        INCREMENTAL = "incremental", "Incremental"

    class Format(models.TextChoices):
        CSV = "csv", "CSV"
        NDJSON = "ndjson", "NDJSON"
        PARQUET = "parquet", "Parquet"

    class Compression(models.TextChoices):
        NONE = "none", "None"
        GZIP = "gzip", "gzip"
        SNAPPY = "snappy", "Snappy (Parquet only)"
        ZSTD = "zstd", "Zstandard (Parquet only)"

    class Status(models.TextChoices):
        DRAFT = "draft", "Draft"
        SCHEDULED = "scheduled", "Scheduled"
        FINISHED = "finished", "Finished"
        EXPIRED = "expired", "Expired"

    class TimeUnit(models.TextChoices):
        HOUR = "hour", "Hours"
        DAY = "day", "Days"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=200)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="exports")
    dataset = models.ForeignKey(Dataset, on_delete=models.PROTECT, related_name="exports")
    columns = models.JSONField(default=list, blank=True)  # empty: all columns
    # [{"column": ..., "operator": ..., "value": ..., "value_to": ...}], see filters.py
    filters = models.JSONField(default=list, blank=True)
    export_type = models.CharField(max_length=20, choices=Type.choices, default=Type.ONE_SHOT)
    file_format = models.CharField(max_length=10, choices=Format.choices, default=Format.CSV)
    compression = models.CharField(max_length=10, choices=Compression.choices, default=Compression.GZIP)
    csv_delimiter = models.CharField(max_length=1, default=",")
    csv_header = models.BooleanField(default=True)

    class SpreadsheetSafe(models.TextChoices):
        AUTO = "auto", "Automatic: on for Desktop downloads, off for connectors"
        ON = "on", "On: text cells that start with = + - @ get a ' first"
        OFF = "off", "Off: every cell exactly as in the source"

    # CSV only: cells a spreadsheet would run as a formula are defused (docs/file-contract.md).
    spreadsheet_safe = models.CharField(max_length=4, choices=SpreadsheetSafe.choices, default=SpreadsheetSafe.AUTO)
    rows_per_file = models.PositiveIntegerField(default=5_000_000, validators=[MinValueValidator(1)])
    connector = models.ForeignKey(
        "connectors.Connector", null=True, blank=True, on_delete=models.PROTECT, related_name="exports"
    )
    folder_template = models.CharField(max_length=500, blank=True, validators=[validate_folder_template])
    file_template = models.CharField(
        max_length=200, default="%EXPORT_NAME%_%DATETIME(YYYYMMdd_HHmmss)%", validators=[validate_file_template]
    )
    schedule_unit = models.CharField(max_length=10, choices=TimeUnit.choices, blank=True)
    schedule_interval = models.PositiveSmallIntegerField(null=True, blank=True)
    schedule_start = models.DateTimeField(null=True, blank=True)
    schedule_end = models.DateTimeField(null=True, blank=True)
    # The time zone schedules are entered in: daily runs keep their wall-clock time there.
    schedule_timezone = models.CharField(max_length=64, default="UTC")
    cursor_column = models.CharField(max_length=200, blank=True)
    # Incremental: the cursor value up to which rows were delivered, {"value": "..."}.
    watermark = models.JSONField(null=True, blank=True)
    # Timestamp cursors: rows newer than now minus this are left for the next run.
    safety_lag_seconds = models.PositiveIntegerField(default=0)
    report_recipients = models.TextField(blank=True)
    notify_on_success = models.BooleanField(default=False)
    # The last run time the scheduler handled (a run, or a recorded skip).
    last_scheduled_for = models.DateTimeField(null=True, blank=True)
    # When its latest run was queued (the largest `Run.queued_at`), kept as runs are
    # created: Manage Exports sorts on it without reading every export's runs.
    last_run_at = models.DateTimeField(null=True, blank=True, editable=False)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.DRAFT, db_index=True)
    next_run_at = models.DateTimeField(null=True, blank=True, db_index=True)
    copied_from = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="copies")
    # A custom export: platform staff set it up for the client, and manage it
    # (exports/actions.py, "Custom exports"). Its copies are standard exports.
    managed = models.BooleanField(default=False)
    # Schema watch (exports/schema_watch.py): the columns the export uses, with their type
    # when it was last saved ({name: type}); and, when a refresh found one of them gone or
    # changed, why, and since when.
    schema_columns = models.JSONField(default=dict, blank=True)
    schema_problem = models.TextField(blank=True)
    schema_problem_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering: ClassVar[list[str]] = ["-created_at"]
        indexes: ClassVar[list[models.Index]] = [
            models.Index(fields=["status", "name"], name="export_status_name"),
            # Manage Exports' tabs and sorts, in a sandbox (exports/listing.py).
            # The runs lists sorted on an export's column read the exports in that order too.
            models.Index(fields=["sandbox", "name", "id"], name="export_sandbox_name"),
            models.Index(fields=["sandbox", "last_run_at", "id"], name="export_sandbox_last_run"),
            models.Index(fields=["sandbox", "next_run_at", "id"], name="export_sandbox_next_run"),
        ]

    def __str__(self) -> str:
        return self.name

    def get_absolute_url(self) -> str:
        return reverse("exports-detail", args=[self.id])

    def clean_fields(self, exclude: Collection[str] | None = None) -> None:
        """Field rules, plus the one that spans two fields: the compression must suit the
        format. Here rather than in `clean()` so that a form which doesn't show those
        fields (a wizard step, the admin) isn't handed an error it can't display."""
        errors: dict[str, list] = {}
        try:
            super().clean_fields(exclude=exclude)
        except ValidationError as exc:
            errors = exc.update_error_dict(errors)
        excluded = set(exclude or ())
        if self.managed and self.connector_id is None and "connector" not in excluded:
            errors["connector"] = ["a custom export delivers to a connector, never as a download"]
        if self.managed and self.export_type == self.Type.ONE_SHOT and "export_type" not in excluded:
            errors["export_type"] = ["a custom export is periodic full or incremental"]
        if not {"file_format", "compression"} & excluded and "compression" not in errors:
            allowed = COMPRESSIONS_BY_FORMAT.get(self.file_format, set())
            if self.compression not in allowed:
                errors["compression"] = [f"{self.compression} is not available for {self.file_format.upper()} files"]
        if errors:
            raise ValidationError(errors)

    @property
    def is_desktop(self) -> bool:
        return self.connector_id is None

    @property
    def is_draft(self) -> bool:
        return self.status == self.Status.DRAFT

    @property
    def is_scheduled(self) -> bool:
        return self.status == self.Status.SCHEDULED

    # What is not the definition: identity, ownership and the state the actions move.
    STATE_FIELDS = frozenset(
        {
            "id",
            "owner",
            "status",
            "next_run_at",
            "watermark",
            "last_scheduled_for",
            "copied_from",
            "managed",
            "created_at",
            "schema_columns",
            "schema_problem",
            "schema_problem_at",
            "last_run_at",
        }
    )

    # The types Manage Exports shows and filters by: the standard three, and the two of
    # custom exports.
    CUSTOM = "custom"
    INCREMENTAL_CUSTOM = "incremental_custom"
    TYPE_LABELS: ClassVar[dict[str, str]] = {
        **dict(Type.choices),
        CUSTOM: "Custom",
        INCREMENTAL_CUSTOM: "Incremental custom",
    }

    @property
    def has_standard_equivalent(self) -> bool:
        """An *incremental custom* export: incremental, over a plain dataset (filters, no
        query of its own), so a standard export can do what it does."""
        return self.managed and self.is_incremental and not self.dataset.is_custom

    @property
    def shown_type(self) -> str:
        """The type as Manage Exports shows and filters it (TYPE_LABELS' key)."""
        if not self.managed:
            return self.export_type
        return self.INCREMENTAL_CUSTOM if self.has_standard_equivalent else self.CUSTOM

    @property
    def shown_type_label(self) -> str:
        return self.TYPE_LABELS[self.shown_type]

    @classmethod
    def definition_fields(cls) -> list[str]:
        """The fields a user defines (the wizard's, the API's), `updated_at` with them."""
        return [f.name for f in cls._meta.concrete_fields if f.name not in cls.STATE_FIELDS]

    def copy(self, *, name: str, owner) -> Export:
        """A new draft with the same definition, remembering where it came from."""
        fields = {name: getattr(self, name) for name in self.definition_fields() if name not in {"name", "updated_at"}}
        return Export.objects.create(name=name, owner=owner, copied_from=self, **fields)

    def unschedule(self) -> bool:
        """Scheduled → draft. An incremental custom export becomes a standard one: a
        draft is its owner's to edit, and operators no longer manage it."""
        return bool(
            Export.objects.filter(id=self.id, status=self.Status.SCHEDULED).update(
                status=self.Status.DRAFT,
                next_run_at=None,
                managed=self.managed and not self.has_standard_equivalent,
                updated_at=timezone.now(),
            )
        )

    @property
    def is_repeating(self) -> bool:
        return self.export_type != self.Type.ONE_SHOT

    @property
    def is_incremental(self) -> bool:
        return self.export_type == self.Type.INCREMENTAL

    @property
    def cadence(self) -> str | None:
        """How often a repeating export runs, as the schedule form says it: "day", "3h"..."""
        if not self.is_repeating:
            return None
        return f"{self.schedule_interval}h" if self.schedule_unit == self.TimeUnit.HOUR else "day"

    def schedule(self, *, first_run_at, last_scheduled_for, now) -> bool:
        """Draft → scheduled, first running at `first_run_at` (exports/actions.py works it
        out); False when it is no longer a draft."""
        updated = Export.objects.filter(id=self.id, status=self.Status.DRAFT).update(
            status=self.Status.SCHEDULED,
            next_run_at=first_run_at,
            last_scheduled_for=last_scheduled_for,
            updated_at=now,
        )
        self.refresh_from_db()
        return bool(updated)

    def reset_watermark(self) -> None:
        """The next incremental run exports everything again."""
        Export.objects.filter(id=self.id).update(watermark=None, updated_at=timezone.now())
        IncrementalMemory.objects.filter(export=self).delete()
        self.watermark = None

    @property
    def ends_soon(self) -> bool:
        return (
            self.is_scheduled
            and self.schedule_end is not None
            and self.schedule_end - timezone.now() < timedelta(days=14)
        )

    @property
    def delimiter_label(self) -> str:
        return {"\t": "tab", ",": "comma", ";": "semicolon", "|": "pipe"}.get(self.csv_delimiter, self.csv_delimiter)


DESKTOP = "desktop"


def worker_name() -> str:
    """The machine, and the RQ worker on it (RQ names it in its work horse's environment)."""
    return f"{socket.gethostname()}:{os.environ.get('RQ_WORKER_ID') or os.getpid()}"


class RunQuerySet(models.QuerySet):
    def active(self) -> RunQuerySet:
        """Queued or running: an export has at most one such run."""
        return self.filter(status__in=Run.ACTIVE)


class Run(models.Model):
    """One execution of an export: one delivery. Its UUID is the delivery GUID."""

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"
        EXPIRED = "expired", "Expired"
        CANCELLED = "cancelled", "Cancelled"

    class Trigger(models.TextChoices):
        SCHEDULE = "schedule", "Schedule"
        MANUAL = "manual", "Manual"
        RELAUNCH = "relaunch", "Relaunch"
        API = "api", "API"
        RETRY = "retry", "Automatic retry"

    class ErrorCode(models.TextChoices):
        SOURCE_UNAVAILABLE = "SOURCE_UNAVAILABLE", "The source database can't be reached"
        SOURCE_QUERY_FAILED = "SOURCE_QUERY_FAILED", "The source query failed"
        DESTINATION_AUTH_FAILED = "DESTINATION_AUTH_FAILED", "The destination refused the credentials"
        DESTINATION_UNREACHABLE = "DESTINATION_UNREACHABLE", "The destination can't be reached"
        DESTINATION_NOT_FOUND = "DESTINATION_NOT_FOUND", "The bucket, container or folder doesn't exist"
        DESTINATION_PERMISSION_DENIED = "DESTINATION_PERMISSION_DENIED", "The destination refused the write"
        DESTINATION_HOST_KEY_MISMATCH = "DESTINATION_HOST_KEY_MISMATCH", "The SFTP server's host key doesn't match"
        DESTINATION_NOT_ALLOWED = "DESTINATION_NOT_ALLOWED", "The destination's address is not allowed"
        DESTINATION_WRITE_FAILED = "DESTINATION_WRITE_FAILED", "Writing to the destination failed"
        WORKER_LOST = "WORKER_LOST", "The worker running the export was lost"
        WORK_DISK_FULL = "WORK_DISK_FULL", "The worker's disk is full"
        TIMEOUT = "TIMEOUT", "The export took longer than allowed"
        TOO_MANY_FILES = "TOO_MANY_FILES", "The export would write too many files"
        SCHEMA_CHANGED = "SCHEMA_CHANGED", "A column the export uses is gone or changed type"
        CANCELLED = "CANCELLED", "The export was cancelled"
        INTERNAL_ERROR = "INTERNAL_ERROR", "Internal error"

    ACTIVE = (Status.QUEUED, Status.RUNNING)

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    export = models.ForeignKey(Export, on_delete=models.CASCADE, related_name="runs")
    # The export's sandbox, which never changes (a copy to another sandbox is a new
    # export): the lists find a sandbox's runs by index, without joining their exports.
    sandbox = models.ForeignKey("orgs.Sandbox", on_delete=models.PROTECT, related_name="+", editable=False)
    trigger = models.CharField(max_length=10, choices=Trigger.choices, default=Trigger.MANUAL)
    launched_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED, db_index=True)
    queued_at = models.DateTimeField(default=timezone.now)
    # When the dispatcher handed it to RQ (exports/dispatch.py). Null while it waits for a
    # place among its organisation's EXPORT_MAX_RUNS_PER_ORG.
    dispatched_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    rows_done = models.BigIntegerField(default=0)
    estimated_rows = models.BigIntegerField(null=True, blank=True)
    row_count = models.BigIntegerField(null=True, blank=True)
    bytes = models.BigIntegerField(null=True, blank=True)
    peak_rss_bytes = models.BigIntegerField(null=True, blank=True)
    # Where the files go, fixed when the run is created: "desktop" or the connector's
    # kind, the connector (null once deleted) and its location then; the folder and the
    # Transfer Notification File inside it (empty for Desktop downloads).
    destination_kind = models.CharField(max_length=20, blank=True)
    connector = models.ForeignKey(
        "connectors.Connector", null=True, blank=True, on_delete=models.SET_NULL, related_name="runs"
    )
    destination = models.CharField(max_length=1024, blank=True)
    delivery_folder = models.CharField(max_length=1024, blank=True)
    tnf_path = models.CharField(max_length=1024, blank=True)
    window_from = models.JSONField(null=True, blank=True)
    window_to = models.JSONField(null=True, blank=True)
    # Incremental runs also re-read the cursor values above `lookback_from` (up to
    # `window_from`) to catch rows that committed late; `late_rows` of them were new.
    # Null: no lookback (the dataset has no primary key, or it is the first run).
    lookback_from = models.JSONField(null=True, blank=True)
    late_rows = models.BigIntegerField(null=True, blank=True)
    # Something the run noticed that may cost rows later: a source transaction open for
    # longer than the lookback covers.
    warning = models.TextField(blank=True)
    error_code = models.CharField(max_length=40, choices=ErrorCode.choices, blank=True)
    error_message = models.TextField(blank=True)
    attempt = models.PositiveSmallIntegerField(default=1)
    relaunch_of = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    expires_at = models.DateTimeField(null=True, blank=True)
    # The schedule slot this run is for (scheduled runs only): one run per slot.
    scheduled_for = models.DateTimeField(null=True, blank=True)
    # Written every few seconds by the worker; a stale one means the worker is gone.
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    # The worker that ran it last: the RQ worker's name on its machine.
    worker = models.CharField(max_length=200, blank=True)
    # What the worker is about to write to the store, noted before each upload: when it
    # dies mid-delivery, this is what the run's loss removes (exports/jobs.py, `lose`).
    partial_paths = models.JSONField(default=list, blank=True)
    # A large run is split into this many key-range partitions (`RunPartition`), each
    # its own job (exports/partitions.py); 0: read by one job. Part numbers are handed
    # out to the partitions as they finish: `parts_reserved` is the last one given.
    partition_count = models.PositiveIntegerField(default=0)
    parts_reserved = models.PositiveIntegerField(default=0)
    # A partitioned run's plan, fixed when it was split: its file settings, its delivery
    # folder (relative to the connector) and, incremental, the watermark its success sets.
    plan = models.JSONField(null=True, blank=True)

    objects = RunQuerySet.as_manager()

    class Meta:
        ordering: ClassVar[list[str]] = ["-queued_at"]
        indexes: ClassVar[list[models.Index]] = [
            models.Index(fields=["status", "-queued_at"], name="run_status_queued"),
            # Manage Exports' run tabs, their counts and the API's lists (exports/listing.py).
            models.Index(fields=["sandbox", "status"], name="run_sandbox_status"),
            models.Index(fields=["sandbox", "-queued_at", "id"], name="run_sandbox_queued"),
            # An export's latest runs: its page, and the lists' last run.
            models.Index(fields=["export", "queued_at", "id"], name="run_export_queued"),
        ]
        constraints: ClassVar[list[models.BaseConstraint]] = [
            # At most one queued or running run per export: a double click, or two
            # scheduler ticks, can't start the same export twice.
            models.UniqueConstraint(
                fields=["export"], condition=Q(status__in=["queued", "running"]), name="run_one_active_per_export"
            ),
            # Two schedulers can never create the same slot's run twice.
            models.UniqueConstraint(
                fields=["export", "scheduled_for"], condition=Q(scheduled_for__isnull=False), name="run_one_per_slot"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.export.name} run {self.id}"

    def save(self, *args, **kwargs) -> None:
        adding = self._state.adding
        self.remember_destination()
        super().save(*args, **kwargs)
        if adding:
            Export.objects.filter(id=self.export_id).filter(
                Q(last_run_at__isnull=True) | Q(last_run_at__lt=self.queued_at)
            ).update(last_run_at=self.queued_at)

    def get_absolute_url(self) -> str:
        return reverse("runs-detail", args=[self.id])

    def remember_destination(self) -> None:
        """A run remembers where its files go from the moment it exists: a later change of
        the export's destination must not send its downloads, expiry or deletion elsewhere.
        It takes its export's sandbox too (`bulk_create` skips `save`: call this first)."""
        if self.sandbox_id is None:
            self.sandbox_id = self.export.sandbox_id
        if not self.destination_kind:
            connector = self.export.connector
            self.destination_kind = connector.kind if connector else DESKTOP
            self.connector = connector
            self.destination = connector.location if connector else "Desktop"

    @property
    def is_active(self) -> bool:
        return self.status in self.ACTIVE

    @property
    def is_succeeded(self) -> bool:
        return self.status == self.Status.SUCCEEDED

    @property
    def is_failed(self) -> bool:
        return self.status == self.Status.FAILED

    @property
    def duration(self) -> timedelta | None:
        if self.started_at is None:
            return None
        return (self.finished_at or timezone.now()) - self.started_at

    @property
    def progress_percent(self) -> int | None:
        if not self.estimated_rows:
            return None
        return min(100, int(self.rows_done * 100 / self.estimated_rows))

    @property
    def is_desktop(self) -> bool:
        """Its files went to the Desktop downloads storage, whatever the export says now."""
        return self.destination_kind == DESKTOP

    @property
    def spreadsheet_safe(self) -> bool:
        """Whether this run's CSV files defuse formula-looking cells: as its export says,
        or automatically when they are a download, which people open in spreadsheets."""
        if self.export.file_format != Export.Format.CSV:
            return False
        choice = self.export.spreadsheet_safe
        return self.is_desktop if choice == Export.SpreadsheetSafe.AUTO else choice == Export.SpreadsheetSafe.ON

    @property
    def is_downloadable(self) -> bool:
        return self.is_succeeded and self.is_desktop and (self.expires_at is None or self.expires_at > timezone.now())

    @classmethod
    def claim(cls, run_id) -> Run | None:
        """Move a queued run to running; None when someone else already did (or it was cancelled)."""
        now = timezone.now()
        claimed = cls.objects.filter(id=run_id, status=cls.Status.QUEUED).update(
            status=cls.Status.RUNNING,
            started_at=now,
            heartbeat_at=now,
            worker=worker_name(),
        )
        if not claimed:
            return None
        return cls.objects.select_related("export__dataset__database", "connector").get(id=run_id)

    def put_back(self) -> bool:
        """Running → queued again, in its old place and on the same attempt: its worker
        stopped for a deploy (exports/worker.py). The dispatcher hands it over again."""
        return bool(
            Run.objects.filter(id=self.id, status=self.Status.RUNNING).update(
                status=self.Status.QUEUED,
                dispatched_at=None,
                started_at=None,
                heartbeat_at=None,
                rows_done=0,
                estimated_rows=None,
                partial_paths=[],
            )
        )

    def report_progress(self, rows_done: int) -> bool:
        """Record rows done; False when the run is no longer running (cancelled meanwhile)."""
        self.rows_done = rows_done
        return bool(Run.objects.filter(id=self.id, status=self.Status.RUNNING).update(rows_done=rows_done))

    def succeed(
        self, *, files: list[RunFile], delivery_folder: str, tnf_path: str = "", peak_rss_bytes: int | None = None
    ) -> bool:
        now = timezone.now()
        self.row_count = sum(f.rows for f in files)
        self.bytes = sum(f.size_bytes for f in files)
        updated = Run.objects.filter(id=self.id, status=self.Status.RUNNING).update(
            status=self.Status.SUCCEEDED,
            finished_at=now,
            rows_done=self.row_count,
            row_count=self.row_count,
            bytes=self.bytes,
            delivery_folder=delivery_folder,
            tnf_path=tnf_path,
            peak_rss_bytes=peak_rss_bytes,
            expires_at=now + timedelta(days=settings.EXPORT_DOWNLOAD_RETENTION_DAYS),
            partial_paths=[],
        )
        if not updated:
            return False
        for f in files:
            f.run = self
        RunFile.objects.bulk_create(files)
        self.refresh_from_db()
        HookCall.record(self)
        return True

    # After a fix (credentials, a bucket, a confirmed host key) a relaunch delivers.
    # A relaunch can help once the cause is fixed: at the source (a query's timeout, a
    # value the source refused, a permission), at the destination, or in the settings
    # (an address allowed). Not when the definition itself must change first.
    RELAUNCHABLE: ClassVar[set[str]] = {
        ErrorCode.SOURCE_UNAVAILABLE,
        ErrorCode.SOURCE_QUERY_FAILED,
        ErrorCode.DESTINATION_NOT_ALLOWED,
        ErrorCode.DESTINATION_AUTH_FAILED,
        ErrorCode.DESTINATION_NOT_FOUND,
        ErrorCode.DESTINATION_PERMISSION_DENIED,
        ErrorCode.DESTINATION_HOST_KEY_MISMATCH,
        ErrorCode.DESTINATION_UNREACHABLE,
        ErrorCode.DESTINATION_WRITE_FAILED,
        ErrorCode.WORKER_LOST,
        ErrorCode.WORK_DISK_FULL,
        ErrorCode.TIMEOUT,
        ErrorCode.INTERNAL_ERROR,
    }

    @property
    def is_relaunchable(self) -> bool:
        """Failed for a reason that may be gone next time (not a dropped table or column)."""
        return self.is_failed and self.error_code in self.RELAUNCHABLE

    def cancel(self) -> bool:
        """Queued or running → cancelled. A running worker notices at its next batch."""
        return bool(
            Run.objects.active()
            .filter(id=self.id)
            .update(
                status=self.Status.CANCELLED,
                finished_at=timezone.now(),
                error_code=self.ErrorCode.CANCELLED,
                error_message="cancelled by a user",
            )
        )

    def fail(self, code: str, message: str, *, peak_rss_bytes: int | None = None) -> bool:
        with transaction.atomic():  # the outcome and its hook calls, together
            updated = (
                Run.objects.active()
                .filter(id=self.id)
                .update(
                    status=self.Status.FAILED,
                    finished_at=timezone.now(),
                    error_code=code,
                    error_message=message[:4000],
                    peak_rss_bytes=peak_rss_bytes,
                )
            )
            self.refresh_from_db()
            if updated:
                HookCall.record(self)
        return bool(updated)


class RunPartition(models.Model):
    """One key range of a partitioned run, read, written and delivered by its own job
    (exports/partitions.py). Its files are the run's once every partition succeeded."""

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"
        CANCELLED = "cancelled", "Cancelled"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)  # its RQ job's id
    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="partitions")
    number = models.PositiveIntegerField()
    # The range, for the report: `low` <= key < `high` (empty: open), or the rows whose key is empty.
    key_column = models.CharField(max_length=200)
    low = models.CharField(max_length=200, blank=True)
    high = models.CharField(max_length=200, blank=True)
    empty_keys = models.BooleanField(default=False)
    # What it reads, fixed when the run was planned: the columns, and the filters (the
    # export's, the run's window, the range).
    columns = models.JSONField(default=list)
    filters = models.JSONField(default=list)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    attempt = models.PositiveSmallIntegerField(default=1)
    queued_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    worker = models.CharField(max_length=200, blank=True)
    rows_done = models.BigIntegerField(default=0)
    row_count = models.BigIntegerField(null=True, blank=True)
    bytes = models.BigIntegerField(null=True, blank=True)
    peak_rss_bytes = models.BigIntegerField(null=True, blank=True)
    # The part numbers it was given (first, how many): a retry that writes as many
    # files or fewer reuses them.
    first_part = models.PositiveIntegerField(null=True, blank=True)
    part_count = models.PositiveIntegerField(default=0)
    # Its delivered files ({part, name, path, size_bytes, rows, sha256}), and what it is
    # about to write (removed if its worker dies).
    files = models.JSONField(default=list, blank=True)
    partial_paths = models.JSONField(default=list, blank=True)
    error_code = models.CharField(max_length=40, choices=Run.ErrorCode.choices, blank=True)
    error_message = models.TextField(blank=True)

    class Meta:
        ordering: ClassVar[list[str]] = ["run", "number"]
        constraints: ClassVar[list[models.BaseConstraint]] = [
            models.UniqueConstraint(fields=["run", "number"], name="partition_unique_number")
        ]
        indexes: ClassVar[list[models.Index]] = [models.Index(fields=["status"], name="partition_status")]

    def __str__(self) -> str:
        return f"partition {self.number} of run {self.run_id}"

    @property
    def range_label(self) -> str:
        if self.empty_keys:
            return f"{self.key_column} is empty"
        if self.low and self.high:
            return f"{self.low} ≤ {self.key_column} < {self.high}"
        if self.high:
            return f"{self.key_column} < {self.high}"
        if self.low:
            return f"{self.key_column} ≥ {self.low}"
        return f"every {self.key_column}"

    @property
    def duration(self) -> timedelta | None:
        if self.started_at is None:
            return None
        return (self.finished_at or timezone.now()) - self.started_at


class IncrementalMemory(models.Model):
    """What an incremental export delivered near its watermark: the (key, cursor) pairs
    of the rows whose cursor is above `settled`, so that the next run can re-read from
    there, catch rows that committed late, and skip the ones already delivered
    (exports/incremental.py).

    Written with the watermark, in the transaction of a successful run. It applies only
    while the export still reads the same dataset, cursor and key, from the same
    watermark: a reset, an edit or a changed table makes it stale, and a stale memory is
    never used.
    """

    export = models.OneToOneField(Export, on_delete=models.CASCADE, primary_key=True, related_name="memory")
    dataset_id = models.BigIntegerField()
    column = models.CharField(max_length=200)
    cursor_type = models.CharField(max_length=20)
    key_columns = models.JSONField()
    watermark = models.JSONField()
    settled = models.JSONField()
    # The last runs' high-water marks: [{"clock": source time, "high": ..., "xmax": ...}].
    history = models.JSONField(default=list)
    key_count = models.BigIntegerField(default=0)
    # An Arrow IPC stream of (cursor, key) rows, zstd-compressed.
    keys = models.BinaryField()
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.export} lookback memory ({self.key_count} keys)"


class SkippedSlot(models.Model):
    """A run time the scheduler did not start a run for, and why."""

    export = models.ForeignKey(Export, on_delete=models.CASCADE, related_name="skipped_slots")
    scheduled_for = models.DateTimeField()
    reason = models.CharField(max_length=300)
    recorded_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering: ClassVar[list[str]] = ["-scheduled_for"]
        constraints: ClassVar[list[models.BaseConstraint]] = [
            models.UniqueConstraint(fields=["export", "scheduled_for"], name="skip_one_per_slot")
        ]

    def __str__(self) -> str:
        return f"{self.export} skipped {self.scheduled_for:%Y-%m-%d %H:%M}"


class Profile(models.Model):
    """Per-user preferences: the time zone schedules are entered and shown in."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="profile")
    time_zone = models.CharField(max_length=64, default="UTC")

    def __str__(self) -> str:
        return f"{self.user} ({self.time_zone})"


class ApiToken(InSandbox):
    """A bearer token for the HTTP API. Only a SHA-256 of the secret is stored: the
    token is shown once, when it is created. A token acts as its owner, no more."""

    PREFIX = "exs_"

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=100)
    # The first characters after the prefix, shown in lists so a user can tell tokens apart.
    hint = models.CharField(max_length=12)
    digest = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(default=timezone.now)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering: ClassVar[list[str]] = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.name} ({self.hint}…)"

    @staticmethod
    def digest_of(secret: str) -> str:
        # The secret is 256 random bits: a plain hash is enough, a slow one would only
        # slow every request down.
        return hashlib.sha256(secret.encode()).hexdigest()

    @classmethod
    def issue(cls, user, name: str, *, sandbox=None) -> tuple[ApiToken, str]:
        """A new token acting in `sandbox`, and its secret, which is never stored nor
        shown again."""
        secret = cls.PREFIX + secrets.token_urlsafe(32)
        token = cls.objects.create(
            user=user,
            name=name,
            sandbox=sandbox,
            hint=secret[len(cls.PREFIX) : len(cls.PREFIX) + 8],
            digest=cls.digest_of(secret),
        )
        return token, secret

    @classmethod
    def authenticate(cls, secret: str) -> ApiToken | None:
        """The live token with this secret, its last use recorded (at most once a minute)."""
        if not secret.startswith(cls.PREFIX) or len(secret) > 200:
            return None
        token = (
            cls.objects.select_related("user", "sandbox__organisation")
            .filter(digest=cls.digest_of(secret), revoked_at__isnull=True, user__is_active=True)
            .first()
        )
        if token is not None:
            now = timezone.now()
            if token.last_used_at is None or now - token.last_used_at > timedelta(minutes=1):
                ApiToken.objects.filter(id=token.id).update(last_used_at=now)
        return token

    @property
    def is_revoked(self) -> bool:
        return self.revoked_at is not None

    def revoke(self) -> bool:
        return bool(ApiToken.objects.filter(id=self.id, revoked_at__isnull=True).update(revoked_at=timezone.now()))


def time_zone_of(user) -> str:
    if not user.is_authenticated:
        return settings.TIME_ZONE
    profile = getattr(user, "_profile_cache", None)
    if profile is None:
        profile = Profile.objects.filter(user=user).first()
        user._profile_cache = profile or Profile(user=user, time_zone=settings.TIME_ZONE)
        profile = user._profile_cache
    return profile.time_zone


class RunFile(models.Model):
    """One delivered file of a run."""

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="files")
    part = models.PositiveIntegerField()
    name = models.CharField(max_length=500)
    path = models.CharField(max_length=1024)  # name in the storage it was delivered to
    size_bytes = models.BigIntegerField()
    rows = models.BigIntegerField()
    sha256 = models.CharField(max_length=64)

    class Meta:
        ordering: ClassVar[list[str]] = ["run", "part"]
        constraints: ClassVar[list[models.BaseConstraint]] = [
            models.UniqueConstraint(fields=["run", "part"], name="runfile_unique_part")
        ]

    def __str__(self) -> str:
        return self.name


def recipients_of(export: Export) -> list[str]:
    """The addresses an export's report e-mails go to."""
    return [address for address in re.split(r"[\s,;]+", export.report_recipients or "") if address]


class Hook(models.Model):
    """An after-export hook: a URL that hears about the runs of its export that end in
    the outcomes it is for, in a signed POST (exports/hooks.py). Its secret signs them;
    it is shown once, when the hook is added."""

    class Events(models.TextChoices):
        SUCCESS = "success", "Success"
        FAILURE = "failure", "Failure"
        BOTH = "both", "Success and failure"

    export = models.ForeignKey(Export, on_delete=models.CASCADE, related_name="hooks")
    url = models.URLField(max_length=2000)
    events = models.CharField(max_length=10, choices=Events.choices, default=Events.BOTH)
    secret = EncryptedTextField()
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering: ClassVar[list[str]] = ["created_at", "id"]

    def __str__(self) -> str:
        return f"{self.url} ({self.get_events_display().lower()})"

    @staticmethod
    def new_secret() -> str:
        """A Standard Webhooks secret: `whsec_` and 32 random bytes in base64."""
        return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()

    def wants(self, run: Run) -> bool:
        if run.is_succeeded:
            return self.events in {self.Events.SUCCESS, self.Events.BOTH}
        return run.is_failed and self.events in {self.Events.FAILURE, self.Events.BOTH}

    @property
    def origin(self) -> str:
        """The URL without its path and query, which may carry a credential (a chat
        service's hook URL does): what people who can't manage the hooks see."""
        parts = urlsplit(self.url)
        return f"{parts.scheme}://{parts.netloc}/…" if parts.path.strip("/") or parts.query else self.url


class HookCall(models.Model):
    """One message to one hook about one run's outcome. Its id is the message's
    `webhook-id` (`msg_<hex>`), the same in every attempt, so that a receiver can drop a
    repeat. Recorded in the transaction that ends the run: a worker that dies after the
    outcome committed loses no call."""

    class Status(models.TextChoices):
        PENDING = "pending", "Sending"
        DELIVERED = "delivered", "Delivered"
        GAVE_UP = "gave_up", "Gave up"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="hook_calls")
    # A removed hook's calls stay on the run's report, with the URL they were sent to.
    hook = models.ForeignKey(Hook, on_delete=models.SET_NULL, null=True, related_name="calls")
    url = models.URLField(max_length=2000)
    event = models.CharField(max_length=40)  # the message's type: export.run.succeeded / .failed
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    # Automatic attempts made (they set the back-off), and when the next one is due:
    # None while one is queued or going, and once the call is over.
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering: ClassVar[list[str]] = ["created_at", "id"]
        constraints: ClassVar[list[models.BaseConstraint]] = [
            models.UniqueConstraint(fields=["run", "hook"], name="hookcall_one_per_run_and_hook")
        ]
        indexes: ClassVar[list[models.Index]] = [
            models.Index(fields=["status", "next_attempt_at"], name="hookcall_due"),
        ]

    def __str__(self) -> str:
        return f"{self.event} to {self.url}"

    @property
    def webhook_id(self) -> str:
        return f"msg_{self.id.hex}"

    @property
    def is_pending(self) -> bool:
        return self.status == self.Status.PENDING

    @property
    def is_delivered(self) -> bool:
        return self.status == self.Status.DELIVERED

    @classmethod
    def record(cls, run: Run) -> list[HookCall]:
        """The calls a run's outcome makes, each with its first attempt queued; the
        worker enqueues them once the transaction commits (exports/hooks.py)."""
        with transaction.atomic():
            # Locked: a hook removed meanwhile would fail the run's commit. Its secret
            # stays encrypted: signing is the worker's business.
            hooks = Hook.objects.filter(export_id=run.export_id).defer("secret")
            if connection.features.has_select_for_update:
                hooks = hooks.select_for_update()
            calls = [
                cls(run=run, hook=hook, url=hook.url, event=f"export.run.{run.status}")
                for hook in hooks
                if hook.wants(run)
            ]
            if calls:
                HookCall.objects.bulk_create(calls)
                HookAttempt.objects.bulk_create([HookAttempt(call=call) for call in calls])
        return calls


class HookAttempt(models.Model):
    """One POST of a call, automatic or asked for ("Send again"): queued, then sent by a
    worker (`started_at`), then answered or not (`finished_at`)."""

    call = models.ForeignKey(HookCall, on_delete=models.CASCADE, related_name="attempt_log")
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True)
    manual = models.BooleanField(default=False)
    queued_at = models.DateTimeField(default=timezone.now)
    enqueued_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    duration_ms = models.PositiveIntegerField(null=True, blank=True)
    status_code = models.PositiveIntegerField(null=True, blank=True)
    # Why it failed, in our words (never what the receiver answered).
    error = models.CharField(max_length=500, blank=True)
    next_retry_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering: ClassVar[list[str]] = ["queued_at", "id"]
        indexes: ClassVar[list[models.Index]] = [
            models.Index(fields=["finished_at", "started_at"], name="hookattempt_open"),
        ]

    def __str__(self) -> str:
        return f"attempt at {self.call}"

    @property
    def succeeded(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


_DATA_TYPE_HINTS = {
    "profile": Dataset.DataType.PROFILE,
    "customer": Dataset.DataType.PROFILE,
    "contact": Dataset.DataType.PROFILE,
    "interaction": Dataset.DataType.INTERACTION,
    "event": Dataset.DataType.INTERACTION,
    "subscri": Dataset.DataType.SUBSCRIPTION,
    "order": Dataset.DataType.ORDER,
    "purchase": Dataset.DataType.ORDER,
}
_CURSOR_HINTS = ("updated_at", "modified_at", "occurred_at", "created_at", "timestamp", "id")


def guess_data_type(table: str) -> str:
    lowered = table.lower()
    return next((label for hint, label in _DATA_TYPE_HINTS.items() if hint in lowered), Dataset.DataType.CUSTOM)


def guess_cursor_column(columns: list[dict]) -> str:
    names = {column["name"]: column["type"] for column in columns}
    for hint in _CURSOR_HINTS:
        if names.get(hint) in {"integer", "timestamp", "datetime"}:
            return hint
    return ""


def refresh_datasets(database: Database) -> list[Dataset]:
    """Re-read a database's tables and views into its Datasets.

    New tables become datasets, known ones get their columns and row estimate updated
    (keeping the data type label someone chose), and vanished ones are marked missing
    rather than deleted: exports still point at them and must say what happened.
    """
    from exports import sources  # noqa: PLC0415 - pyarrow and the ADBC drivers load only where a source is read

    now = timezone.now()
    try:
        discovered = sources.discover(database.url)
    except sources.SourceError as exc:
        # A driver may quote the URL it was given: never its password.
        message = redact(str(exc), url_secrets(database.url))
        database.refresh_error = message
        database.save(update_fields=["refresh_error"])
        raise type(exc)(message) from None
    datasets = list(database.datasets.all())
    known = {(d.schema_name, d.name): d for d in datasets if not d.is_custom}
    custom_names = {(d.schema_name, d.name) for d in datasets if d.is_custom}
    seen = []
    problems = [f"{found.name}: {found.error}" for found in discovered if found.error]
    for found in discovered:
        if found.error:
            continue
        if (found.schema_name, found.name) in custom_names:
            problems.append(f"{found.name}: a custom dataset has its name")
            continue
        dataset = known.get((found.schema_name, found.name))
        if dataset is None:
            dataset = Dataset(
                database=database,
                schema_name=found.schema_name,
                name=found.name,
                data_type=guess_data_type(found.name),
                cursor_column=guess_cursor_column(found.columns),
            )
        dataset.kind = found.kind
        dataset.columns = found.columns
        dataset.primary_key = found.primary_key
        dataset.estimated_rows = found.estimated_rows
        dataset.missing_since = None
        dataset.refreshed_at = now
        dataset.save()
        seen.append(dataset.id)
    for dataset in datasets:
        if dataset.is_custom:
            problem = dataset.describe_query(now)
            if problem:
                problems.append(f"custom dataset {dataset.name}: {problem}")
            seen.append(dataset.id)
    database.datasets.exclude(id__in=seen).filter(missing_since__isnull=True).update(missing_since=now)
    database.refreshed_at = now
    database.refresh_error = "; ".join(f"can't read {problem}" for problem in problems)
    database.save(update_fields=["refreshed_at", "refresh_error"])
    return list(database.datasets.all())
