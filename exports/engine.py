"""Writing part files: a stream of Arrow record batches in, CSV / NDJSON / Parquet files out.

Memory is bounded by one batch: batches are written as they come, sliced (zero-copy)
where a part file fills up, and never gathered. Text formats follow one contract
(docs/file-contract.md): RFC 3339 UTC timestamps with microseconds, plain decimals at
their scale, `true`/`false`. No Django here: the engine is a pure function of its input.
"""

from __future__ import annotations

import gzip
import hashlib
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

# pyarrow and Python default to gzip level 9: against 6, several times slower for files
# under 1% smaller (measured, see shared/STACK.md).
GZIP_LEVEL = 6
ZSTD_LEVEL = 3
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


@dataclass(frozen=True)
class FileSpec:
    file_format: str  # "csv" | "ndjson" | "parquet"
    compression: str  # "none" | "gzip" | "snappy" | "zstd" (the last two: Parquet only)
    rows_per_file: int
    name_stem: str  # files are f"{name_stem}-{part}.{extension}"
    csv_delimiter: str = ","
    csv_header: bool = True


@dataclass
class WrittenFile:
    part: int
    name: str
    path: Path
    rows: int
    size_bytes: int
    sha256: str


def file_extension(file_format: str, compression: str) -> str:
    try:
        return _EXTENSIONS[(file_format, compression)]
    except KeyError:
        raise ValueError(f"{file_format} files can't be compressed with {compression}") from None


# --- the text contract ----------------------------------------------------------------------


def _as_text(array: pa.Array) -> pa.Array:
    """Timestamps as RFC 3339 (UTC with Z when the type has a zone); other types unchanged."""
    if pa.types.is_timestamp(array.type):
        array = pc.cast(array, pa.timestamp("us", tz=array.type.tz)) if array.type.unit != "us" else array
        return pc.strftime(array, format="%Y-%m-%dT%H:%M:%SZ" if array.type.tz else "%Y-%m-%dT%H:%M:%S")
    return array


def _text_schema(schema: pa.Schema) -> pa.Schema:
    return pa.schema([pa.field(f.name, pa.string()) if pa.types.is_timestamp(f.type) else f for f in schema])


def _to_text_batch(batch: pa.RecordBatch, schema: pa.Schema) -> pa.RecordBatch:
    return pa.RecordBatch.from_arrays([_as_text(column) for column in batch.columns], schema=schema)


_CONTROL_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t", "\b": "\\b", "\f": "\\f"}
_CONTROL_CHARS = "".join(chr(code) for code in range(0x20))


def _json_string(array: pa.Array) -> pa.Array:
    """JSON string literals for a string array, escaped with vectorised kernels."""
    array = pc.replace_substring(array, "\\", "\\\\")
    array = pc.replace_substring(array, '"', '\\"')
    if pc.any(pc.match_substring_regex(array, "[\\x00-\\x1f]")).as_py():
        for char in _CONTROL_CHARS:
            escaped = _CONTROL_ESCAPES.get(char, f"\\u{ord(char):04x}")
            array = pc.replace_substring(array, char, escaped)
    return pc.binary_join_element_wise('"', array, '"', "")


def _json_values(array: pa.Array) -> pa.Array:
    """The JSON text of every value of a column, `null` for nulls."""
    kind = array.type
    if pa.types.is_boolean(kind):
        text = pc.if_else(array, "true", "false")
    elif pa.types.is_integer(kind) or pa.types.is_decimal(kind):
        text = pc.cast(array, pa.string())
    elif pa.types.is_floating(kind):
        text = pc.if_else(pc.is_finite(array), pc.cast(array, pa.string()), pa.scalar(None, pa.string()))
    elif pa.types.is_string(kind) or pa.types.is_large_string(kind):
        text = _json_string(pc.cast(array, pa.string()))
    elif pa.types.is_timestamp(kind) or pa.types.is_date(kind) or pa.types.is_time(kind):
        text = _json_string(pc.cast(_as_text(array), pa.string()))
    else:
        # Rare types (binary, lists, structs): one Python value at a time.
        import base64

        def encode(value):
            if isinstance(value, bytes):
                return json.dumps(base64.b64encode(value).decode())
            return json.dumps(value, ensure_ascii=False, default=str)

        text = pa.array([encode(v) for v in array.to_pylist()], pa.string())
    return pc.fill_null(text, "null")


# --- one writer per format ------------------------------------------------------------------


class _CsvWriter:
    def __init__(self, sink, schema: pa.Schema, spec: FileSpec):
        self.schema = _text_schema(schema)
        options = pa_csv.WriteOptions(
            include_header=spec.csv_header, delimiter=spec.csv_delimiter, quoting_style="needed"
        )
        self.writer = pa_csv.CSVWriter(sink, self.schema, write_options=options)

    def write(self, batch: pa.RecordBatch) -> None:
        self.writer.write_batch(_to_text_batch(batch, self.schema))

    def close(self) -> None:
        self.writer.close()


