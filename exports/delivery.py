"""Delivering a run's files: to a connector, or kept for a Desktop download.

Connector deliveries follow docs/delivery-layout.md:
the part files go under the delivery folder, then one Transfer Notification File (TNF)
under `<export GUID>/tnfs/` is written last, so a consumer that sees a TNF knows every
file it lists is complete. Connection-type failures are retried with backoff; anything
else fails the run at once with an error code from the closed list.

Desktop deliveries go to the "exports" storage (local disk by default, or any
django-storages backend: settings.DOWNLOADS_STORAGE) under
`<export GUID>/<delivery GUID>/`. Files are recorded on the run only once every one of
them is in place, so a failed run never offers a partial file.

Before each upload the run notes the path it is about to write (`Run.partial_paths`): a
worker killed mid-delivery leaves no file behind once its run is declared lost
(`discard_partial`).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Collection, Iterator
from datetime import UTC, datetime
from functools import partial

from django.conf import settings
from django.core.files import File
from django.core.files.storage import storages
from django.http import FileResponse, StreamingHttpResponse
from django.utils.http import content_disposition_header
from zipstream import ZIP_STORED, ZipStream

from connectors.errors import DestinationError, Problem
from connectors.storage import Destination, open_destination
from exports.engine import WrittenFile
from exports.health import count_delivery_retry
from exports.layout import context_for_run, delivery_folder, tnf_name
from exports.models import Run, RunFile

logger = logging.getLogger(__name__)

CHUNK = 1024 * 1024

ERROR_CODES = {
    Problem.UNREACHABLE: Run.ErrorCode.DESTINATION_UNREACHABLE,
    Problem.AUTH: Run.ErrorCode.DESTINATION_AUTH_FAILED,
    Problem.NOT_FOUND: Run.ErrorCode.DESTINATION_NOT_FOUND,
    Problem.PERMISSION: Run.ErrorCode.DESTINATION_PERMISSION_DENIED,
    Problem.HOST_KEY: Run.ErrorCode.DESTINATION_HOST_KEY_MISMATCH,
    Problem.WRITE: Run.ErrorCode.DESTINATION_WRITE_FAILED,
    Problem.CONFIG: Run.ErrorCode.DESTINATION_WRITE_FAILED,
    Problem.NOT_ALLOWED: Run.ErrorCode.DESTINATION_NOT_ALLOWED,
}


class DeliveryFailed(Exception):
    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


class _LocalFile(File):
    """A finished part file; FileSystemStorage moves it into place instead of copying."""

    def temporary_file_path(self) -> str:
        return str(self.name)


def desktop_storage():
    return storages["exports"]


def delete_downloads(paths, owner: object) -> None:
    """Delete Desktop files, each as far as the storage lets us: a failure is logged
    (naming `owner`, a run or an export) and the others still go."""
    storage = desktop_storage()
    for path in paths:
        try:
            storage.delete(path)
        except Exception as exc:  # noqa: BLE001 - each storage backend raises its own errors; the rest still go
            logger.warning("%s: could not delete %s: %s", owner, path, exc)


def deliver(run: Run, files: list[WrittenFile]) -> tuple[str, list[RunFile], str]:
    """Put a run's files where the run was created to deliver them (its export may have
    changed since); returns (folder, files, TNF path)."""
    if run.is_desktop:
        folder = desktop_folder(run)
        return folder, _deliver_desktop(run, files, folder, partial(note, run)), ""
    folder = delivery_folder(run.export, context_for_run(run))
    return _deliver_to_connector(run, files, folder, partial(note, run), with_tnf=True)


def deliver_part(
    run: Run, files: list[WrittenFile], folder: str, note: Callable[[list[str]], None], own: Collection[str] = ()
) -> list[RunFile]:
    """A partition's files, under the run's folder, without a TNF (exports/partitions.py);
    `own` are names its earlier attempt may have left, which it may write again."""
    if run.is_desktop:
        return _deliver_desktop(run, files, desktop_folder(run), note)
    return _deliver_to_connector(run, files, folder, note, with_tnf=False, own=own)[1]


def finish_parts(run: Run, folder: str, files: list[RunFile]) -> tuple[str, str]:
    """After every partition delivered its files: the TNF listing them all, written
    last; returns (the folder's full path, the TNF's)."""
    if run.is_desktop:
        return desktop_folder(run), ""
    connector = _connector_of(run)
    try:
        with open_destination(connector) as destination:
            tnf = _write_tnf(run, destination, folder, files, partial(note, run))
            return destination.full_path(folder), tnf
    except DestinationError as exc:
        raise DeliveryFailed(ERROR_CODES[exc.problem], f"{connector.name}: {exc.message}") from None


def desktop_folder(run: Run) -> str:
    return f"{run.export_id}/{run.id}"


def _connector_of(run: Run):
    if run.connector is None:
        raise DeliveryFailed(
            Run.ErrorCode.DESTINATION_NOT_FOUND,
            f"the connector of {run.destination} was deleted after the run was queued",
        )
    return run.connector


def _deliver_desktop(
    run: Run, files: list[WrittenFile], folder: str, note: Callable[[list[str]], None]
) -> list[RunFile]:
    storage = desktop_storage()
    delivered: list[RunFile] = []
    try:
        for written in files:
            note([*(f.path for f in delivered), f"{folder}/{written.name}"])
            with open(written.path, "rb") as fh:
                name = storage.save(f"{folder}/{written.name}", _LocalFile(fh, name=str(written.path)))
            delivered.append(_run_file(written, name))
    except Exception:
        discard(run, delivered)
        raise
    return delivered


def _run_file(written: WrittenFile, path: str) -> RunFile:
    return RunFile(
        part=written.part,
        name=written.name,
        path=path,
        size_bytes=written.size_bytes,
        rows=written.rows,
        sha256=written.sha256,
    )


def _with_retries(destination: Destination, what: str, action, *args):
    """One destination call; connection-type failures are tried again after 1×, 2×, 4×...
    EXPORT_DELIVERY_BACKOFF seconds, EXPORT_DELIVERY_ATTEMPTS times in all."""
    attempts = settings.EXPORT_DELIVERY_ATTEMPTS
    for attempt in range(1, attempts + 1):
        try:
            return destination.call(what, action, *args)
        except DestinationError as exc:
            if not exc.retryable or attempt == attempts:
                raise
            delay = settings.EXPORT_DELIVERY_BACKOFF * 2 ** (attempt - 1)
            count_delivery_retry()
            logger.warning("%s failed (attempt %s of %s), retrying in %s s: %s", what, attempt, attempts, delay, exc)
            time.sleep(delay)


def tnf_document(run: Run, data_folder: str, files: list[RunFile], moment: datetime) -> dict:
    """The Transfer Notification File's content (docs/delivery-layout.md)."""
    export = run.export
    connector = run.connector
    assert connector is not None  # only connector deliveries have a TNF
    return {
        "TnfVersion": 1,
        "ExportId": str(export.id),
        "ExportName": export.name,
        "DeliveryId": str(run.id),
        "DatasetId": str(export.dataset_id),
        "DatasetName": export.dataset.qualified_name,
        "Destination": connector.kind,
        "DestinationInstanceId": str(connector.id),
        "DestinationInstanceName": connector.name,
        "DataFolder": data_folder,
        "CreatedAt": moment.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        # A partitioned run's files follow its plan, fixed when it split.
        "Format": (run.plan or {}).get("file_format", export.file_format),
        "Compression": (run.plan or {}).get("compression", export.compression),
        "SpreadsheetSafe": (run.plan or {}).get("spreadsheet_safe", run.spreadsheet_safe),
        "FileCount": len(files),
        "RowCount": sum(f.rows for f in files),
        "TotalBytes": sum(f.size_bytes for f in files),
        "Files": [
            {"Name": f.name, "Path": f.path, "Size": f.size_bytes, "Rows": f.rows, "Sha256": f.sha256} for f in files
        ],
    }


