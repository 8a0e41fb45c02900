"""Incremental windows: each run exports the rows with watermark < cursor <= high-water
mark, where the high-water mark is the cursor's largest value read when the run starts
(minus the export's safety lag, for timestamp cursors). The watermark moves to the
high-water mark only when the delivery fully succeeded (see `jobs.execute_run`).

Limits (docs/schedules.md): a row that becomes visible with a cursor value at or below
one already exported is never exported (a transaction that commits late with an older
id or timestamp, a row updated without moving its cursor). The safety lag leaves the
most recent rows, the ones most likely to have a late sibling, to the next run.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from exports.filters import parse_value
from exports.sources import SourceQueryFailed

CURSOR_TYPES = {"integer", "timestamp", "datetime", "date"}


@dataclass(frozen=True)
class Window:
    column: str
    low: str | None  # exclusive; None: from the beginning
    high: str | None  # inclusive; None: the table is empty

    def filters(self) -> list[dict]:
        if self.high is None:
            # Nothing to read: an always-false pair keeps the run (and its report) uniform.
            return [
                {"column": self.column, "operator": "is_empty"},
                {"column": self.column, "operator": "is_not_empty"},
            ]
        specs = [{"column": self.column, "operator": "lte", "value": self.high}]
        if self.low is not None:
            specs.insert(0, {"column": self.column, "operator": "gt", "value": self.low})
        return specs

    @property
    def next_watermark(self) -> str | None:
        return self.high if self.high is not None else self.low


def _typed(value: str, logical_type: str, column: str):
    parsed = parse_value(value, logical_type, column)
    if isinstance(parsed, datetime) and parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed


def window_for(export, reader_factory, now: datetime) -> Window:
    """Read the high-water mark and build the run's window from the export's watermark."""
    column_name = export.cursor_column
    column = export.dataset.column(column_name)
    if column is None or column["type"] not in CURSOR_TYPES:
        raise SourceQueryFailed(
            f"the cursor column {column_name!r} is missing from {export.dataset.qualified_name} or is not an "
            "integer, timestamp or date column; edit the export"
        )
    low = (export.watermark or {}).get("value")
    with reader_factory() as reader:
        high = reader.max_value(column)
    logical = column["type"]
    if high is not None and export.safety_lag_seconds and logical in {"timestamp", "datetime"}:
        limit = now - timedelta(seconds=export.safety_lag_seconds)
        if _typed(high, logical, column_name) > limit:
            high = limit.isoformat() if logical == "timestamp" else limit.replace(tzinfo=None).isoformat()
    if high is not None and low is not None and _typed(high, logical, column_name) <= _typed(low, logical, column_name):
        high = low  # nothing new: the window is empty, the watermark stays
    return Window(column_name, low, high)
