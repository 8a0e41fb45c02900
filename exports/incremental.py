"""Incremental windows that lose no row to a late commit.

Each run reads the cursor column's largest value when it starts, the high-water mark,
and delivers the rows above the watermark up to it. The watermark moves to the
high-water mark only when the delivery fully succeeded (see `jobs.execute_run`).

A row can become visible *below* a watermark: a transaction that took id 41 commits
after the one that took id 42 was exported, or a `now()` timestamp commits late. So each
run also re-reads a **lookback** below the watermark, from the previous run's *settled
mark*, and skips the rows it already delivered there: the export remembers the (key,
cursor) pairs of the rows it delivered above its settled mark (`IncrementalMemory`).

The settled mark is where no row can still appear:
- **By transactions.** The query that reads the high-water mark also reads the newest
  transaction running in the source's database (PostgreSQL's `pg_locks`). Once it and
  every older one have ended, every row at or below that mark is visible. A run waits a
  moment (EXPORT_SETTLE_SECONDS) for them before it reads, and settles at the newest
  high-water mark whose transactions have all ended: its own, or an earlier run's
  (`history`). SQLite has one writer at a time: its high-water mark is settled at once.
- **By time**, for timestamp and date cursors, whose values an application may take
  before it writes (`now()` is the transaction's start): EXPORT_LOOKBACK_SECONDS plus
  the age of the oldest transaction open on the source, below the high-water mark.
- **By ids**, for integer cursors: EXPORT_LOOKBACK_IDS more, for ids taken before the
  transaction that writes them (a sequence read ahead).
The lookback never reaches further back than EXPORT_LOOKBACK_MAX_SECONDS: a transaction
open for longer is the one remaining limit, and the run warns about it.

A dataset without a primary key (a view, a table without one) can't tell a late row from
a delivered one: it keeps the plain window, whose limits docs/schedules.md states.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pyarrow.compute as pc
from django.conf import settings

from exports.filters import parse_value
from exports.sources import SourceQueryFailed, TransactionHorizon, arrow_type

CURSOR_TYPES = {"integer", "timestamp", "datetime", "date"}
# Key columns the memory can hold and compare exactly.
KEY_TYPES = {"integer", "text", "timestamp", "datetime", "date", "decimal", "boolean"}
SEPARATOR = "\x1f"
HISTORY_LENGTH = 200


def _typed(value: str, logical_type: str, column: str):
    """A cursor's text as a comparable value: naive timestamps are taken as UTC."""
    parsed = parse_value(value, logical_type, column)
    if isinstance(parsed, datetime) and parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed


def _moment_text(value: datetime, like: str) -> str:
    """A moment as cursor text in the style of `like`, a mark the source gave: with its
    offset, or naive (in UTC) when the source gave naive text."""
    if datetime.fromisoformat(like.replace("Z", "+00:00")).tzinfo is None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return value.isoformat()


@dataclass(frozen=True)
class Window:
    column: str
    low: str | None  # exclusive: the watermark; None: from the beginning
    high: str | None  # inclusive; None: the table is empty
    # The lookback: the run reads from here (exclusive) rather than from `low`, and skips
    # the rows it remembers delivering. None: no lookback.
    lookback_from: str | None = None
    # Where the next run's lookback starts, and the primary key that tells rows apart.
    # Without a key the window is plain: nothing is remembered.
    settled: str | None = None
    key: tuple[str, ...] = ()
    cursor_type: str = ""
    history: list[dict] = field(default_factory=list)  # the memory's, this run's last
    warning: str = ""

    @property
    def read_from(self) -> str | None:
        return self.lookback_from if self.lookback_from is not None else self.low

    def filters(self) -> list[dict]:
        if self.high is None:
            # Nothing to read: an always-false pair keeps the run (and its report) uniform.
            return [
                {"column": self.column, "operator": "is_empty"},
                {"column": self.column, "operator": "is_not_empty"},
            ]
        specs = [{"column": self.column, "operator": "lte", "value": self.high}]
        if self.read_from is not None:
            specs.insert(0, {"column": self.column, "operator": "gt", "value": self.read_from})
        return specs

    @property
    def next_watermark(self) -> str | None:
        return self.high if self.high is not None else self.low

    @property
    def remembers(self) -> bool:
        """Whether the run skips remembered rows and keeps its own for the next one."""
        return bool(self.key) and self.settled is not None


