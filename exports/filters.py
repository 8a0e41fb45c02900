"""Structured filters: column / operator / value, validated against the dataset's columns
and compiled to parameterised SQL for each source dialect. Never raw SQL from users."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, TypeAlias

from django.core.exceptions import ValidationError

OPERATORS = {
    "eq": "equals",
    "neq": "does not equal",
    "in": "is one of",
    "contains": "contains",
    "starts_with": "starts with",
    "gt": "is greater than",
    "gte": "is greater than or equal to",
    "lt": "is less than",
    "lte": "is less than or equal to",
    "between": "is between",
    "is_empty": "is empty",
    "is_not_empty": "is not empty",
}
TEXT_ONLY = {"contains", "starts_with"}
NO_VALUE = {"is_empty", "is_not_empty"}
ORDERED = {"gt", "gte", "lt", "lte", "between"}
MAX_IN_VALUES = 1000
# What a typed value parses to, per logical type (text stays a str).
FilterValue: TypeAlias = int | float | Decimal | bool | datetime | date | str


@dataclass(frozen=True)
class Filter:
    column: str
    operator: str
    values: tuple  # parsed values: none, one, two (between) or many (in)
    logical_type: str


# An export has at most this many filters, in the page and in the API.
MAX_FILTERS = 50


def parse_moment(text: str) -> datetime:
    """An ISO 8601 date or date-time, "Z" for UTC included; ValueError if it isn't one."""
    return datetime.fromisoformat(text.strip().replace("Z", "+00:00"))


def parse_value(raw: str, logical_type: str, column: str) -> FilterValue:
    """Parse one filter value typed by a user into the column's type, or say why not."""
    text = raw.strip()
    try:
        if logical_type == "integer":
            return int(text)
        if logical_type == "float":
            number = float(text)
            if not math.isfinite(number):
                raise ValueError
            return number
        if logical_type == "decimal":
            value = Decimal(text)
            if not value.is_finite():
                raise ValueError
            return value
        if logical_type == "boolean":
            lowered = text.lower()
            if lowered in {"true", "yes", "1"}:
                return True
            if lowered in {"false", "no", "0"}:
                return False
            raise ValueError
        if logical_type in {"timestamp", "datetime"}:
            moment = parse_moment(text)
            if logical_type == "timestamp" and moment.tzinfo is None:
                moment = moment.replace(tzinfo=UTC)
            return moment
        if logical_type == "date":
            return date.fromisoformat(text)
    except (ValueError, InvalidOperation):
        expected = {
            "integer": "a whole number",
            "float": "a number",
            "decimal": "a decimal number such as 12.50",
            "boolean": "true or false",
            "timestamp": "a date or date-time such as 2026-01-31 or 2026-01-31T09:30:00Z",
            "datetime": "a date or date-time such as 2026-01-31 or 2026-01-31T09:30:00",
            "date": "a date such as 2026-01-31",
        }[logical_type]
        raise ValidationError(f"{raw!r} is not {expected}, as column {column!r} needs") from None
    return raw


def operator_refusal(operator: str, logical_type: str, column: str) -> str | None:
    """Why `operator` can't filter a column of this type, or None: the one rule the
    validation and the wizard's filter builder (`operators_for`) both follow."""
    if operator in TEXT_ONLY and logical_type != "text":
        return f"{OPERATORS[operator]!r} only applies to text columns; {column!r} is {logical_type}"
    if operator in ORDERED and logical_type in {"boolean", "binary"}:
        return f"{OPERATORS[operator]!r} does not apply to {logical_type} column {column!r}"
    return None


def operators_for(logical_type: str) -> dict[str, str]:
    """The operators a column of this type takes, with their labels, in OPERATORS' order."""
    return {op: label for op, label in OPERATORS.items() if operator_refusal(op, logical_type, "") is None}


def validate_filter(spec: dict, columns: dict[str, dict]) -> Filter:
    """Check one stored filter ({column, operator, value, value_to}) against the columns."""
    column = spec.get("column") or ""
    operator = spec.get("operator") or ""
    if column not in columns:
        raise ValidationError(f"column {column!r} does not exist in this dataset")
    if operator not in OPERATORS:
        raise ValidationError(f"unknown operator {operator!r}")
    logical_type = columns[column]["type"]
    refusal = operator_refusal(operator, logical_type, column)
    if refusal:
        raise ValidationError(refusal)
    if operator in NO_VALUE:
        return Filter(column, operator, (), logical_type)
    raw = str(spec.get("value") or "")
    if "\x00" in raw or "\x00" in str(spec.get("value_to") or ""):
        raise ValidationError(f"a value for {column!r} contains a NUL character, which no database column holds")
    if not raw.strip():
        raise ValidationError(f"a value is needed for {column!r} {OPERATORS[operator]}")
    if operator == "in":
        items = [item for item in re.split(r"[,\n]", raw) if item.strip()]
        if len(items) > MAX_IN_VALUES:
            raise ValidationError(f"at most {MAX_IN_VALUES} values for 'is one of', got {len(items)}")
        values = tuple(parse_value(item, logical_type, column) for item in items)
        if logical_type == "text":
            values = tuple(item.strip() for item in items)
        return Filter(column, operator, values, logical_type)
    # Any: both bounds parse to the column's one type, so they compare, which the union can't say.
    value: Any = parse_value(raw, logical_type, column) if logical_type != "text" else raw
    if operator == "between":
        raw_to = str(spec.get("value_to") or "")
        if not raw_to.strip():
            raise ValidationError(f"'is between' needs a second value for {column!r}")
        value_to: Any = parse_value(raw_to, logical_type, column) if logical_type != "text" else raw_to
        if value_to < value:
            raise ValidationError(f"the range for {column!r} is empty: {raw_to!r} comes before {raw!r}")
        return Filter(column, operator, (value, value_to), logical_type)
    return Filter(column, operator, (value,), logical_type)


