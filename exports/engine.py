"""Writing part files: a stream of Arrow record batches in, CSV / NDJSON / Parquet files out.

Memory is bounded by one batch: batches are written as they come, sliced (zero-copy)
where a part file fills up, and never gathered. Text formats follow one contract
(docs/file-contract.md): RFC 3339 UTC timestamps with microseconds, plain decimals at
their scale, `true`/`false`. No Django here: the engine is a pure function of its input.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import os
import queue
import threading
from collections import deque
from collections.abc import Callable, Generator, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Protocol, TypeVar

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from exports.layout import file_extension

# Measured on the benchmark (bench/RESULTS.md): the system allocator returns freed
# batches to the OS promptly, where mimalloc keeps them, and it was faster too. An
# explicit ARROW_DEFAULT_MEMORY_POOL still wins.
if "ARROW_DEFAULT_MEMORY_POOL" not in os.environ:
    pa.set_memory_pool(pa.system_memory_pool())

# pyarrow and Python default to gzip level 9: against 6, several times slower for files
# under 1% smaller (measured: docs/libraries.md). Inside Parquet, 6. For CSV and
# NDJSON, where deflate is most of the work, 3: 2.4x the speed of 6 for files 5-6%
# larger (bench/RESULTS.md).
GZIP_LEVEL = 6
TEXT_GZIP_LEVEL = 3
ZSTD_LEVEL = 3


@dataclass(frozen=True)
class FileSpec:
    file_format: str  # "csv" | "ndjson" | "parquet"
    compression: str  # "none" | "gzip" | "snappy" | "zstd" (the last two: Parquet only)
    rows_per_file: int
    name_stem: str  # files are f"{name_stem}-{part}.{extension}"
    csv_delimiter: str = ","
    csv_header: bool = True
    # CSV: a text cell that starts with = + - @, a tab or a carriage return gets a ' first.
    spreadsheet_safe: bool = False


# A run writes at most this many part files: a million one-row files is a mistake, not
# an export (the File step refuses it up front when it can tell).
MAX_PARTS = 10_000


class TooManyFiles(Exception):
    pass


@dataclass
class WrittenFile:
    part: int
    name: str
    path: Path
    rows: int
    size_bytes: int
    sha256: str


# --- the text contract ----------------------------------------------------------------------


_DAY_US = 86_400_000_000


def _padded(array: pa.Array, width: int) -> pa.Array:
    return pc.utf8_lpad(pc.cast(array, pa.string()), width, "0")


def _format_timestamps(array: pa.Array) -> pa.Array:
    """RFC 3339 text with microseconds: `2026-01-31T09:30:00.123456Z` (no Z without a zone).

    Built from integer arithmetic and a date cast: the same text as pc.strftime, about
    four times faster, and text formats spend most of their time on timestamps.
    """
    if array.type.unit != "us":
        array = pc.cast(array, pa.timestamp("us", tz=array.type.tz))
    micros = array.cast(pa.int64())
    days = pc.divide(micros, _DAY_US)  # truncates toward zero: fix up times before 1970
    rest = pc.subtract(micros, pc.multiply(days, _DAY_US))
    before_epoch = pc.less(rest, 0)
    days = pc.if_else(before_epoch, pc.subtract(days, 1), days)
    rest = pc.if_else(before_epoch, pc.add(rest, _DAY_US), rest)
    date = pc.cast(pc.cast(pc.cast(days, pa.int32()), pa.date32()), pa.string())
    seconds = pc.divide(rest, 1_000_000)
    fraction = pc.subtract(rest, pc.multiply(seconds, 1_000_000))
    hours = pc.divide(seconds, 3600)
    minutes = pc.divide(pc.subtract(seconds, pc.multiply(hours, 3600)), 60)
    seconds = pc.subtract(seconds, pc.add(pc.multiply(hours, 3600), pc.multiply(minutes, 60)))
    zone = "Z" if array.type.tz else ""
    return pc.binary_join_element_wise(
        date,
        "T",
        _padded(hours, 2),
        ":",
        _padded(minutes, 2),
        ":",
        _padded(seconds, 2),
        ".",
        _padded(fraction, 6),
        zone,
        "",
    )


def _base64(array: pa.Array) -> pa.Array:
    """Binary values as base64 text (a rare type: one value at a time)."""
    return pa.array([None if v is None else base64.b64encode(v).decode() for v in array.to_pylist()], pa.string())


def _as_text(array: pa.Array) -> pa.Array:
    """Timestamps as RFC 3339 (UTC with Z when the type has a zone), binary as base64;
    other types unchanged."""
    if pa.types.is_timestamp(array.type):
        return _format_timestamps(array)
    if pa.types.is_binary(array.type) or pa.types.is_large_binary(array.type):
        return _base64(array)
    return array


def _becomes_text(kind: pa.DataType) -> bool:
    return pa.types.is_timestamp(kind) or pa.types.is_binary(kind) or pa.types.is_large_binary(kind)


def _text_schema(schema: pa.Schema) -> pa.Schema:
    return pa.schema([pa.field(f.name, pa.string()) if _becomes_text(f.type) else f for f in schema])


def _to_text_batch(batch: pa.RecordBatch, schema: pa.Schema) -> pa.RecordBatch:
    return pa.RecordBatch.from_arrays([_as_text(column) for column in batch.columns], schema=schema)


_CONTROL_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t", "\b": "\\b", "\f": "\\f"}
_CONTROL_CHARS = "".join(chr(code) for code in range(0x20))


def _json_string(array: pa.Array) -> pa.Array:
    """JSON string literals for a string array, escaped with vectorised kernels; one scan
    when nothing needs escaping (most columns: the replacements copy every string)."""
    if pc.any(pc.match_substring_regex(array, '[\\x00-\\x1f"\\\\]')).as_py():
        array = pc.replace_substring(array, "\\", "\\\\")
        array = pc.replace_substring(array, '"', '\\"')
        if pc.any(pc.match_substring_regex(array, "[\\x00-\\x1f]")).as_py():
            for char in _CONTROL_CHARS:
                escaped = _CONTROL_ESCAPES.get(char, f"\\u{ord(char):04x}")
                array = pc.replace_substring(array, char, escaped)
    return _quoted(array)


def _quoted(array: pa.Array) -> pa.Array:
    """Text that needs no escaping (our timestamps, dates, base64) as JSON strings."""
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
        text = _quoted(pc.cast(_as_text(array), pa.string()))  # digits, `-:.TZ`
    elif pa.types.is_binary(kind) or pa.types.is_large_binary(kind):
        text = _quoted(_base64(array))  # the base64 alphabet
    else:
        # Rare types (lists, structs): one Python value at a time.
        def encode(value):
            return json.dumps(value, ensure_ascii=False, default=str)

        text = pa.array([encode(v) for v in array.to_pylist()], pa.string())
    return pc.fill_null(text, "null")


# --- one writer per format ------------------------------------------------------------------

TEXT_PIECE_ROWS = 16_384


def _pieces(batch: pa.RecordBatch) -> Iterator[pa.RecordBatch]:
    """Zero-copy slices: text versions of a whole large batch would cost several times
    its size in memory at once."""
    for offset in range(0, batch.num_rows, TEXT_PIECE_ROWS):
        yield batch.slice(offset, TEXT_PIECE_ROWS)


FORMULA_CHARACTERS = "=+-@\t\r"  # a spreadsheet runs a cell starting so as a formula
FORMULA_START = "^[" + FORMULA_CHARACTERS.replace("-", "\\-") + "]"


def defuse_formulas(array: pa.Array) -> pa.Array:
    """Text cells a spreadsheet would run as a formula, with a ' first (OWASP's advice):
    quoting doesn't stop `=HYPERLINK(...)`, the apostrophe does."""
    risky = pc.fill_null(pc.match_substring_regex(array, FORMULA_START), False)
    if not pc.any(risky).as_py():
        return array
    return pc.if_else(risky, pc.binary_join_element_wise("'", array, ""), array)