def memory_applies(memory, export, key: tuple[str, ...], cursor_type: str) -> bool:
    """Whether an export's `IncrementalMemory` describes its current window: the same
    dataset, cursor and key, written under the watermark it has now."""
    watermark = (export.watermark or {}).get("value")
    return (
        memory is not None
        and watermark is not None
        and memory.dataset_id == export.dataset_id
        and memory.column == export.cursor_column
        and memory.cursor_type == cursor_type
        and memory.key_columns == list(key)
        and memory.watermark == watermark
    )


def _usable_key(key: tuple[str, ...], dataset) -> tuple[str, ...]:
    """The key, if the dataset lists every column of it with a type the memory compares
    exactly; otherwise none (the plain window)."""
    columns = [dataset.column(name) for name in key]
    if not key or any(column is None or column["type"] not in KEY_TYPES for column in columns):
        return ()
    return key


def window_for(export, reader_factory, now: datetime, memory=None) -> Window:
    """Read the high-water mark and what the source says of its open transactions, and
    build the run's window from the export's watermark and its memory (an
    `IncrementalMemory`, used only if `memory_applies`)."""
    column_name = export.cursor_column
    column = export.dataset.column(column_name)
    if column is None or column["type"] not in CURSOR_TYPES:
        raise SourceQueryFailed(
            f"the cursor column {column_name!r} is missing from {export.dataset.qualified_name} or is not an "
            "integer, timestamp or date column; edit the export"
        )
    logical = column["type"]
    low = (export.watermark or {}).get("value")

    def typed(text):
        return _typed(text, logical, column_name)

    with reader_factory() as reader:
        mark = reader.max_value(column)
        high = mark.value
        if high is not None and export.safety_lag_seconds and logical in {"timestamp", "datetime"}:
            limit = now - timedelta(seconds=export.safety_lag_seconds)
            if typed(high) > limit:
                high = limit.isoformat() if logical == "timestamp" else limit.replace(tzinfo=None).isoformat()
        if high is not None and low is not None and typed(high) <= typed(low):
            high = low  # nothing new above the watermark: it stays where it is
        key = _usable_key(tuple(reader.primary_key()), export.dataset)
        if not key or high is None:
            return Window(column_name, low, high)
        # Before the read: the transactions the mark could not see have a moment to end.
        oldest_xid = reader.wait_for_transactions(mark.blocking, settings.EXPORT_SETTLE_SECONDS)
        horizon = reader.transaction_horizon()

    usable = memory_applies(memory, export, key, logical)
    lookback_from = memory.settled if usable else None
    entry = {"clock": horizon.now.isoformat(), "high": mark.value, "blocking": mark.blocking}
    history = [*(memory.history if usable else []), entry]
    warnings: list[str] = []
    # Never below the last settled mark (rows there were final), and never below the
    # watermark without a memory to tell what was delivered above it.
    floor = lookback_from if lookback_from is not None else low
    candidate = _settled_by_transactions(history, oldest_xid, horizon.now, warnings)
    unsettled = candidate is None and floor is None
    if candidate is None:
        # Transactions older than any mark we know are still open: stay where we were,
        # or on a first run, rely on the margins below.
        candidate = floor if floor is not None else high
    candidate = min(candidate, high, key=typed)  # a safety lag holds `high` back
    if logical == "integer":
        settled = str(typed(candidate) - settings.EXPORT_LOOKBACK_IDS)
    else:
        settled = min(candidate, _settled_by_time(high, logical, column_name, horizon, warnings), key=typed)
    if floor is not None and typed(settled) < typed(floor):
        settled = floor
    if unsettled:
        warnings.append(
            f"transaction {oldest_xid} on the source, which this first run could not see, was still open after "
            f"{_duration(settings.EXPORT_SETTLE_SECONDS)}: rows it commits with {column_name} at or below "
            f"{settled} may not be exported"
        )
    if horizon.hidden_sessions and logical != "integer":
        warnings.append(
            f"{horizon.hidden_sessions} session(s) on the source hide their transactions from its user: grant it "
            "pg_read_all_stats so that runs see how old they are (until then the lookback covers "
            f"{_duration(settings.EXPORT_LOOKBACK_SECONDS)} for them)"
        )
    return Window(
        column_name,
        low,
        high,
        lookback_from,
        settled,
        key,
        logical,
        _trimmed(history, horizon.now),
        "; ".join(warnings),
    )