def validate_filters(specs: list[dict], columns: list[dict]) -> list[Filter]:
    """Validate every filter; one ValidationError listing each bad filter by its position."""
    by_name = {column["name"]: column for column in columns}
    parsed, errors = [], []
    for position, spec in enumerate(specs, start=1):
        try:
            parsed.append(validate_filter(spec, by_name))
        except ValidationError as exc:
            errors.append(ValidationError(f"Filter {position}: {exc.messages[0]}"))
    if errors:
        raise ValidationError(errors)
    return parsed


def quote_identifier(name: str, dialect: str = "") -> str:
    """A column or table name as SQL: "name", or `name` for MySQL, whose double quotes
    make a string unless the session is in ANSI_QUOTES mode."""
    if dialect == "mysql":
        return "`" + name.replace("`", "``") + "`"
    return '"' + name.replace('"', '""') + '"'


def mysql_text(text: str) -> str:
    """A MySQL string literal of `text` that reads the same in every sql_mode (with or
    without NO_BACKSLASH_ESCAPES, ANSI_QUOTES): its UTF-8 bytes in hex, as utf8mb4."""
    return "_utf8mb4 X'" + text.encode().hex() + "'" if text else "''"


def _mysql_moment(value: datetime | date) -> str:
    """A MySQL date or date-time literal; an aware moment in UTC, the readers' session time zone."""
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            value = value.astimezone(UTC).replace(tzinfo=None)
        return f"'{value:%Y-%m-%d %H:%M:%S.%f}'"
    return f"'{value.isoformat()}'"


def _like_pattern(value: str, *, prefix_only: bool, escape: str = "\\") -> str:
    escaped = value.replace(escape, escape * 2).replace("%", f"{escape}%").replace("_", f"{escape}_")
    return f"{escaped}%" if prefix_only else f"%{escaped}%"


# MySQL's LIKE escape character: one that needs no escaping in a literal, whatever the sql_mode.
_MYSQL_LIKE_ESCAPE = "!"


def pg_literal(text: str) -> str:
    """A PostgreSQL string literal of `text` that reads the same whatever the server's
    `standard_conforming_strings` (an E'' string: backslashes and quotes doubled)."""
    if "\x00" in text:
        raise ValueError("PostgreSQL text can't hold a NUL character")  # validate_filter refuses it first
    return "E'" + text.replace("\\", "\\\\").replace("'", "''") + "'"


class _Params:
    """Collects bound parameters and hands out placeholders in the dialect's style.

    PostgreSQL gets its values inline, as quoted literals: ADBC streams a query through
    COPY only when it has no parameters, and runs one that has them through libpq's
    prepared statements, which hold the whole result in the worker's memory."""

    def __init__(self, dialect: str):
        self.dialect = dialect
        self.values: list = []

    def add(self, value, logical_type: str) -> str:
        if self.dialect == "mysql":
            # Inline too: exact numbers, dates in UTC, text as bytes compared exactly (as
            # PostgreSQL does), not by a case- and accent-blind collation.
            if logical_type in {"integer", "decimal"}:
                return format(Decimal(value), "f")
            if logical_type == "float":
                return repr(float(value))
            if logical_type == "boolean":
                return "1" if value else "0"
            if logical_type in {"timestamp", "datetime", "date"}:
                return _mysql_moment(value)
            # Bytes, compared with the column's UTF-8 bytes (`_column_expression`): exact, no
            # collation's padding, case or accent folding.
            return f"X'{_as_text(value).encode().hex()}'"
        if self.dialect == "duckdb":
            if logical_type in {"integer", "decimal"}:
                # An exact numeric literal (validated as a number): DuckDB types it as
                # wide as it needs, where a cast to DOUBLE would lose digits past 2^53.
                return format(Decimal(value), "f")
            # Inline too: a standard string literal (no backslash escapes) that DuckDB casts.
            cast = {
                "float": "DOUBLE",
                "boolean": "BOOLEAN",
                "timestamp": "TIMESTAMPTZ",
                "datetime": "TIMESTAMP",
                "date": "DATE",
            }.get(logical_type, "VARCHAR")
            return "'" + _as_text(value).replace("'", "''") + f"'::{cast}"
        if self.dialect == "postgresql":
            # A text literal that PostgreSQL casts to the column's type.
            cast = {
                "integer": "bigint",
                "float": "double precision",
                "decimal": "numeric",
                "boolean": "boolean",
                "timestamp": "timestamptz",
                "datetime": "timestamp",
                "date": "date",
            }.get(logical_type, "text")
            return f"{pg_literal(_as_text(value))}::{cast}"
        if logical_type in {"timestamp", "datetime"}:
            self.values.append(value.astimezone(UTC).isoformat() if value.tzinfo else value.isoformat())
            return "strftime('%Y-%m-%dT%H:%M:%f', ?)"
        if logical_type == "decimal":
            self.values.append(float(value))
            return "CAST(? AS REAL)"
        if logical_type == "boolean":
            self.values.append(int(value))
            return "?"
        self.values.append(value.isoformat() if isinstance(value, date) else value)
        return "?"