def _is_text(kind: pa.DataType) -> bool:
    if pa.types.is_dictionary(kind):
        kind = kind.value_type
    return pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_string_view(kind)


class _CsvWriter:
    def __init__(self, sink, schema: pa.Schema, spec: FileSpec):
        self.schema = _text_schema(schema)
        self.safe = spec.spreadsheet_safe
        # Only the source's text columns: timestamps become text too, but never start so.
        self.text = {field.name for field in schema if _is_text(field.type)}
        options = pa_csv.WriteOptions(
            include_header=spec.csv_header, delimiter=spec.csv_delimiter, quoting_style="needed"
        )
        self.writer = pa_csv.CSVWriter(sink, self.schema, write_options=options)

    def write(self, batch: pa.RecordBatch) -> None:
        for piece in _pieces(batch):
            text = _to_text_batch(piece, self.schema)
            if self.safe:
                text = pa.RecordBatch.from_arrays(
                    [
                        defuse_formulas(column)
                        if pa.types.is_string(field.type) and field.name in self.text
                        else column
                        for column, field in zip(text.columns, self.schema, strict=True)
                    ],
                    schema=self.schema,
                )
            self.writer.write_batch(text)

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
        for piece in _pieces(batch):
            self._write(piece)

    def _write(self, batch: pa.RecordBatch) -> None:
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


