"""Names of delivered files and folders, rendered from templates with tokens.

Tokens look like `%EXPORT_NAME%` or `%DATETIME(YYYYMMdd_HHmmss)%`. A template is checked
when the export is saved, so a run never meets an unknown token or an unsafe path.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from django.core.exceptions import ValidationError

TOKENS = (
    "DELIVERY_ID",
    "EXPORT_ID",
    "EXPORT_NAME",
    "DATASET_ID",
    "DATASET_NAME",
    "DESTINATION",
    "DESTINATION_INSTANCE_NAME",
    "DESTINATION_INSTANCE_ID",
    "EXPORT_TIME",
    "SANDBOX_NAME",
)
_TOKEN = re.compile(r"%([A-Z_]+)(?:\(([^)%]*)\))?%")
# Java-style date patterns, as in the product documentation we follow.
_DATE_PARTS = [
    ("YYYY", "%Y"),
    ("yyyy", "%Y"),
    ("MM", "%m"),
    ("dd", "%d"),
    ("HH", "%H"),
    ("mm", "%M"),
    ("ss", "%S"),
    ("SSS", "{ms}"),
]
_DATE_PATTERN = re.compile("|".join(re.escape(part) for part, _ in sorted(_DATE_PARTS, key=lambda p: -len(p[0]))))
# (format, compression) -> file extension; a pair not listed is not a valid combination.
_EXTENSIONS = {
    ("csv", "none"): "csv",
    ("csv", "gzip"): "csv.gz",
    ("ndjson", "none"): "json",
    ("ndjson", "gzip"): "json.gz",
    ("parquet", "none"): "parquet",
    ("parquet", "snappy"): "parquet",
    ("parquet", "zstd"): "parquet",
    ("parquet", "gzip"): "gz.parquet",
}
COMPRESSIONS_BY_FORMAT: dict[str, set[str]] = {}
for _format, _compression in _EXTENSIONS:
    COMPRESSIONS_BY_FORMAT.setdefault(_format, set()).add(_compression)
# Safe on S3, GCS, Azure Blob, SFTP servers and every desktop file system.
_UNSAFE = re.compile(r'[\\:*?"<>|\x00-\x1f\x7f#%{}^~\[\]`]')


@dataclass
class LayoutContext:
    delivery_id: str
    export_id: str
    export_name: str
    dataset_id: str
    dataset_name: str
    destination: str
    destination_instance_name: str
    destination_instance_id: str
    moment: datetime  # UTC
    sandbox_name: str = "prod"


def _format_date(pattern: str, moment: datetime) -> str:
    mapping = dict(_DATE_PARTS)
    return _DATE_PATTERN.sub(
        lambda m: moment.strftime(mapping[m.group(0)]).replace("{ms}", f"{moment.microsecond // 1000:03d}"), pattern
    )


def file_extension(file_format: str, compression: str) -> str:
    try:
        return _EXTENSIONS[(file_format, compression)]
    except KeyError:
        raise ValueError(f"{file_format} files can't be compressed with {compression}") from None


def safe_segment(text: str) -> str:
    """Make free text (an export name) safe as part of a file or folder name."""
    cleaned = _UNSAFE.sub("_", text).replace("/", "_").strip().strip(".")
    cleaned = re.sub(r"[\s_]+", "_", cleaned)
    return cleaned or "export"


def validate_template(template: str, *, allow_slashes: bool) -> None:
    for match in _TOKEN.finditer(template):
        token, argument = match.groups()
        if token == "DATETIME":
            if not argument or not _DATE_PATTERN.search(argument):
                raise ValidationError(f"%DATETIME(...)% needs a date pattern such as YYYYMMdd_HHmmss, got {argument!r}")
            if _UNSAFE.search(_DATE_PATTERN.sub("", argument)) or "/" in argument:
                raise ValidationError(f"the date pattern {argument!r} contains characters unsafe in file names")
        elif token not in TOKENS or argument is not None:
            raise ValidationError(f"unknown token %{token}{'(' + argument + ')' if argument else ''}%")
    literal = _TOKEN.sub("", template)
    if _UNSAFE.search(literal):
        bad = sorted(set(_UNSAFE.findall(literal)))
        raise ValidationError(f"unsafe characters in {template!r}: {' '.join(repr(c) for c in bad)}")
    if not allow_slashes and "/" in literal:
        raise ValidationError("a file name can't contain '/'")
    if template.startswith("/"):
        raise ValidationError("the path must be relative, not start with '/'")
    if any(part in {"..", "."} for part in template.split("/")):
        raise ValidationError("'..' and '.' are not allowed in a path")
    if allow_slashes and "//" in template:
        raise ValidationError("empty folder names ('//') are not allowed")


def validate_file_template(template: str) -> None:
    validate_template(template, allow_slashes=False)


def validate_folder_template(template: str) -> None:
    if template:
        validate_template(template, allow_slashes=True)


def render_template(template: str, context: LayoutContext) -> str:
    values = {
        "DELIVERY_ID": context.delivery_id,
        "EXPORT_ID": context.export_id,
        "EXPORT_NAME": safe_segment(context.export_name),
        "DATASET_ID": context.dataset_id,
        "DATASET_NAME": safe_segment(context.dataset_name),
        "DESTINATION": safe_segment(context.destination),
        "DESTINATION_INSTANCE_NAME": safe_segment(context.destination_instance_name),
        "DESTINATION_INSTANCE_ID": context.destination_instance_id,
        "EXPORT_TIME": "exportTime=" + context.moment.strftime("%Y%m%d%H%M"),
        "SANDBOX_NAME": safe_segment(context.sandbox_name),
    }

    def replace(match: re.Match) -> str:
        token, argument = match.groups()
        if token == "DATETIME":
            return _format_date(argument, context.moment)
        return values[token]

    return _TOKEN.sub(replace, template)


def context_for(export, connector, *, delivery_id: str, moment: datetime) -> LayoutContext:
    """The tokens' values for a delivery of `export` to `connector` (None: Desktop)."""
    return LayoutContext(
        delivery_id=delivery_id,
        export_id=str(export.id),
        export_name=export.name,
        dataset_id=str(export.dataset_id),
        dataset_name=export.dataset.name,
        destination=connector.get_kind_display() if connector else "Desktop",
        destination_instance_name=connector.name if connector else "Desktop",
        destination_instance_id=str(connector.id) if connector else "desktop",
        moment=moment,
    )


def context_for_run(run) -> LayoutContext:
    """A run's tokens: its own destination, whatever the export says now."""
    return context_for(run.export, run.connector, delivery_id=str(run.id), moment=run.started_at or run.queued_at)


UNSCHEDULED = "unscheduled"
TNF_FOLDER = "tnfs"


def delivery_folder(export, context: LayoutContext) -> str:
    """Where a run's files go, relative to the connector's path:
    `<export GUID>/unscheduled` for a one-shot, `<export GUID>/<delivery folder>` for each
    run of a repeating export (the folder template, or the delivery GUID)."""
    if export.export_type == export.Type.ONE_SHOT:
        return f"{export.id}/{UNSCHEDULED}"
    folder = render_template(export.folder_template, context) if export.folder_template else context.delivery_id
    return f"{export.id}/{folder}"


def tnf_name(export, moment: datetime) -> str:
    """`<export GUID>/tnfs/<UTC timestamp>.tnf`; milliseconds keep two deliveries apart."""
    return f"{export.id}/{TNF_FOLDER}/{moment:%Y%m%dT%H%M%S}{moment.microsecond // 1000:03d}Z.tnf"