def _settled_by_transactions(history: list[dict], oldest_xid: int | None, now: datetime, warnings: list) -> str | None:
    """The newest high-water mark whose unseen transactions have all ended (None: none
    has yet). One held back longer than EXPORT_LOOKBACK_MAX_SECONDS is let go, with a warning."""
    if oldest_xid is None:
        return history[-1]["high"]  # writers commit in order: nothing is unseen
    settled = [entry for entry in history if entry["blocking"] is None or entry["blocking"] < oldest_xid]
    if settled:
        return settled[-1]["high"]
    limit = now - timedelta(seconds=settings.EXPORT_LOOKBACK_MAX_SECONDS)
    overdue = [entry for entry in history if datetime.fromisoformat(entry["clock"]) <= limit]
    if not overdue:
        return None
    warnings.append(
        f"a transaction open on the source for more than {_duration(settings.EXPORT_LOOKBACK_MAX_SECONDS)} "
        f"(transaction id {oldest_xid}) has held the lookback back that long: rows it commits at or below "
        f"{overdue[-1]['high']} will not be exported"
    )
    return overdue[-1]["high"]


def _settled_by_time(high: str, logical: str, column: str, horizon: TransactionHorizon, warnings: list) -> str:
    """For timestamp and date cursors: EXPORT_LOOKBACK_SECONDS plus the age of the
    source's oldest open transaction below the high-water mark (or the source's clock,
    if the mark is ahead of it)."""
    span = settings.EXPORT_LOOKBACK_SECONDS + horizon.oldest_age_seconds
    if span > settings.EXPORT_LOOKBACK_MAX_SECONDS and horizon.oldest_start is not None:
        span = settings.EXPORT_LOOKBACK_MAX_SECONDS
        warnings.append(
            f"a transaction open on the source since {horizon.oldest_start.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC "
            f"is older than the lookback ({_duration(span)}): rows it commits with {column} more than "
            f"{_duration(span)} old will not be exported"
        )
    value = _typed(high, logical, column)
    if logical == "date":
        start = min(value, horizon.now.date())
        return (start - timedelta(days=math.ceil(span / 86_400) + 1)).isoformat()
    return _moment_text(min(value, horizon.now) - timedelta(seconds=span), high)


def _trimmed(history: list[dict], now: datetime) -> list[dict]:
    """The history entries a later run may still settle at: those of the last
    EXPORT_LOOKBACK_MAX_SECONDS, and the newest one before."""
    limit = now - timedelta(seconds=settings.EXPORT_LOOKBACK_MAX_SECONDS)
    older = [n for n, entry in enumerate(history) if datetime.fromisoformat(entry["clock"]) <= limit]
    start = older[-1] if older else 0
    return history[start:][-HISTORY_LENGTH:]


def _duration(seconds: float) -> str:
    if seconds >= 7200:
        return f"{seconds / 3600:.1f} h"
    if seconds >= 120:
        return f"{seconds / 60:.0f} min"
    return f"{seconds:.0f} s"


# --- The rows a lookback re-reads -----------------------------------------------------------


