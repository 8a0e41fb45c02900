"""Delivering a run's files, and handing Desktop deliveries back to the browser.

Desktop deliveries go to the "exports" storage (local disk by default) under
`<export GUID>/<delivery GUID>/`. Files are recorded on the run only once every one of
them is in place, so a failed run never offers a partial file.
"""

from __future__ import annotations

from collections.abc import Iterator

from django.core.files import File
from django.core.files.storage import storages
from django.http import FileResponse, StreamingHttpResponse
from django.utils.http import content_disposition_header
from zipstream import ZIP_STORED, ZipStream

from exports.engine import WrittenFile
from exports.models import Run, RunFile

CHUNK = 1024 * 1024


class _LocalFile(File):
    """A finished part file; FileSystemStorage moves it into place instead of copying."""

    def temporary_file_path(self) -> str:
        return self.name


def desktop_storage():
    return storages["exports"]


def deliver(run: Run, files: list[WrittenFile]) -> tuple[str, list[RunFile]]:
    storage = desktop_storage()
    folder = f"{run.export_id}/{run.id}"
    delivered: list[RunFile] = []
    try:
        for written in files:
            with open(written.path, "rb") as fh:
                name = storage.save(f"{folder}/{written.name}", _LocalFile(fh, name=str(written.path)))
            delivered.append(
                RunFile(
                    part=written.part,
                    name=written.name,
                    path=name,
                    size_bytes=written.size_bytes,
                    rows=written.rows,
                    sha256=written.sha256,
                )
            )
    except Exception:
        discard(delivered)
        raise
    return folder, delivered


def discard(files: list[RunFile]) -> None:
    storage = desktop_storage()
    for run_file in files:
        try:
            storage.delete(run_file.path)
        except OSError:
            pass


def _chunks(path: str) -> Iterator[bytes]:
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
        archive.add(_chunks(run_file.path), run_file.name, size=run_file.size_bytes)
    response = StreamingHttpResponse(archive, content_type="application/zip")
    response["Content-Length"] = str(len(archive))
    stem = files[0].name.rsplit("-", 1)[0] if files else "export"
    response["Content-Disposition"] = content_disposition_header(True, f"{stem}.zip")
    return response