def _as_text(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    return str(value)


def _raw_column(f: Filter, dialect: str) -> str:
    column = quote_identifier(f.column, dialect)
    if dialect == "duckdb" and f.logical_type == "text":
        # Text to us may be a UUID, JSON or an enum there: compared as the text we deliver.
        return f"CAST({column} AS VARCHAR)"
    if dialect == "mysql" and f.logical_type == "text":
        return f"CONVERT({column} USING utf8mb4)"  # a TIME, UUID, JSON or wide DECIMAL: as delivered
    return column


def _column_expression(f: Filter, dialect: str) -> str:
    column = _raw_column(f, dialect)
    if dialect == "sqlite" and f.logical_type in {"timestamp", "datetime"}:
        return f"strftime('%Y-%m-%dT%H:%M:%f', {column})"
    if dialect == "mysql" and f.logical_type == "text":
        return f"CAST({column} AS BINARY)"
    return column


def compile_where(filters: list[Filter], dialect: str) -> tuple[str, list]:
    """Return (" WHERE ...", params) for the filters, all combined with AND."""
    if not filters:
        return "", []
    params = _Params(dialect)
    like = "ILIKE" if dialect in {"postgresql", "duckdb"} else "LIKE"
    clauses = []
    for f in filters:
        column = _column_expression(f, dialect)
        raw_column = _raw_column(f, dialect)
        if f.operator == "is_empty":
            empty_text = f" OR {raw_column} = ''" if f.logical_type == "text" else ""
            clauses.append(f"({raw_column} IS NULL{empty_text})")
        elif f.operator == "is_not_empty":
            not_empty_text = f" AND {raw_column} <> ''" if f.logical_type == "text" else ""
            clauses.append(f"({raw_column} IS NOT NULL{not_empty_text})")
        elif f.operator in TEXT_ONLY and dialect == "mysql":
            # Case-blind, as PostgreSQL's ILIKE, whatever the column's collation.
            pattern = _like_pattern(f.values[0], prefix_only=f.operator == "starts_with", escape=_MYSQL_LIKE_ESCAPE)
            # Case-blind but not accent-blind: under utf8mb4_bin, not the connection's collation.
            clauses.append(
                f"LOWER({raw_column}) COLLATE utf8mb4_bin LIKE LOWER({mysql_text(pattern)}) "
                f"ESCAPE '{_MYSQL_LIKE_ESCAPE}'"
            )
        elif f.operator in TEXT_ONLY:
            pattern = _like_pattern(f.values[0], prefix_only=f.operator == "starts_with")
            # E'' on PostgreSQL: the same escape character whatever standard_conforming_strings.
            escape = "E'\\\\'" if dialect == "postgresql" else "'\\'"
            clauses.append(f"{raw_column} {like} {params.add(pattern, 'text')} ESCAPE {escape}")
        elif f.operator == "in":
            placeholders = ", ".join(params.add(value, f.logical_type) for value in f.values)
            clauses.append(f"{column} IN ({placeholders})")
        elif f.operator == "between":
            low = params.add(f.values[0], f.logical_type)
            high = params.add(f.values[1], f.logical_type)
            clauses.append(f"{column} BETWEEN {low} AND {high}")
        elif f.operator == "neq":
            # A marketer asking for "not X" expects the rows with no value too.
            clauses.append(f"({column} <> {params.add(f.values[0], f.logical_type)} OR {raw_column} IS NULL)")
        else:
            sql_operator = {"eq": "=", "gt": ">", "gte": ">=", "lt": "<", "lte": "<="}[f.operator]
            clauses.append(f"{column} {sql_operator} {params.add(f.values[0], f.logical_type)}")
    return " WHERE " + " AND ".join(clauses), params.values