def _deliver_to_connector(
    run: Run,
    files: list[WrittenFile],
    folder: str,
    note: Callable[[list[str]], None],
    *,
    with_tnf: bool,
    own: Collection[str] = (),
) -> tuple[str, list[RunFile], str]:
    connector = _connector_of(run)
    delivered: list[RunFile] = []
    try:
        with open_destination(connector) as destination:
            _with_retries(destination, "connecting", destination.check)
            existing = set(_with_retries(destination, "listing the delivery folder", destination.listdir, folder))
            clashes = sorted((existing - set(own)) & {written.name for written in files})
            if clashes:
                raise DestinationError(
                    Problem.WRITE,
                    f"{destination.full_path(folder)} already holds {', '.join(clashes)}; deliveries never overwrite "
                    "files: put %DATETIME(YYYYMMdd_HHmmss)% or %DELIVERY_ID% in the file or folder template",
                )
            for written in files:
                name = f"{folder}/{written.name}"
                note([*(f.path for f in delivered), destination.full_path(name)])
                _with_retries(destination, f"uploading {written.name}", destination.upload, str(written.path), name)
                delivered.append(_run_file(written, destination.full_path(name)))
            tnf = _write_tnf(run, destination, folder, delivered, note) if with_tnf else ""
            return destination.full_path(folder), delivered, tnf
    except DestinationError as exc:
        discard(run, delivered)
        raise DeliveryFailed(ERROR_CODES[exc.problem], f"{connector.name}: {exc.message}") from None