class _FormatWriter(Protocol):
    def write(self, batch: pa.RecordBatch) -> None: ...

    def close(self) -> None: ...


_WRITERS: dict[str, Callable[[Any, pa.Schema, FileSpec], _FormatWriter]] = {
    "csv": _CsvWriter,
    "ndjson": _NdjsonWriter,
    "parquet": _ParquetWriter,
}


class ParallelGzipFile:
    """A write-only gzip stream that compresses on several threads.

    Bytes are cut into fixed-size chunks; each chunk becomes one gzip member, compressed
    by zlib (which releases the GIL) on a pool while the caller produces the next ones.
    Concatenated members are a valid gzip file (RFC 1952) that every gzip reader takes,
    and fixed chunk boundaries keep the output deterministic.
    """

    def __init__(
        self, raw: BinaryIO, *, level: int = TEXT_GZIP_LEVEL, chunk_size: int = 4 * 1024 * 1024, threads: int = 2
    ):
        self.raw = raw
        self.level = level
        self.chunk_size = chunk_size
        self.buffer = bytearray()
        self.pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="gzip")
        self.pending: deque = deque()
        self.max_pending = threads * 2  # bounds memory: a few chunks in flight
        self.closed = False

    def writable(self) -> bool:
        return True

    def write(self, data: bytes | memoryview | pa.Buffer) -> int:
        self.buffer += data
        while len(self.buffer) >= self.chunk_size:
            self._submit(bytes(self.buffer[: self.chunk_size]))
            del self.buffer[: self.chunk_size]
        return len(data)

    def _submit(self, chunk: bytes) -> None:
        self.pending.append(self.pool.submit(gzip.compress, chunk, self.level, mtime=0))
        while len(self.pending) > self.max_pending:
            self.raw.write(self.pending.popleft().result())

    def flush(self) -> None:
        pass

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        try:
            if self.buffer or (not self.pending and self.raw.tell() == 0):
                self._submit(bytes(self.buffer))  # an empty stream is still one valid member
                self.buffer.clear()
            while self.pending:
                self.raw.write(self.pending.popleft().result())
        finally:
            self.pool.shutdown(wait=True, cancel_futures=True)


_T = TypeVar("_T")


