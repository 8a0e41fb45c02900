"""What the API reads and writes. Field names are PascalCase; option values (export
type, format, compression...) are the same codes the Manage Exports page puts in its
URLs. Times are ISO 8601, in UTC when the name ends in `Utc`."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal, TypeAlias
from uuid import UUID

from ninja import Field, Schema
from pydantic import AfterValidator

from exports.filters import MAX_FILTERS, OPERATORS

ExportTypeChoice = Literal["one_shot", "periodic_full", "incremental"]
FileFormatChoice = Literal["csv", "ndjson", "parquet"]
CompressionChoice = Literal["none", "gzip", "snappy", "zstd"]
DelimiterChoice = Literal[",", ";", "\t", "|"]
SpreadsheetSafeChoice = Literal["auto", "on", "off"]
CadenceChoice = Literal["day", "3h", "6h", "9h", "12h"]
# Built from the filter engine's operators so the two never drift; mypy only reads a
# Literal written out value by value, and types this one as Any.
OperatorChoice: TypeAlias = Literal[tuple(OPERATORS)]  # type: ignore[valid-type]
ExportStatusChoice = Literal["Draft", "Scheduled", "Finished", "Expired"]
RunStatusChoice = Literal["Pending", "Processing", "Success", "Failed", "Expired", "Cancelled"]
DataTypeChoice = Literal["profile", "interaction", "subscription", "order", "custom"]

MAX_IDS = 1000


def _no_nul(value: str) -> str:
    # PostgreSQL can't store NUL in text or JSON: refuse it here with a message.
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    return value


Text = Annotated[str, AfterValidator(_no_nul)]


def _plausible(moment: datetime) -> datetime:
    if not 2000 <= moment.year <= 2200:
        raise ValueError("must be a time between the years 2000 and 2200")
    return moment


Moment = Annotated[datetime, AfterValidator(_plausible)]


# Reading -----------------------------------------------------------------------


class ColumnOut(Schema):
    Name: str
    Type: str
    Nullable: bool


class DatasetOut(Schema):
    Id: int
    Name: str
    DatabaseId: int
    Database: str
    DataType: str
    Kind: str
    EstimatedRows: int | None
    CursorColumn: str
    Columns: list[ColumnOut]
    Missing: bool


class ConnectorOut(Schema):
    Id: UUID
    Name: str
    Kind: str
    Owner: str
    Location: str
    LastTestOk: bool | None
    LastTestedUtc: datetime | None


class FilterSpec(Schema):
    Column: Text = Field(..., max_length=200)
    Operator: OperatorChoice
    Value: Text | int | float = Field("", description="For 'in': comma-separated values.")
    ValueTo: Text | int | float = Field("", description="For 'between': the upper bound.")


class ExportOut(Schema):
    Id: UUID
    Name: str
    Owner: str
    Status: ExportStatusChoice
    ExportType: ExportTypeChoice
    DatasetId: int
    Dataset: str
    Database: str
    DataType: str
    Columns: list[str]
    Filters: list[FilterSpec]
    FileFormat: FileFormatChoice
    Compression: CompressionChoice
    CsvDelimiter: str
    CsvHeader: bool
    SpreadsheetSafe: SpreadsheetSafeChoice = Field(..., description="CSV: defuse formula-looking text cells")
    RowsPerFile: int
    FileTemplate: str
    ConnectorId: UUID | None = Field(..., description="null: a Desktop download")
    FolderTemplate: str
    Start: datetime | None
    End: datetime | None
    TimeZone: str
    Cadence: CadenceChoice | None
    CursorColumn: str
    SafetyLagMinutes: int
    Watermark: str | None = Field(None, description="Incremental: the cursor value the next run starts after")
    ReportRecipients: list[str]
    NotifyOnSuccess: bool
    NextRunUtc: datetime | None
    LastRunId: UUID | None
    LastRunStatus: RunStatusChoice | None
    CopiedFrom: UUID | None
    Custom: Literal["custom", "incremental_custom"] | None = Field(
        None,
        description="A custom export that operators manage: read-only here, and a custom one shows no "
        "Columns, Filters, CursorColumn, templates or recipients (its definition is the operators'). An "
        "incremental_custom one shows its definition, may be copied into a standard draft, and unscheduled, "
        "which makes it a standard export",
    )
    SchemaProblem: str | None = Field(
        None, description="A column it uses is gone or changed type in the source: its runs fail with SCHEMA_CHANGED"
    )
    CreatedUtc: datetime
    UpdatedUtc: datetime


class FileOut(Schema):
    Part: int
    Name: str
    Path: str = Field(..., description="Where it was delivered: the path in the store, or in the download")
    SizeInBytes: int
    Rows: int
    Sha256: str
    Url: str | None = Field(
        ..., description="Signed, expiring download URL; works without a token. null unless the run succeeded."
    )
    UrlExpiresUtc: datetime | None


class RunOut(Schema):
    Id: UUID
    ExportId: UUID
    ExportName: str
    Status: RunStatusChoice
    Trigger: str
    QueuedUtc: datetime
    StartedUtc: datetime | None
    FinishedUtc: datetime | None
    DurationSeconds: float | None
    RowsDone: int
    EstimatedRows: int | None
    ProgressPercent: int | None
    Rows: int | None
    SizeInBytes: int | None
    Destination: str
    DeliveryFolder: str
    TnfPath: str
    WindowFrom: Any = None
    WindowTo: Any = None
    LookbackFrom: Any = Field(
        None, description="Incremental: the re-read from here up to WindowFrom catches late commits"
    )
    LateRows: int | None = Field(None, description="Incremental: rows that committed late below the watermark, caught")
    Warning: str | None = Field(None, description="Something that may cost rows later, e.g. a long source transaction")
    ScheduledForUtc: datetime | None
    Attempt: int
    Worker: str | None = Field(..., description="The machine and RQ worker that ran it last")
    RelaunchOf: UUID | None
    ErrorCode: str | None
    ErrorMessage: str | None
    ExpiresUtc: datetime | None = Field(..., description="Desktop downloads: when the files are deleted")
    Files: list[FileOut]


class DatasetPage(Schema):
    Items: list[DatasetOut]
    Count: int
    Page: int
    PageSize: int
    NextPage: int | None


class ConnectorPage(Schema):
    Items: list[ConnectorOut]
    Count: int
    Page: int
    PageSize: int
    NextPage: int | None


class ExportPage(Schema):
    Items: list[ExportOut]
    Count: int
    Page: int
    PageSize: int
    NextPage: int | None


class RunPage(Schema):
    Items: list[RunOut]
    Count: int
    Page: int
    PageSize: int
    NextPage: int | None


class ExportLookup(Schema):
    Items: list[ExportOut]
    NotFound: list[UUID]


class RunLookup(Schema):
    Items: list[RunOut]
    NotFound: list[UUID]


# Writing -----------------------------------------------------------------------


class ExportPatch(Schema):
    """Every field optional: only those sent change (drafts only)."""

    Name: Text | None = Field(None, max_length=200)
    DatasetId: int | None = Field(None, ge=1, le=2**62)
    Columns: list[Text] | None = Field(None, max_length=2000, description="Empty: every column")
    Filters: list[FilterSpec] | None = Field(None, max_length=MAX_FILTERS)
    ExportType: ExportTypeChoice | None = None
    FileFormat: FileFormatChoice | None = None
    Compression: CompressionChoice | None = Field(
        None, description="Default: gzip for CSV and NDJSON, snappy for Parquet"
    )
    CsvDelimiter: DelimiterChoice | None = None
    CsvHeader: bool | None = None
    SpreadsheetSafe: SpreadsheetSafeChoice | None = Field(
        None, description="CSV: 'on' prefixes ' to text cells starting with = + - @; 'auto': on for Desktop only"
    )
    RowsPerFile: int | None = Field(None, ge=1, le=2_000_000_000)
    FileTemplate: Text | None = Field(None, max_length=200)
    ConnectorId: UUID | None = Field(None, description="null or absent: a Desktop download")
    FolderTemplate: Text | None = Field(None, max_length=500)
    Start: Moment | None = Field(
        None, description="ISO 8601; without an offset it is read in TimeZone. One shot: empty to launch by hand."
    )
    End: Moment | None = Field(None, description="Repeating exports; default six months after Start")
    TimeZone: Text | None = Field(None, max_length=64, description="Default: your profile's time zone")
    Cadence: CadenceChoice | None = None
    CursorColumn: Text | None = Field(None, max_length=200, description="Incremental; default the dataset's")
    SafetyLagMinutes: int | None = Field(None, ge=0, le=7 * 24 * 60)
    ReportRecipients: list[Text] | None = Field(None, max_length=100)
    NotifyOnSuccess: bool | None = None


class ExportIn(ExportPatch):
    Name: Text = Field(..., max_length=200)
    DatasetId: int = Field(..., ge=1, le=2**62)
    Launch: bool = Field(False, description="One shot: launch it at once (see QueueAnyway)")
    QueueAnyway: bool = Field(
        False, description="Launch even while you have a run of the same dataset queued or running"
    )


class LaunchIn(Schema):
    QueueAnyway: bool = Field(
        False, description="Launch even while you have a run of the same dataset queued or running"
    )


class CopyIn(Schema):
    Name: Text | None = Field(None, max_length=200, description="Default: 'Copy of <name>'")


class IdsIn(Schema):
    Ids: list[UUID] = Field(..., max_length=MAX_IDS, description="At most 1,000")


# After-export hooks (docs/hooks.md) ------------------------------------------------------

HookEventsChoice = Literal["success", "failure", "both"]


class HookIn(Schema):
    Url: Text = Field(..., max_length=2000, description="https:// URL to POST to (the outbound address policy applies)")
    Events: HookEventsChoice = Field("both", description="Which outcomes it is called for")


class HookOut(Schema):
    Id: int
    Url: str = Field(..., description="In full for who may change the hooks; without its path for others")
    Events: HookEventsChoice
    CreatedUtc: datetime
    CreatedBy: str | None


class HookCreated(HookOut):
    Secret: str = Field(..., description="The signing secret (whsec_...): returned this once, never again")


class HookAttemptOut(Schema):
    Manual: bool = Field(..., description="true for a Send again")
    QueuedUtc: datetime
    SentUtc: datetime | None
    StatusCode: int | None
    Error: str | None
    DurationMs: int | None
    NextRetryUtc: datetime | None


class HookCallOut(Schema):
    Id: UUID
    WebhookId: str = Field(..., description="The webhook-id header of every attempt: drop repeats by it")
    HookId: int | None = Field(..., description="null once the hook was removed")
    Url: str
    Type: str = Field(..., description="export.run.succeeded or export.run.failed")
    Status: Literal["Sending", "Delivered", "Gave up"]
    NextAttemptUtc: datetime | None
    DeliveredUtc: datetime | None
    Attempts: list[HookAttemptOut]
