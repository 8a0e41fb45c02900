"""Read exported files back with independent readers and normalise values so they can be
compared with rows read straight from the source database."""

from __future__ import annotations

import csv
import gzip
import io
import json
import tempfile
import zipfile
from datetime import UTC, date, datetime
from decimal import Decimal, localcontext
from pathlib import Path

import pyarrow.parquet as pq


def read_file(path: Path, file_format: str, *, delimiter: str = ",") -> list[dict]:
    opener = gzip.open if path.name.endswith(".gz") else open
    if file_format == "parquet":
        return pq.read_table(path).to_pylist()
    with opener(path, "rt", encoding="utf-8", newline="") as fh:
        if file_format == "ndjson":
            # Decimals as the exact numbers the file holds, not the floats json would make of them.
            return [json.loads(line, parse_float=Decimal) for line in fh if line.strip()]
        return list(csv.DictReader(fh, delimiter=delimiter))


def read_zip_or_file(content: bytes, name: str, file_format: str) -> list[dict]:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        if name.endswith(".zip"):
            with zipfile.ZipFile(io.BytesIO(content)) as archive:
                for member in sorted(archive.namelist(), key=lambda n: int(n.rsplit("-", 1)[1].split(".")[0])):
                    archive.extract(member, tmp)
                    rows += read_file(Path(tmp) / member, file_format)
        else:
            path = Path(tmp) / name
            path.write_bytes(content)
            rows = read_file(path, file_format)
    return rows


def normalise(value, logical_type: str, *, scale: int = 0, milliseconds: bool = False):
    """One comparable Python value, whatever text or type a reader or the source gave."""
    if value is None or value == "":
        return None
    if logical_type == "integer":
        return int(value)
    if logical_type == "float":
        return float(value)
    if logical_type == "decimal":
        with localcontext() as context:
            context.prec = 80  # 38 digits and more, as the files carry them
            return Decimal(str(value)).quantize(Decimal(1).scaleb(-scale))
    if logical_type == "boolean":
        return value if isinstance(value, bool) else str(value).lower() in {"true", "1"}
    if logical_type == "timestamp":
        moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
        if milliseconds:
            moment = moment.replace(microsecond=moment.microsecond // 1000 * 1000)
        return moment
    if logical_type == "datetime":
        moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
        return moment.replace(microsecond=moment.microsecond // 1000 * 1000) if milliseconds else moment
    if logical_type == "date":
        return value if isinstance(value, date) else date.fromisoformat(str(value))
    return str(value)


def normalise_rows(rows: list[dict], columns: list[dict], **options) -> list[tuple]:
    return [
        tuple(normalise(row[c["name"]], c["type"], scale=c.get("scale", 0), **options) for c in columns) for row in rows
    ]