def _write_tnf(
    run: Run, destination: Destination, folder: str, files: list[RunFile], note: Callable[[list[str]], None]
) -> str:
    moment = datetime.now(UTC)
    tnf = tnf_name(run.export, moment)
    note([*(f.path for f in files), destination.full_path(tnf)])
    document = tnf_document(run, destination.full_path(folder), files, moment)
    payload = json.dumps(document, indent=2).encode()
    _with_retries(destination, "writing the TNF", destination.write_bytes, tnf, payload)
    return destination.full_path(tnf)


def discard(run: Run, files: list[RunFile], tnf_path: str = "") -> None:
    """Remove what a failed or cancelled run delivered (its TNF first), as far as the
    store lets us."""
    if files:
        remove_paths(run, [tnf_path, *(run_file.path for run_file in files)])


def note(run: Run, paths: list[str]) -> None:
    Run.objects.filter(id=run.id).update(partial_paths=paths)


def discard_partial(run: Run) -> None:
    """Remove what a run whose worker died had started to deliver (the paths it noted)."""
    paths = list(run.partial_paths or [])
    if paths and remove_paths(run, paths[::-1]):  # the TNF, noted last, first
        Run.objects.filter(id=run.id).update(partial_paths=[])


def remove_paths(run: Run, paths: list[str]) -> bool:
    """Delete `paths` from where the run delivered, in order; False when the store
    could not be reached (what is left is logged)."""
    if run.is_desktop:
        delete_downloads([path for path in paths if path], f"run {run.id}")
        return True
    if run.connector is None:
        logger.warning("run %s: its connector was deleted; its partial files stay in %s", run.id, run.destination)
        return False
    try:
        with open_destination(run.connector) as destination:
            for path in paths:
                if path:
                    destination.call("removing a partial delivery", destination.delete, destination.name_of(path))
    except DestinationError as exc:
        logger.warning("run %s: could not remove its partial files: %s", run.id, exc)
        return False
    return True


def desktop_chunks(path: str) -> Iterator[bytes]:
    """A Desktop download's file, a chunk at a time."""
    with desktop_storage().open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            yield chunk


def download_response(run: Run):
    """One file streams as it is; several become one zip built on the fly (stored, not
    recompressed: the parts are compressed already, and the zip's size is known up front)."""
    files = list(run.files.all())
    if len(files) == 1:
        only = files[0]
        return FileResponse(desktop_storage().open(only.path, "rb"), as_attachment=True, filename=only.name)
    archive = ZipStream(compress_type=ZIP_STORED, sized=True)
    for run_file in files:
        archive.add(desktop_chunks(run_file.path), run_file.name, size=run_file.size_bytes)
    response = StreamingHttpResponse(archive, content_type="application/zip")
    response["Content-Length"] = str(len(archive))
    stem = files[0].name.rsplit("-", 1)[0] if files else "export"
    response["Content-Disposition"] = content_disposition_header(True, f"{stem}.zip") or "attachment"
    return response