class _NdjsonWriter:
    def __init__(self, sink, schema: pa.Schema, spec: FileSpec):
        self.sink = sink
        self.keys = [
            ("{" if i == 0 else ",") + json.dumps(field.name, ensure_ascii=False) + ":"
            for i, field in enumerate(schema)
        ]

    def write(self, batch: pa.RecordBatch) -> None:
        if batch.num_rows == 0:
            return
        parts = []
        for key, column in zip(self.keys, batch.columns, strict=True):
            parts += [key, _json_values(column)]
        lines = pc.binary_join_element_wise(*parts, "}\n", "") if parts else pa.array(["{}\n"] * batch.num_rows)
        # The joined values are contiguous in the data buffer: write them in one go.
        _validity, offsets_buffer, data = lines.buffers()
        offsets = pa.Array.from_buffers(pa.int32(), len(lines) + 1, [None, offsets_buffer], offset=lines.offset)
        start, end = offsets[0].as_py(), offsets[-1].as_py()
        self.sink.write(memoryview(data)[start:end])

    def close(self) -> None:
        pass


class _ParquetWriter:
    def __init__(self, sink, schema: pa.Schema, spec: FileSpec):
        compression = "none" if spec.compression == "none" else spec.compression
        level = {"gzip": GZIP_LEVEL, "zstd": ZSTD_LEVEL}.get(spec.compression)
        self.writer = pq.ParquetWriter(sink, schema, compression=compression, compression_level=level)

    def write(self, batch: pa.RecordBatch) -> None:
        self.writer.write_batch(batch)

    def close(self) -> None:
        self.writer.close()


_WRITERS = {"csv": _CsvWriter, "ndjson": _NdjsonWriter, "parquet": _ParquetWriter}


class _PartFile:
    """One open part file: the raw file, gzip around it for text formats, the format writer."""

    def __init__(self, path: Path, schema: pa.Schema, spec: FileSpec):
        self.path = path
        self.rows = 0
        self.raw = open(path, "wb")
        self.gzip = None
        sink = self.raw
        if spec.compression == "gzip" and spec.file_format != "parquet":
            # mtime=0 and no file name: the same rows give the same bytes.
            self.gzip = gzip.GzipFile(filename="", mode="wb", fileobj=self.raw, compresslevel=GZIP_LEVEL, mtime=0)
            sink = self.gzip
        try:
            self.writer = _WRITERS[spec.file_format](sink, schema, spec)
        except Exception:
            self.abandon()
            raise

    def write(self, batch: pa.RecordBatch) -> None:
        self.writer.write(batch)
        self.rows += batch.num_rows

    def close(self) -> None:
        try:
            self.writer.close()
            if self.gzip is not None:
                self.gzip.close()
        finally:
            self.raw.close()

    def abandon(self) -> None:
        for closable in (self.gzip, self.raw):
            try:
                if closable is not None:
                    closable.close()
            except Exception:
                pass


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1024 * 1024):
            digest.update(chunk)
    return digest.hexdigest()


def write_files(
    batches: Iterable[pa.RecordBatch],
    schema: pa.Schema,
    spec: FileSpec,
    out_dir: Path,
    *,
    on_progress: Callable[[int], None] | None = None,
) -> list[WrittenFile]:
    """Write the batches into part files of at most `spec.rows_per_file` rows each.

    Always writes at least one file (an empty result still gets its header or schema).
    `on_progress(rows_so_far)` runs after every batch and may raise to stop the work;
    open files are closed either way, and the caller removes `out_dir`.
    """
    if spec.rows_per_file < 1:
        raise ValueError("rows_per_file must be at least 1")
    extension = file_extension(spec.file_format, spec.compression)
    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[WrittenFile] = []
    current: _PartFile | None = None
    total = 0

    def open_part() -> _PartFile:
        part = len(written) + 1
        return _PartFile(out_dir / f"{spec.name_stem}-{part}.{extension}", schema, spec)

    def close_part(part_file: _PartFile) -> None:
        part_file.close()
        path = part_file.path
        written.append(
            WrittenFile(len(written) + 1, path.name, path, part_file.rows, path.stat().st_size, _sha256(path))
        )

    try:
        for batch in batches:
            offset = 0
            while offset < batch.num_rows:
                if current is None:
                    current = open_part()
                piece = batch.slice(offset, spec.rows_per_file - current.rows)
                current.write(piece)
                offset += piece.num_rows
                if current.rows == spec.rows_per_file:
                    finished, current = current, None
                    close_part(finished)
            total += batch.num_rows
            if on_progress is not None:
                on_progress(total)
        if current is None and not written:
            current = open_part()
        if current is not None:
            finished, current = current, None
            close_part(finished)
    finally:
        if current is not None:
            current.abandon()
    return written