def _as_text(array: pa.Array) -> pa.Array:
    """A column's values as text that tells them apart: escaped, so that the separator
    can't appear inside one, and nulls as their own mark."""
    text = pc.cast(array, pa.string())
    text = pc.replace_substring(text, "\\", "\\\\")
    text = pc.replace_substring(text, SEPARATOR, "\\s")
    return pc.fill_null(text, "\\N")


def key_array(batch: pa.RecordBatch | pa.Table, key: tuple[str, ...]) -> pa.Array:
    """One value per row that tells rows apart: the key column, or a composite key's text."""
    if len(key) == 1:
        column = batch.column(key[0])
        return column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    joined = pc.binary_join_element_wise(*[_as_text(batch.column(name)) for name in key], SEPARATOR)
    return joined.combine_chunks() if isinstance(joined, pa.ChunkedArray) else joined


def _identities(key: pa.Array, cursor: pa.Array) -> pa.Array:
    """A row as delivered: its key and its cursor value (an updated row is a new one)."""
    return pc.binary_join_element_wise(_as_text(key), _as_text(cursor), SEPARATOR)


def _scalar(text: str, logical: str, column: str) -> pa.Scalar:
    value = parse_value(text, logical, column)
    if logical == "timestamp" and isinstance(value, datetime):
        value = value.astimezone(UTC)
    return pa.scalar(value, arrow_type({"name": column, "type": logical}))


def dump_memory(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    options = pa.ipc.IpcWriteOptions(compression="zstd")
    with pa.ipc.new_stream(sink, table.schema, options=options) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


def load_memory(data: bytes) -> pa.Table:
    return pa.ipc.open_stream(pa.py_buffer(data)).read_all()


class Lookback:
    """Applied to every batch a run reads: drops the rows at or below the watermark that
    the export already delivered (the same key with the same cursor value), counts the
    others (late commits), and keeps what lies above the new settled mark for the next run."""

    def __init__(self, window: Window, memory_keys: bytes | None):
        self.window = window
        self.cursor = window.column
        self.watermark = _scalar(window.low, window.cursor_type, window.column) if window.low is not None else None
        self.settled = (
            _scalar(window.settled, window.cursor_type, window.column) if window.settled is not None else None
        )
        self.late_rows = 0
        self.delivered: pa.Array | None = None
        self.kept: list[pa.Table] = []
        if memory_keys is not None and window.lookback_from is not None:
            remembered = load_memory(memory_keys)
            if remembered.num_rows:
                cursor = remembered.column("cursor").combine_chunks()
                key = remembered.column("key").combine_chunks()
                self.delivered = _identities(key, cursor)
                self._keep(cursor, key)

    def _keep(self, cursor: pa.Array, key: pa.Array) -> None:
        if self.settled is None or not len(cursor):
            return
        recent = pc.fill_null(pc.greater(cursor, self.settled), False)
        if pc.any(recent).as_py():
            self.kept.append(pa.table({"cursor": cursor.filter(recent), "key": key.filter(recent)}))

    def __call__(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        key = key_array(batch, self.window.key)
        cursor = batch.column(self.cursor)
        if self.watermark is not None and batch.num_rows:
            # Above the watermark every row is new; at or below it, only those not delivered.
            below = pc.fill_null(pc.less_equal(cursor, self.watermark), False)
            if pc.any(below).as_py():
                seen = pa.array([False] * batch.num_rows)
                if self.delivered is not None:
                    seen = pc.and_(below, pc.is_in(_identities(key, cursor), value_set=self.delivered))
                keep = pc.invert(seen)
                self.late_rows += pc.sum(pc.and_(below, keep)).as_py() or 0
                batch, key, cursor = batch.filter(keep), key.filter(keep), cursor.filter(keep)
        self._keep(cursor, key)
        return batch

    def memory(self) -> tuple[bytes, int]:
        """The (cursor, key) pairs to remember, as stored bytes, and how many there are."""
        if self.kept:
            table = pa.concat_tables(self.kept, promote_options="permissive").combine_chunks()
        else:
            table = pa.table({"cursor": pa.array([], pa.null()), "key": pa.array([], pa.null())})
        return dump_memory(table), table.num_rows
