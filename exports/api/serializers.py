"""Model rows -> API documents (exports/api/schemas.py)."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from django.conf import settings

from connectors.models import Connector
from exports.api.definitions import current_definition
from exports.api.signing import signed_file_url
from exports.models import Dataset, Export, Hook, HookCall, Run

# Keyed by str: a run's status field reads back as plain text.
RUN_STATUS: dict[str, str] = {
    Run.Status.QUEUED: "Pending",
    Run.Status.RUNNING: "Processing",
    Run.Status.SUCCEEDED: "Success",
    Run.Status.FAILED: "Failed",
    Run.Status.EXPIRED: "Expired",
    Run.Status.CANCELLED: "Cancelled",
}
RUN_STATUS_VALUES = {api: model for model, api in RUN_STATUS.items()}
EXPORT_STATUS = {status.value: status.label for status in Export.Status}
EXPORT_STATUS_VALUES = {label: value for value, label in EXPORT_STATUS.items()}


def dataset_out(dataset: Dataset) -> dict:
    return {
        "Id": dataset.id,
        "Name": dataset.qualified_name,
        "DatabaseId": dataset.database_id,
        "Database": dataset.database.name,
        "DataType": dataset.data_type,
        "Kind": dataset.kind,
        "EstimatedRows": dataset.estimated_rows,
        "CursorColumn": dataset.cursor_column,
        "Columns": [
            {"Name": c["name"], "Type": c["type"], "Nullable": bool(c.get("nullable", True))} for c in dataset.columns
        ],
        "Missing": dataset.missing_since is not None,
    }


def connector_out(connector: Connector) -> dict:
    # Never options or secrets: the location is what users recognise, and it is safe.
    return {
        "Id": connector.id,
        "Name": connector.name,
        "Kind": connector.kind,
        "Owner": connector.owner.get_username(),
        "Location": connector.location,
        "LastTestOk": connector.last_test_ok,
        "LastTestedUtc": connector.last_tested_at,
    }


def export_out(export: Export) -> dict:
    """`export` comes from `endpoints.exports_queryset`, with its last run annotated."""
    definition = current_definition(export)
    definition.update(
        Cadence=export.cadence,
        ConnectorId=export.connector_id,
    )
    if export.managed and not export.has_standard_equivalent:
        # A custom export's definition is the operators' (as on its page): what to read and
        # how stays unsaid; its type, destination and schedule are shown.
        definition.update(Columns=[], Filters=[], CursorColumn="", FileTemplate="", FolderTemplate="")
        definition.update(ReportRecipients=[])
    last_status = getattr(export, "last_run_status", None)
    return {
        "Id": export.id,
        **definition,
        "Owner": export.owner.get_username(),
        "Status": EXPORT_STATUS[export.status],
        "Dataset": export.dataset.qualified_name,
        "Database": export.dataset.database.name,
        "DataType": export.dataset.data_type,
        "Watermark": _text_or_none((export.watermark or {}).get("value")) if export.is_incremental else None,
        "NextRunUtc": export.next_run_at,
        "LastRunId": getattr(export, "last_run_id", None),
        "LastRunStatus": RUN_STATUS.get(last_status) if last_status else None,
        "CopiedFrom": export.copied_from_id,
        "Custom": export.shown_type if export.managed else None,
        "SchemaProblem": export.schema_problem or None,
        "CreatedUtc": export.created_at,
        "UpdatedUtc": export.updated_at,
    }


def _text_or_none(value: object) -> str | None:
    return None if value is None else str(value)


def has_files_to_serve(run: Run) -> bool:
    """Files a signed URL may fetch: a succeeded run, and for a download, not yet expired;
    never a custom export's, which nobody downloads (permissions.can_download: a signed
    URL has no user to ask)."""
    if run.export.managed:
        return False
    return run.status == Run.Status.SUCCEEDED and (not run.is_desktop or run.is_downloadable)


def run_out(run: Run) -> dict:
    """`run` comes with its export and, prefetched, its files."""
    servable = has_files_to_serve(run)
    now = time.time()
    url_expiry = datetime.fromtimestamp(int(now + settings.API_DOWNLOAD_URL_SECONDS), tz=UTC)
    return {
        "Id": run.id,
        "ExportId": run.export_id,
        "ExportName": run.export.name,
        "Status": RUN_STATUS[run.status],
        "Trigger": run.trigger,
        "QueuedUtc": run.queued_at,
        "StartedUtc": run.started_at,
        "FinishedUtc": run.finished_at,
        "DurationSeconds": run.duration.total_seconds() if run.duration is not None else None,
        "RowsDone": run.rows_done,
        "EstimatedRows": run.estimated_rows,
        "ProgressPercent": run.progress_percent,
        "Rows": run.row_count,
        "SizeInBytes": run.bytes,
        "Destination": run.destination,
        "DeliveryFolder": run.delivery_folder,
        "TnfPath": run.tnf_path,
        "WindowFrom": run.window_from,
        "WindowTo": run.window_to,
        "LookbackFrom": run.lookback_from,
        "LateRows": run.late_rows,
        "Warning": run.warning or None,
        "ScheduledForUtc": run.scheduled_for,
        "Attempt": run.attempt,
        "Worker": run.worker or None,
        "RelaunchOf": run.relaunch_of_id,
        "ErrorCode": run.error_code or None,
        "ErrorMessage": run.error_message or None,
        "ExpiresUtc": run.expires_at if run.is_desktop else None,
        "Files": [
            {
                "Part": f.part,
                "Name": f.name,
                "Path": f.path,
                "SizeInBytes": f.size_bytes,
                "Rows": f.rows,
                "Sha256": f.sha256,
                "Url": signed_file_url(run.id, f.part, now=now) if servable else None,
                "UrlExpiresUtc": url_expiry if servable else None,
            }
            for f in run.files.all()
        ],
    }


def hook_out(hook: Hook, *, full: bool) -> dict:
    return {
        "Id": hook.id,
        "Url": hook.url if full else hook.origin,
        "Events": hook.events,
        "CreatedUtc": hook.created_at,
        "CreatedBy": hook.created_by.get_username() if hook.created_by else None,
    }


def hook_call_out(call: HookCall, *, full: bool) -> dict:
    """`call` comes with its hook and, prefetched, its attempts."""
    return {
        "Id": call.id,
        "WebhookId": call.webhook_id,
        "HookId": call.hook_id,
        "Url": call.url if full else (call.hook.origin if call.hook else ""),
        "Type": call.event,
        "Status": call.get_status_display(),
        "NextAttemptUtc": call.next_attempt_at,
        "DeliveredUtc": call.delivered_at,
        "Attempts": [
            {
                "Manual": attempt.manual,
                "QueuedUtc": attempt.queued_at,
                "SentUtc": attempt.started_at,
                "StatusCode": attempt.status_code,
                "Error": attempt.error or None,
                "DurationMs": attempt.duration_ms,
                "NextRetryUtc": attempt.next_retry_at,
            }
            for attempt in call.attempt_log.all()
        ],
    }