def read_ahead(items: Iterable[_T], depth: int = 2) -> Generator[_T, None, None]:
    """Iterate `items` on a thread, `depth` items ahead of the caller.

    The source read (driver I/O and type casts, which release the GIL) then overlaps
    with writing and compressing the previous batches. Close the generator (or let it
    finish) before closing what `items` reads from: closing stops and joins the thread.
    """
    slots: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()
    done = object()

    def put(item) -> bool:
        while not stop.is_set():
            try:
                slots.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not put(item):
                    return
            put(done)
        except BaseException as exc:  # noqa: BLE001 - not swallowed: handed to the consumer, raised there
            put(_Failure(exc))

    worker = threading.Thread(target=produce, name="read-ahead", daemon=True)
    worker.start()
    try:
        while True:
            item = slots.get()
            if item is done:
                return
            if isinstance(item, _Failure):
                raise item.exc
            yield item
    finally:
        stop.set()
        worker.join()


@dataclass
class _Failure:
    exc: BaseException


class _PartFile:
    """One open part file: the raw file, gzip around it for text formats, the format writer."""

    def __init__(self, path: Path, schema: pa.Schema, spec: FileSpec):
        self.path = path
        self.rows = 0
        self.raw = open(path, "wb")
        self.gzip: ParallelGzipFile | None = None
        sink: BinaryIO | ParallelGzipFile = self.raw
        if spec.compression == "gzip" and spec.file_format != "parquet":
            self.gzip = ParallelGzipFile(self.raw)
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
            except Exception:  # noqa: BLE001 - the file is being thrown away after an error: keep that error
                pass


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1024 * 1024):
            digest.update(chunk)
    return digest.hexdigest()


class _HashingFile:
    """A file that hashes what is written to it: no second read for the SHA-256."""

    def __init__(self, path: Path):
        self.raw = open(path, "wb")
        self.digest = hashlib.sha256()

    def write(self, data) -> int:
        self.digest.update(data)
        return self.raw.write(data)

    def tell(self) -> int:
        return self.raw.tell()

    def close(self) -> None:
        self.raw.close()


def csv_header(names: list[str], delimiter: str) -> bytes:
    """The header line as pyarrow's writer makes it: every name quoted."""
    return (delimiter.join('"' + name.replace('"', '""') + '"' for name in names) + "\n").encode()


def write_copied_csv(
    chunks: Iterable[bytes],
    names: list[str],
    spec: FileSpec,
    out_dir: Path,
    *,
    rows: Callable[[], int | None],
    on_progress: Callable[[int], None] | None = None,
) -> WrittenFile:
    """One CSV part file from text the source wrote in our contract (a PostgreSQL COPY):
    the header, then the chunks as they come, gzip-compressed if asked. `rows()` gives
    the exact row count once the chunks are over; progress counts lines meanwhile (a
    text value's own line breaks count too, so it may run ahead)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{spec.name_stem}-1.{file_extension(spec.file_format, spec.compression)}"
    raw = _HashingFile(path)
    sink: _HashingFile | ParallelGzipFile = raw
    try:
        if spec.compression == "gzip":
            sink = ParallelGzipFile(raw)  # type: ignore[arg-type]
        if spec.csv_header:
            sink.write(csv_header(names, spec.csv_delimiter))
        lines = 0
        for chunk in chunks:
            sink.write(chunk)
            lines += chunk.count(b"\n")
            if on_progress is not None:
                on_progress(lines)
        sink.close()
    except BaseException:
        if isinstance(sink, ParallelGzipFile):
            sink.pool.shutdown(wait=True, cancel_futures=True)
        raise
    finally:
        raw.close()
    count = rows()
    if count is None:
        raise ValueError("the source did not say how many rows it wrote")
    return WrittenFile(1, path.name, path, count, path.stat().st_size, raw.digest.hexdigest())


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
        if part > MAX_PARTS:
            raise TooManyFiles(
                f"the export would write more than {MAX_PARTS:,} files of {spec.rows_per_file:,} rows: "
                "raise its rows per file"
            )
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
