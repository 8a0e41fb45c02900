"""Export definitions from API requests, validated by the wizard's own forms, so the
API accepts exactly what the UI accepts and refuses it with the same messages."""

from __future__ import annotations

from typing import TYPE_CHECKING
from zoneinfo import available_timezones

from django import forms
from django.conf import settings
from django.core.exceptions import ValidationError
from django.utils import timezone

from exports import actions
from exports import filters as export_filters
from exports.api.errors import invalid
from exports.forms import DestinationStepForm, FileStepForm, ScheduleStepForm, SourceStepForm
from exports.models import Dataset, Export, recipients_of

if TYPE_CHECKING:
    from django.contrib.auth.models import User

# Form field -> API field, for error messages.
API_FIELDS = {
    "name": "Name",
    "dataset": "DatasetId",
    "columns": "Columns",
    "file_format": "FileFormat",
    "compression": "Compression",
    "csv_delimiter": "CsvDelimiter",
    "csv_header": "CsvHeader",
    "spreadsheet_safe": "SpreadsheetSafe",
    "rows_per_file": "RowsPerFile",
    "file_template": "FileTemplate",
    "connector": "ConnectorId",
    "folder_template": "FolderTemplate",
    "export_type": "ExportType",
    "schedule_start": "Start",
    "schedule_end": "End",
    "cadence": "Cadence",
    "cursor_column": "CursorColumn",
    "safety_lag_minutes": "SafetyLagMinutes",
    "report_recipients": "ReportRecipients",
    "notify_on_success": "NotifyOnSuccess",
    "__all__": "Export",
}
DEFAULT_COMPRESSION = {"csv": "gzip", "ndjson": "gzip", "parquet": "snappy"}


def current_definition(export: Export) -> dict:
    """An export's definition in API fields: what a partial update starts from."""
    return {
        "Name": export.name,
        "DatasetId": export.dataset_id,
        "Columns": list(export.columns),
        "Filters": [
            {
                "Column": spec["column"],
                "Operator": spec["operator"],
                "Value": spec.get("value", ""),
                "ValueTo": spec.get("value_to", ""),
            }
            for spec in export.filters
        ],
        "ExportType": export.export_type,
        "FileFormat": export.file_format,
        "Compression": export.compression,
        "CsvDelimiter": export.csv_delimiter,
        "CsvHeader": export.csv_header,
        "SpreadsheetSafe": export.spreadsheet_safe,
        "RowsPerFile": export.rows_per_file,
        "FileTemplate": export.file_template,
        "ConnectorId": export.connector_id,
        "FolderTemplate": export.folder_template,
        "Start": export.schedule_start,
        "End": export.schedule_end,
        "TimeZone": export.schedule_timezone,
        "Cadence": export.cadence or "day",
        "CursorColumn": export.cursor_column,
        "SafetyLagMinutes": export.safety_lag_seconds // 60,
        "ReportRecipients": recipients_of(export),
        "NotifyOnSuccess": export.notify_on_success,
    }


def save_definition(export: Export, given: dict, *, time_zone: str, user: User) -> Export:
    """Validate `given` (API fields; absent ones keep the export's values) with the
    wizard's forms and save it into `export`; raises an ApiError naming every bad field.

    1. Fill in what wasn't sent: the export's current values, or the defaults.
    2. Run the Source, File, Destination and Schedule forms over one instance, as the
       wizard does, and the filters through the same validation.
    3. Save only when every step is valid, through `actions.save_draft`.
    """
    current = current_definition(export) if export.pk else {}
    merged = {**current, **given}
    if "Compression" not in given and ("FileFormat" in given or not export.pk):
        merged["Compression"] = DEFAULT_COMPRESSION[merged.get("FileFormat") or "csv"]
    zone = merged.get("TimeZone") or time_zone
    errors: dict[str, list[str]] = {}
    if zone not in available_timezones():
        errors["TimeZone"] = [f"{zone!r} is not a time zone (e.g. Europe/Paris, UTC)"]
        zone = "UTC"
    dataset_id = merged.get("DatasetId")
    usable = Dataset.objects.usable().filter(database__sandbox_id=export.sandbox_id)
    if dataset_id is not None and not usable.filter(id=dataset_id).exists():
        errors["DatasetId"] = [f"there is no dataset {dataset_id} (or it no longer exists in its database)"]

    def collect(form: forms.BaseForm) -> None:
        if not form.is_valid():
            for field, messages in form.errors.items():
                # An ErrorList iterates as message text; the stubs also list the ValidationErrors it holds.
                errors.setdefault(API_FIELDS.get(field, field), []).extend(messages)  # type: ignore[arg-type]

    source = SourceStepForm(
        {"name": merged.get("Name") or "", "dataset": dataset_id, "columns": merged.get("Columns") or []},
        instance=export,
    )
    if "DatasetId" not in errors:
        collect(source)
    file = FileStepForm(
        {
            "file_format": merged.get("FileFormat") or "csv",
            "compression": merged.get("Compression"),
            "csv_delimiter": merged.get("CsvDelimiter") or ",",
            "csv_header": merged.get("CsvHeader", True),
            "spreadsheet_safe": merged.get("SpreadsheetSafe") or Export.SpreadsheetSafe.AUTO,
            "rows_per_file": merged.get("RowsPerFile") or settings.EXPORT_DEFAULT_ROWS_PER_FILE,
            "file_template": merged.get("FileTemplate") or Export._meta.get_field("file_template").default,
        },
        instance=export,
    )
    collect(file)
    destination = DestinationStepForm(
        {"connector": merged.get("ConnectorId") or "", "folder_template": merged.get("FolderTemplate") or ""},
        instance=export,
    )
    collect(destination)
    specs = [
        {
            "column": spec["Column"],
            "operator": spec["Operator"],
            "value": _text(spec.get("Value")),
            "value_to": _text(spec.get("ValueTo")),
        }
        for spec in merged.get("Filters") or []
    ]
    schedule = None
    if export.dataset_id and not errors.get("DatasetId"):
        try:
            export_filters.validate_filters(specs, export.dataset.columns)
        except ValidationError as exc:
            errors["Filters"] = exc.messages
        with timezone.override(zone):
            schedule = ScheduleStepForm(
                {
                    "export_type": merged.get("ExportType") or Export.Type.ONE_SHOT,
                    # Aware times are kept; naive ones are read in the active zone.
                    "schedule_start": merged.get("Start"),
                    "schedule_end": merged.get("End"),
                    "cadence": merged.get("Cadence") or "day",
                    "cursor_column": merged.get("CursorColumn") or export.dataset.cursor_column,
                    "safety_lag_minutes": merged.get("SafetyLagMinutes") or 0,
                    "report_recipients": ", ".join(merged.get("ReportRecipients") or []),
                    "notify_on_success": bool(merged.get("NotifyOnSuccess")),
                },
                instance=export,
                time_zone=zone,
            )
            collect(schedule)
    if errors:
        raise invalid(errors)
    # No errors means the source form was valid, so the export has its dataset and the
    # schedule form ran.
    assert schedule is not None
    for form in (source, file, destination, schedule):
        form.save(commit=False)
    export.filters = specs
    try:
        return actions.save_draft(user, export)
    except actions.ActionRefused as exc:
        if exc.fields:  # the model's own checks: name the API's fields
            raise invalid({API_FIELDS.get(name, name): problems for name, problems in exc.fields.items()}) from None
        raise


def _text(value: object) -> str:
    return "" if value is None else str(value)
