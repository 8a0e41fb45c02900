"""Source databases: discover their datasets, and read a dataset as streamed Arrow batches.

Both SQLite and PostgreSQL sources are read through ADBC, which hands out Arrow record
batches straight from the driver. Every column is mapped to a *logical type* at
introspection time; the reader casts what the driver returns to that type, so every
writer sees the same Arrow schema whatever the source engine.
"""

from __future__ import annotations

import ctypes
import dataclasses
import re
import sqlite3
import time
from abc import ABC, abstractmethod
from collections.abc import Generator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit, urlunsplit

import pyarrow as pa
import pyarrow.compute as pc
from django.conf import settings

from exports.engine import FORMULA_CHARACTERS
from exports.filters import Filter, compile_where, mysql_text, quote_identifier
from exportsite import outbound

if TYPE_CHECKING:
    from adbc_driver_manager.dbapi import Connection

    from exports.models import Dataset

LOGICAL_TYPES = ("integer", "float", "decimal", "text", "boolean", "timestamp", "datetime", "date", "binary")
# SQLite keeps milliseconds in its date functions; every timestamp is normalised to UTC.
_SQLITE_TS_FORMAT = "%Y-%m-%dT%H:%M:%fZ"
PG_BATCH_BYTES = 8 * 1024 * 1024
# Our own sessions on a source carry this name, so that an export reading for a long
# time is not taken for a writer's open transaction (see `transaction_horizon`).
APPLICATION_NAME = "exportsite"


class SourceError(Exception):
    code = "SOURCE_QUERY_FAILED"


class SourceUnavailable(SourceError):
    code = "SOURCE_UNAVAILABLE"


class SourceQueryFailed(SourceError):
    code = "SOURCE_QUERY_FAILED"


class SchemaChanged(SourceError):
    """A column the export uses is gone or changed type (exports/schema_watch.py)."""

    code = "SCHEMA_CHANGED"


@dataclass
class DiscoveredDataset:
    schema_name: str
    name: str
    kind: str  # "table" | "view"
    columns: list[dict]
    estimated_rows: int | None
    error: str = ""  # set when the table or view exists but can't be read
    primary_key: list[str] = dataclasses.field(default_factory=list)


@dataclass(frozen=True)
class HighWaterMark:
    value: str | None  # the cursor's largest value; None: the table is empty
    # The newest transaction running when it was read: once it and every older one have
    # ended, no row can appear at or below `value` (from a sequence, `clock_timestamp()`).
    # None: none was running, or an engine whose writers commit in order.
    blocking: int | None = None


@dataclass(frozen=True)
class TransactionHorizon:
    """What a source says about the transactions open on it when a run starts."""

    now: datetime  # the source's clock, aware
    oldest_start: datetime | None  # when the oldest open transaction (not ours) began; None: none seen
    hidden_sessions: int = 0  # sessions of other roles whose transactions the user can't see

    @property
    def oldest_age_seconds(self) -> float:
        if self.oldest_start is None:
            return 0.0
        return max(0.0, (self.now - self.oldest_start).total_seconds())


def _aware(moment: datetime | None) -> datetime | None:
    """A naive moment from a source as UTC, the time zone its sessions are in."""
    return moment.replace(tzinfo=UTC) if moment is not None and moment.tzinfo is None else moment


def arrow_type(column: dict) -> pa.DataType:
    return {
        "integer": pa.int64(),
        "float": pa.float64(),
        "text": pa.string(),
        "boolean": pa.bool_(),
        "timestamp": pa.timestamp("us", tz="UTC"),
        "datetime": pa.timestamp("us"),
        "date": pa.date32(),
        "binary": pa.binary(),
    }.get(column["type"]) or pa.decimal128(column["precision"], column["scale"])


def arrow_schema(columns: list[dict]) -> pa.Schema:
    return pa.schema([pa.field(column["name"], arrow_type(column)) for column in columns])


# --- SQLite ---------------------------------------------------------------------------


def sqlite_path(url: str) -> Path:
    # sqlite:///absolute/path and sqlite:////absolute/path both name /absolute/path.
    return Path("/" + url[len("sqlite:") :].lstrip("/"))


def _sqlite_logical_type(declared: str) -> dict:
    upper = declared.upper()
    match = re.search(r"(DECIMAL|NUMERIC)\s*\(\s*(\d+)\s*(?:,\s*(\d+))?\s*\)", upper)
    if match:
        precision = min(int(match.group(2)), 38)
        return {"type": "decimal", "precision": precision, "scale": min(int(match.group(3) or 0), precision)}
    if "BOOL" in upper:
        return {"type": "boolean"}
    if "INT" in upper:
        return {"type": "integer"}
    if any(word in upper for word in ("REAL", "FLOA", "DOUB", "NUMERIC", "DECIMAL")):
        return {"type": "float"}
    if "TIMESTAMP" in upper or "DATETIME" in upper:
        return {"type": "timestamp"}
    if "DATE" in upper:
        return {"type": "date"}
    if "BLOB" in upper:
        return {"type": "binary"}
    return {"type": "text"}


def _sqlite_connect_readonly(path: Path) -> sqlite3.Connection:
    if not path.is_file():
        raise SourceUnavailable(f"the SQLite database file {path} does not exist")
    try:
        return sqlite3.connect(f"file:{quote(str(path))}?mode=ro", uri=True)
    except sqlite3.Error as exc:
        raise SourceUnavailable(f"cannot open the SQLite database {path}: {exc}") from None


def _discover_sqlite(url: str) -> list[DiscoveredDataset]:
    connection = _sqlite_connect_readonly(sqlite_path(url))
    try:
        found = []
        tables = connection.execute(
            "SELECT name, type FROM sqlite_master WHERE type IN ('table', 'view') "
            "AND name NOT LIKE 'sqlite_%' ORDER BY name"
        ).fetchall()
        for name, kind in tables:
            try:
                columns = []
                key: list[tuple[int, str]] = []
                for _cid, column_name, declared, notnull, _default, pk in connection.execute(
                    f"PRAGMA table_info({quote_identifier(name)})"
                ):
                    column = {"name": column_name, "source_type": declared or "", "nullable": not (notnull or pk)}
                    column.update(_sqlite_logical_type(declared or ""))
                    columns.append(column)
                    if pk:
                        key.append((pk, column_name))
                if kind == "table":
                    _mark_indexed(columns, _sqlite_indexed(connection, name, columns, key))
                rows = connection.execute(f"SELECT count(*) FROM {quote_identifier(name)}").fetchone()[0]
            except sqlite3.Error as exc:
                # A view over a dropped table: report it, keep discovering the rest.
                found.append(DiscoveredDataset("", name, kind, [], None, error=str(exc)))
                continue
            found.append(DiscoveredDataset("", name, kind, columns, rows, primary_key=[n for _, n in sorted(key)]))
        return found
    except sqlite3.Error as exc:
        raise SourceQueryFailed(f"cannot read the SQLite catalogue: {exc}") from None
    finally:
        connection.close()


def _mark_indexed(columns: list[dict], indexed: set[str]) -> None:
    """Each column says whether an index leads with it: where an incremental window's
    range is read from (a view's columns say nothing: its tables' indexes may serve)."""
    for column in columns:
        column["indexed"] = column["name"] in indexed


def _sqlite_indexed(connection, table: str, columns: list[dict], key: list[tuple[int, str]]) -> set[str]:
    indexed = set()
    if len(key) == 1 and any(c["name"] == key[0][1] and c["source_type"].upper() == "INTEGER" for c in columns):
        indexed.add(key[0][1])  # INTEGER PRIMARY KEY: the rowid itself
    for _seq, index, _unique, _origin, partial in connection.execute(f"PRAGMA index_list({quote_identifier(table)})"):
        if partial:
            continue
        first = connection.execute(f"PRAGMA index_info({quote_identifier(index)})").fetchone()
        if first is not None and first[2] is not None:
            indexed.add(first[2])
    # Timestamps are compared as strftime(column) (exports/filters.py): no index serves that.
    return indexed - {c["name"] for c in columns if c["type"] in {"timestamp", "datetime"}}


def _sql_literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _sqlite_select_expression(column: dict) -> tuple[str, str]:
    """(expression, sentinel) for one column.

    ADBC's SQLite driver takes a column's Arrow type from the first batch it sees, so a
    column that is all NULL there, or mixes INTEGER and REAL (as decimals do), breaks the
    stream later. Every column is therefore cast to one storage class, and the query
    starts with a sentinel row of non-NULL values of those classes that the reader drops.
    """
    name = quote_identifier(column["name"])
    kind = column["type"]
    if kind in {"integer", "boolean"}:
        return f"CAST({name} AS INTEGER)", "0"
    if kind == "float":
        return f"CAST({name} AS REAL)", "0.0"
    if kind == "decimal":
        # printf rounds to the scale, so the text always fits decimal128(p, s).
        return f"CASE WHEN {name} IS NULL THEN NULL ELSE printf('%.{column['scale']}f', {name}) END", "'0'"
    if kind == "timestamp":
        # Normalise any SQLite date-time text (offsets included) to UTC; a value SQLite
        # can't read stays as it is so the cast fails loudly rather than turning NULL.
        return (
            f"CASE WHEN {name} IS NULL THEN NULL ELSE "
            f"coalesce(strftime('{_SQLITE_TS_FORMAT}', {name}), CAST({name} AS TEXT)) END",
            "'1970-01-01T00:00:00.000Z'",
        )
    if kind == "binary":
        return f"CAST({name} AS BLOB)", "X''"
    return f"CAST({name} AS TEXT)", "''"


def _sqlite_query(source: str, columns: list[dict], filters: list[Filter]) -> tuple[str, list]:
    pairs = [_sqlite_select_expression(column) for column in columns]
    sentinel = ", ".join(
        f"{sentinel} AS {quote_identifier(column['name'])}"
        for column, (_, sentinel) in zip(columns, pairs, strict=True)
    )
    selected = ", ".join(expression for expression, _ in pairs)
    where, params = compile_where(filters, "sqlite")
    sql = f'SELECT 0 AS "__sentinel__", {sentinel} UNION ALL SELECT 1, {selected} FROM {source}{where}'
    return sql, params


# --- PostgreSQL -----------------------------------------------------------------------

_PG_TYPES = {
    "smallint": "integer",
    "integer": "integer",
    "bigint": "integer",
    "real": "float",
    "double precision": "float",
    "boolean": "boolean",
    "timestamp with time zone": "timestamp",
    "timestamp without time zone": "datetime",
    "date": "date",
    "bytea": "binary",
}


_PG_PRIMARY_KEYS = """
    SELECT n.nspname, c.relname, a.attname
    FROM pg_index i
    JOIN pg_class c ON c.oid = i.indrelid
    JOIN pg_namespace n ON n.oid = c.relnamespace
    JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)
    WHERE i.indisprimary AND {where}
    ORDER BY n.nspname, c.relname, array_position(i.indkey::int2[], a.attnum)
"""


# The transactions running in this database (pg_locks is readable by every user, unlike
# other roles' rows of pg_stat_activity), with the snapshot that gives their epoch:
# "xmin:xmax:xip|xid,xid,...".
_PG_RUNNING = """(
    SELECT pg_current_snapshot()::text || '|' || coalesce(string_agg(xid, ','), '') FROM (
        SELECT l.transactionid::text AS xid FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
        WHERE l.locktype = 'transactionid' AND l.mode = 'ExclusiveLock' AND l.granted
          AND a.datname = current_database() AND l.pid <> pg_backend_pid()
        UNION ALL
        SELECT transaction::text FROM pg_prepared_xacts WHERE database = current_database()
    ) running
)"""


def running_transactions(text: str | None) -> tuple[list[int], int] | None:
    """The 64-bit ids of the transactions in `_PG_RUNNING`'s text, and the next id to be
    assigned then (None where the engine has no such thing)."""
    if text is None:
        return None
    snapshot, _, xids = text.partition("|")
    next_xid = int(snapshot.split(":")[1])
    epoch = next_xid & ~0xFFFFFFFF
    running = []
    for xid in filter(None, xids.split(",")):
        # A 32-bit id belongs to the epoch that puts it nearest the snapshot's.
        full = min((epoch + int(xid) + shift for shift in (-(2**32), 0, 2**32)), key=lambda v: abs(v - next_xid))
        running.append(full)
    return running, next_xid


def _pg_pinned(url: str) -> str:
    """`url` with libpq's `hostaddr` set to its host's address, checked by the outbound
    policy (exportsite/outbound.py): libpq connects to that very address and doesn't
    resolve the name again (it still checks a TLS certificate against the name). A
    Unix socket on this machine is not the network, and is left as it is."""
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    host = query.get("host") or parts.hostname or ""
    given = query.get("hostaddr", "")
    if "," in host or "," in parts.netloc.rpartition("@")[2] or "," in given:
        raise SourceUnavailable("the source URL names several hosts: give one")
    try:
        if given:
            # libpq connects to a given hostaddr over TCP, whatever the host says.
            outbound.check_address(given, host)
            return url
        if not host or host.startswith("/"):
            return url
        try:
            port = int(query.get("port") or parts.port or 5432)
        except ValueError:
            raise SourceUnavailable("the source URL's port is not a number") from None
        address = outbound.resolve(outbound.canonical(host), port)[0][4][0]
    except ValueError:
        raise SourceUnavailable(f"the source URL's hostaddr {given!r} is not an IP address") from None
    except outbound.HostNotFound as exc:
        raise SourceUnavailable(f"cannot connect to the source database: {exc.message}") from None
    except outbound.AddressNotAllowed as exc:
        raise SourceUnavailable(
            f"cannot connect to the source database: {exc.message}; "
            "an administrator can open its network with EXPORTSITE_ALLOWED_NETWORKS"
        ) from None
    # Added to the query as it is: the rest of the URL (a password with a +) stays untouched.
    return urlunsplit(
        parts._replace(query=f"{parts.query}&hostaddr={address}" if parts.query else f"hostaddr={address}")
    )


def _pg_connect_for_catalogue(url: str):
    import psycopg  # noqa: PLC0415 - an engine's driver loads only when a source of that engine is read

    try:
        return psycopg.connect(_pg_pinned(url), connect_timeout=10, application_name=APPLICATION_NAME)
    except psycopg.Error as exc:
        raise SourceUnavailable(f"cannot connect to the PostgreSQL database: {_first_line(exc)}") from None


def _discover_postgresql(url: str) -> list[DiscoveredDataset]:
    import psycopg  # noqa: PLC0415 - an engine's driver loads only when a source of that engine is read

    with _pg_connect_for_catalogue(url) as connection:
        try:
            tables = connection.execute(
                """
                SELECT t.table_schema, t.table_name, t.table_type, c.reltuples::bigint
                FROM information_schema.tables t
                JOIN pg_namespace n ON n.nspname = t.table_schema
                JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = t.table_name
                WHERE t.table_schema NOT IN ('pg_catalog', 'information_schema')
                ORDER BY t.table_schema, t.table_name
                """
            ).fetchall()
            columns = connection.execute(
                """
                SELECT table_schema, table_name, column_name, data_type, is_nullable,
                       numeric_precision, numeric_scale
                FROM information_schema.columns
                WHERE table_schema NOT IN ('pg_catalog', 'information_schema')
                ORDER BY table_schema, table_name, ordinal_position
                """
            ).fetchall()
            keys = connection.execute(
                _PG_PRIMARY_KEYS.format(where="n.nspname NOT IN ('pg_catalog', 'information_schema')")
            ).fetchall()
            indexes = connection.execute(_PG_INDEXED).fetchall()
        except psycopg.Error as exc:
            raise SourceQueryFailed(f"cannot read the PostgreSQL catalogue: {_first_line(exc)}") from None
    by_table: dict[tuple[str, str], list[dict]] = {}
    for schema, table, name, data_type, nullable, precision, scale in columns:
        column = {"name": name, "source_type": data_type, "nullable": nullable == "YES"}
        if data_type == "numeric" and precision is not None:
            column.update(type="decimal", precision=min(precision, 38), scale=scale or 0)
        else:
            column["type"] = _PG_TYPES.get(data_type, "text")
        by_table.setdefault((schema, table), []).append(column)
    primary_keys: dict[tuple[str, str], list[str]] = {}
    for schema, table, name in keys:
        primary_keys.setdefault((schema, table), []).append(name)
    indexed: dict[tuple[str, str], set[str]] = {}
    for schema, table, name in indexes:
        indexed.setdefault((schema, table), set()).add(name)
    for schema, table, table_type, _reltuples in tables:
        if table_type != "VIEW":
            _mark_indexed(by_table.get((schema, table), []), indexed.get((schema, table), set()))
    return [
        DiscoveredDataset(
            schema,
            table,
            "view" if table_type == "VIEW" else "table",
            by_table.get((schema, table), []),
            reltuples if table_type != "VIEW" and reltuples >= 0 else None,
            primary_key=primary_keys.get((schema, table), []),
        )
        for schema, table, table_type, reltuples in tables
    ]


# The columns that lead a valid, non-partial B-tree or BRIN index: a range on them is
# read through the index.
_PG_INDEXED = """
    SELECT n.nspname, c.relname, a.attname
    FROM pg_index i
    JOIN pg_class c ON c.oid = i.indrelid
    JOIN pg_namespace n ON n.oid = c.relnamespace
    JOIN pg_class ic ON ic.oid = i.indexrelid
    JOIN pg_am am ON am.oid = ic.relam
    JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = i.indkey[0]
    WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')
      AND i.indisvalid AND i.indpred IS NULL AND am.amname IN ('btree', 'brin')
"""

# How pg_stats' histogram (an anyarray) reads back, by the column's logical type.
_PG_HISTOGRAM_CASTS = {"integer": "bigint", "timestamp": "timestamptz", "datetime": "timestamp", "date": "date"}


def _pg_select_expression(column: dict) -> str:
    name = quote_identifier(column["name"])
    if column["type"] == "text" and column.get("source_type") not in {"text", "character varying", "character"}:
        # uuid, json, enums, intervals, unbounded numeric...: their text form.
        return f"{name}::text AS {name}"
    return name


COPY_CHUNK_BYTES = 1024 * 1024
_NO_COPY_FORM = "exportsite: no COPY form"


class CopyRefused(Exception):
    """The source's COPY met a value it would not write as our contract does."""


_PG_COPY_TEXT_TYPES = {"text", "character varying", "character"}


def _refused_unless(condition: str, name: str, expression: str) -> str:
    """`expression`, or a failed cast naming `_NO_COPY_FORM` for a value whose text COPY
    would not write as the Arrow path does (the run then takes the Arrow path). It is
    the column's own text that fails to cast, so the planner can't fold it ahead."""
    return f"CASE WHEN {condition} THEN ('{_NO_COPY_FORM} ' || {name}::text)::int::text ELSE {expression} END"


def _pg_copy_expression(column: dict) -> tuple[str, bool] | None:
    """How COPY writes a column as our CSV contract does: (expression, quoted), or None.
    Values with no such form (infinite or BC dates and timestamps, a numeric NaN) make
    the COPY fail with `CopyRefused`."""
    name = quote_identifier(column["name"])
    kind = column["type"]
    if kind == "text":
        return (name if column.get("source_type") in _PG_COPY_TEXT_TYPES else f"{name}::text"), True
    if kind == "integer":
        return name, False
    if kind == "decimal" and column.get("source_type") == "numeric" and column.get("precision", 39) < 38:
        # Printed at its scale, as Arrow's decimal is; a declared precision holds no infinity.
        return _refused_unless(f"{name} = 'NaN'", name, f"{name}::text"), False
    if kind == "boolean":
        return f"CASE WHEN {name} THEN 'true' WHEN NOT {name} THEN 'false' END", False
    odd = f"NOT isfinite({name}) OR {name} < '0001-01-01'"
    if kind == "date":
        return _refused_unless(odd, name, f"to_char({name}, 'YYYY-MM-DD')"), False
    if kind == "timestamp":
        text = f"to_char({name} AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')"
        return _refused_unless(f"NOT isfinite({name}) OR {name} < '0001-01-01 00:00:00+00'", name, text), True
    if kind == "datetime":
        return _refused_unless(odd, name, f"to_char({name}, 'YYYY-MM-DD\"T\"HH24:MI:SS.US')"), True
    return None


def _pg_adbc_uri(url: str, *, custom_query: bool = False) -> str:
    """The URL libpq gets through ADBC: the postgresql:// scheme and our application
    name. A custom dataset's reads (staff's own SQL) also run in read-only transactions
    and under EXPORT_CUSTOM_QUERY_TIMEOUT, set as libpq startup `options` (a PgBouncer in
    front of the source must let them through: `ignore_startup_parameters` must not
    drop `options`). A table's reads are our own SELECTs and need neither."""

    uri = "postgresql://" + url.split("://", 1)[1] if url.startswith("postgres://") else url
    parts = urlsplit(uri)
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    query.setdefault("application_name", APPLICATION_NAME)
    if custom_query:
        options = [
            query.get("options", ""),
            "-c default_transaction_read_only=on",
            f"-c statement_timeout={settings.EXPORT_CUSTOM_QUERY_TIMEOUT * 1000}",
        ]
        query["options"] = " ".join(filter(None, options))
    return urlunsplit(parts._replace(query=urlencode(query, quote_via=quote)))


# --- DuckDB -----------------------------------------------------------------------------
#
# A DuckDB database file, read-only, through DuckDB's own Arrow stream, with no access
# to anything but the file. Its types map to the logical ones; those Arrow or our files
# can't carry as they are are cast in the query: unsigned 64-bit to an exact decimal,
# second/milli/nanosecond timestamps to microseconds, HUGEINT, UUID, JSON, enums,
# intervals, times, lists and structs to their text.

_DUCKDB_TYPES = {
    "TINYINT": "integer",
    "SMALLINT": "integer",
    "INTEGER": "integer",
    "BIGINT": "integer",
    "UTINYINT": "integer",
    "USMALLINT": "integer",
    "UINTEGER": "integer",
    "FLOAT": "float",
    "DOUBLE": "float",
    "BOOLEAN": "boolean",
    "VARCHAR": "text",
    "DATE": "date",
    "TIMESTAMP WITH TIME ZONE": "timestamp",
    "TIMESTAMP": "datetime",
    "TIMESTAMP_S": "datetime",
    "TIMESTAMP_MS": "datetime",
    "TIMESTAMP_NS": "datetime",
    "BLOB": "binary",
}
# Wider than int64: an exact decimal (UBIGINT's 20 digits); HUGEINT's 39 digits are more
# than a decimal holds, so they are text (exact too).
_DUCKDB_WIDE_INTEGERS = {"UBIGINT": 20}
# Read as microsecond timestamps, the file contract's.
_DUCKDB_OTHER_TIMESTAMPS = {"TIMESTAMP_S", "TIMESTAMP_MS", "TIMESTAMP_NS"}


def duckdb_path(url: str) -> Path:
    # duckdb:///absolute/path.duckdb
    return Path("/" + url[len("duckdb:") :].lstrip("/"))


def _duckdb_logical_type(data_type: str, precision: int | None, scale: int | None) -> dict:
    if data_type.startswith("DECIMAL") and precision is not None:
        return {"type": "decimal", "precision": min(precision, 38), "scale": scale or 0}
    if data_type in _DUCKDB_WIDE_INTEGERS:
        return {"type": "decimal", "precision": _DUCKDB_WIDE_INTEGERS[data_type], "scale": 0}
    return {"type": _DUCKDB_TYPES.get(data_type, "text")}


def _duckdb_connect(url: str):
    import duckdb  # noqa: PLC0415 - an engine's driver loads only when a source of that engine is read

    path = duckdb_path(url)
    if not path.is_file():
        raise SourceUnavailable(f"the DuckDB database file {path} does not exist")
    # DuckDB caches the file's blocks in memory up to its limit (80% of RAM by default):
    # bounded, 5M and 20M rows stream at a flat 250 MB (docs/sources.md); one thread outruns any writer.
    # Nothing but the file itself: a view stored in it can't read other files
    # (`read_text('/etc/...')`), reach the network or install an extension to do so.
    config: dict[str, str | bool | int | float | list[str]] = {
        "memory_limit": str(settings.DUCKDB_MEMORY_LIMIT),
        "threads": 1,
        "enable_external_access": False,
        "autoinstall_known_extensions": False,
        "autoload_known_extensions": False,
        "lock_configuration": True,
    }
    try:
        return duckdb.connect(str(path), read_only=True, config=config)
    except duckdb.Error as exc:
        raise SourceUnavailable(f"cannot open the DuckDB database: {_first_line(exc)}") from None


def _discover_duckdb(url: str) -> list[DiscoveredDataset]:
    import duckdb  # noqa: PLC0415 - an engine's driver loads only when a source of that engine is read

    connection = _duckdb_connect(url)
    try:
        tables = connection.execute(
            """
            SELECT t.table_schema, t.table_name, t.table_type, d.estimated_size
            FROM information_schema.tables t
            LEFT JOIN duckdb_tables() d ON d.schema_name = t.table_schema AND d.table_name = t.table_name
                AND d.database_name = t.table_catalog
            WHERE t.table_catalog = current_database() AND t.table_schema NOT IN ('information_schema', 'pg_catalog')
            ORDER BY t.table_schema, t.table_name
            """
        ).fetchall()
        columns = connection.execute(
            """
            SELECT table_schema, table_name, column_name, data_type, is_nullable, numeric_precision, numeric_scale
            FROM information_schema.columns
            WHERE table_catalog = current_database()
            ORDER BY table_schema, table_name, ordinal_position
            """
        ).fetchall()
        keys = connection.execute(
            """
            SELECT schema_name, table_name, constraint_column_names FROM duckdb_constraints()
            WHERE constraint_type = 'PRIMARY KEY' AND database_name = current_database()
            """
        ).fetchall()
    except duckdb.Error as exc:
        raise SourceQueryFailed(f"cannot read the DuckDB catalogue: {_first_line(exc)}") from None
    finally:
        connection.close()
    by_table: dict[tuple[str, str], list[dict]] = {}
    for schema, table, name, data_type, nullable, precision, scale in columns:
        column = {"name": name, "source_type": data_type, "nullable": nullable == "YES"}
        column.update(_duckdb_logical_type(data_type, precision, scale))
        by_table.setdefault((schema, table), []).append(column)
    primary_keys = {(schema, table): list(names) for schema, table, names in keys}
    return [
        DiscoveredDataset(
            "" if schema == "main" else schema,
            table,
            "view" if table_type == "VIEW" else "table",
            by_table.get((schema, table), []),
            estimated if table_type != "VIEW" else None,
            primary_key=primary_keys.get((schema, table), []),
        )
        for schema, table, table_type, estimated in tables
    ]


def _duckdb_select_expression(column: dict) -> str:
    name = quote_identifier(column["name"])
    source_type = column.get("source_type", "")
    if column["type"] == "text" and source_type != "VARCHAR":
        return f"CAST({name} AS VARCHAR) AS {name}"
    if source_type in _DUCKDB_WIDE_INTEGERS:
        return f"CAST({name} AS DECIMAL({column['precision']}, 0)) AS {name}"
    if source_type in _DUCKDB_OTHER_TIMESTAMPS:
        return f"CAST({name} AS TIMESTAMP) AS {name}"
    return name


def _duckdb_string(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


# --- MySQL and MariaDB --------------------------------------------------------------------
#
# mysql://user:password@host:3306/database (or mariadb://), the tables and views of that
# one database. The rows stream through connectorx's Arrow stream, which reads the
# server's binary protocol in Rust: as fast as the `mysql` client and flat in memory
# (bench/RESULTS.md). Small queries (the catalogue, a high-water mark, the transactions
# running) go through PyMySQL. Both sessions are in UTC, so TIMESTAMP values arrive as
# UTC and DATETIME values as they were stored.
#
# What connectorx can't hold as it is is cast in the query: a DECIMAL past its 28 digits
# (or 10 of scale) is read as text and cast exactly here; TIME (up to 838 hours), UUID,
# INET, JSON and wider DECIMALs are text; BIGINT UNSIGNED an exact decimal. A zero date
# ('0000-00-00') can't be read: the run fails naming the column and the row.

MYSQL_SCHEMES = ("mysql://", "mariadb://")
# InnoDB's transaction ids are 6 bytes: this is above every id it hands out, and the
# "next id" when no transaction is running (as PostgreSQL's snapshot gives one).
_INNODB_NO_TRANSACTION = 2**48
_MYSQL_SESSION = "SET time_zone = '+00:00'"
_MYSQL_INTEGERS = {"tinyint", "smallint", "mediumint", "int", "integer", "bigint", "year"}
_MYSQL_TEXT = {"char", "varchar", "tinytext", "text", "mediumtext", "longtext", "enum", "set"}
_MYSQL_BINARY = {"binary", "varbinary", "tinyblob", "blob", "mediumblob", "longblob"}
_MYSQL_SPATIAL = {
    "geometry", "point", "linestring", "polygon", "multipoint", "multilinestring", "multipolygon",
    "geometrycollection",
}  # fmt: skip
# connectorx reads DECIMAL at scale 10 into rust_decimal's 96 bits (28 digits): 18 digits
# before the point and 10 after at most; wider ones are read as text, and cast exactly here.
_CONNECTORX_DECIMAL = (18, 10)


def mysql_url_parts(url: str) -> dict:
    """Host, port, user, password, database and sslmode of a mysql:// URL."""
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    try:
        port = parts.port or 3306
    except ValueError:
        raise SourceUnavailable("the source URL's port is not a number") from None
    return {
        "host": parts.hostname or "",
        "port": port,
        "user": unquote(parts.username or ""),
        "password": unquote(parts.password or ""),
        "database": unquote(parts.path.lstrip("/")),
        "sslmode": query.get("sslmode", ""),
    }


def _mysql_address(url: str) -> tuple[dict, str]:
    """The URL's parts and the address to connect to, checked by the outbound policy:
    both drivers connect to that very address, not to whatever the name resolves to next
    (so sslmode=verify-full, whose certificate check needs the name, is refused: a name
    resolved again by the driver could lead elsewhere)."""
    given = mysql_url_parts(url)
    if given["sslmode"] == "verify-full":
        raise SourceUnavailable(
            "sslmode=verify-full is not available for MySQL sources: use verify-ca (the certificate is checked "
            "against the trusted authorities, the connection goes to the address the policy checked)"
        )
    if not given["host"] or not given["database"]:
        raise SourceUnavailable("the source URL needs a host and a database: mysql://user:password@host:3306/database")
    try:
        addresses = outbound.resolve(outbound.canonical(given["host"]), given["port"])
    except outbound.HostNotFound as exc:
        raise SourceUnavailable(f"cannot connect to the source database: {exc.message}") from None
    except outbound.AddressNotAllowed as exc:
        raise SourceUnavailable(
            f"cannot connect to the source database: {exc.message}; "
            "an administrator can open its network with EXPORTSITE_ALLOWED_NETWORKS"
        ) from None
    address = addresses[0][4][0]
    return given, address


def _pymysql_ssl(sslmode: str) -> dict | None:
    import ssl  # noqa: PLC0415 - only for a source that asks for TLS

    if sslmode in {"", "disable", "allow", "prefer"}:
        return None
    context = ssl.create_default_context()
    context.check_hostname = False  # connected by address; verify-full is refused (`_mysql_address`)
    if sslmode == "require":
        context.verify_mode = ssl.CERT_NONE
    return {"ssl": context}


def mysql_connect(
    url: str, *, timeout: int = 10, read_timeout: int | None = None, raw_errors: bool = False, conversions=None
):
    """A PyMySQL connection for small queries: autocommit, read-only work, UTC. A driver
    error is a SourceUnavailable, or with `raw_errors` PyMySQL's own (Test connection
    tells bad credentials from the rest by its number). No read timeout by default: a
    reader's queries may scan a large table (the zero-date search)."""
    import pymysql  # noqa: PLC0415 - an engine's driver loads only when a source of that engine is read

    given, address = _mysql_address(url)
    try:
        return pymysql.connect(
            host=address,
            port=given["port"],
            user=given["user"],
            password=given["password"],
            database=given["database"],
            charset="utf8mb4",
            autocommit=True,
            connect_timeout=timeout,
            read_timeout=read_timeout,
            init_command=_MYSQL_SESSION,
            program_name=APPLICATION_NAME,
            **({"conv": conversions} if conversions is not None else {}),
            **(_pymysql_ssl(given["sslmode"]) or {}),
        )
    except pymysql.Error as exc:
        if raw_errors:
            raise
        raise SourceUnavailable(f"cannot connect to the MySQL database: {_first_line(exc)}") from None


def _connectorx_url(url: str) -> str:
    given, address = _mysql_address(url)
    credentials = quote(given["user"], safe="")
    if given["password"]:
        credentials += ":" + quote(given["password"], safe="")
    host = f"[{address}]" if ":" in address else address
    tls = {
        "require": "require_ssl=true&verify_ca=false&verify_identity=false",
        "verify-ca": "require_ssl=true&verify_identity=false",
    }.get(given["sslmode"], "")
    base = f"mysql://{credentials}@{host}:{given['port']}/{quote(given['database'], safe='')}"
    return f"{base}?{tls}" if tls else base


def _mysql_logical_type(data_type: str, column_type: str, precision: int | None, scale: int | None) -> dict:
    unsigned = "unsigned" in column_type
    if column_type.startswith("tinyint(1)") and not unsigned:
        return {"type": "boolean"}  # BOOL, as MySQL spells it
    if data_type == "bigint" and unsigned:
        return {"type": "decimal", "precision": 20, "scale": 0}
    if data_type in _MYSQL_INTEGERS:
        return {"type": "integer"}
    if data_type == "bit":
        width = int(precision or 1)
        if width == 1:
            return {"type": "boolean"}
        return {"type": "integer"} if width < 64 else {"type": "decimal", "precision": 20, "scale": 0}
    if data_type in {"decimal", "numeric"} and precision is not None and precision <= 38:
        return {"type": "decimal", "precision": precision, "scale": scale or 0}
    if data_type in {"float", "double", "real"}:
        return {"type": "float"}
    if data_type in _MYSQL_BINARY:
        return {"type": "binary"}
    if data_type in {"date", "datetime", "timestamp"}:
        return {"type": {"date": "date", "datetime": "datetime", "timestamp": "timestamp"}[data_type]}
    return {"type": "text"}  # text and enums; TIME, JSON, UUID, INET, spatial and wider DECIMALs as text


def _mysql_select_expression(column: dict) -> str:
    name = quote_identifier(column["name"], "mysql")
    source_type = column.get("source_type", "")
    data_type = source_type.split("(")[0].split()[0] if source_type else ""
    if data_type == "bit":
        return f"CAST({name} AS UNSIGNED) AS {name}"
    if data_type in _MYSQL_SPATIAL:
        return f"ST_AsText({name}) AS {name}"
    if column["type"] == "decimal" and data_type in {"decimal", "numeric"}:
        digits, scale = _CONNECTORX_DECIMAL
        fits = column["precision"] - column["scale"] <= digits and column["scale"] <= scale
        return name if fits else f"CAST({name} AS CHAR) AS {name}"
    if column["type"] == "text" and data_type not in _MYSQL_TEXT:
        return f"CAST({name} AS CHAR) AS {name}"
    return name


def _discover_mysql(url: str) -> list[DiscoveredDataset]:
    import pymysql  # noqa: PLC0415 - an engine's driver loads only when a source of that engine is read

    connection = mysql_connect(url)
    try:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT TABLE_NAME, TABLE_TYPE, TABLE_ROWS FROM information_schema.TABLES "
                "WHERE TABLE_SCHEMA = DATABASE() ORDER BY TABLE_NAME"
            )
            tables = cursor.fetchall()
            cursor.execute(
                "SELECT TABLE_NAME, COLUMN_NAME, DATA_TYPE, COLUMN_TYPE, IS_NULLABLE, NUMERIC_PRECISION, NUMERIC_SCALE "
                "FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() ORDER BY TABLE_NAME, ORDINAL_POSITION"
            )
            columns = cursor.fetchall()
            cursor.execute(_MYSQL_PRIMARY_KEYS + " ORDER BY TABLE_NAME, ORDINAL_POSITION")
            keys = cursor.fetchall()
            cursor.execute(
                "SELECT TABLE_NAME, COLUMN_NAME FROM information_schema.STATISTICS "
                "WHERE TABLE_SCHEMA = DATABASE() AND SEQ_IN_INDEX = 1 AND INDEX_TYPE = 'BTREE'"
            )
            indexes = cursor.fetchall()
    except pymysql.Error as exc:
        raise SourceQueryFailed(f"cannot read the MySQL catalogue: {_first_line(exc)}") from None
    finally:
        connection.close()
    by_table: dict[str, list[dict]] = {}
    for table, name, data_type, column_type, nullable, precision, scale in columns:
        column = {"name": name, "source_type": column_type, "nullable": nullable == "YES"}
        column.update(_mysql_logical_type(data_type.lower(), column_type.lower(), precision, scale))
        by_table.setdefault(table, []).append(column)
    primary_keys: dict[str, list[str]] = {}
    for table, name in keys:
        primary_keys.setdefault(table, []).append(name)
    indexed: dict[str, set[str]] = {}
    for table, name in indexes:
        indexed.setdefault(table, set()).add(name)
    for table, table_type, _estimated in tables:
        if table_type != "VIEW":
            _mark_indexed(by_table.get(table, []), indexed.get(table, set()))
    return [
        DiscoveredDataset(
            "",
            table,
            "view" if table_type == "VIEW" else "table",
            by_table.get(table, []),
            None if table_type == "VIEW" or estimated is None else int(estimated),
            primary_key=primary_keys.get(table, []),
        )
        for table, table_type, estimated in tables
    ]


_MYSQL_PRIMARY_KEYS = (
    "SELECT TABLE_NAME, COLUMN_NAME FROM information_schema.KEY_COLUMN_USAGE "
    "WHERE TABLE_SCHEMA = DATABASE() AND CONSTRAINT_NAME = 'PRIMARY'"
)
# The transactions that may still commit rows: InnoDB's, other than ours and read-only
# ones (an autocommit SELECT, another export's read). An id is given at the first write
# (0 until then); `trx_started` is when the transaction began, its NOW() or before.
# Needs the PROCESS privilege (docs/sources.md).
_MYSQL_TRANSACTIONS = (
    "FROM information_schema.INNODB_TRX WHERE trx_mysql_thread_id <> CONNECTION_ID() AND trx_is_read_only = 0"
)


def _mysql_running(text: str | None) -> tuple[list[int], int] | None:
    """The (oldest, newest) ids of `_MYSQL_RUNNING`'s text, and the "next id"."""
    if text is None:
        return None
    return [int(xid) for xid in text.split(",") if xid], _INNODB_NO_TRANSACTION


# Numbers (MySQL 5.7 has them as text); MySQL 8 shows one that has not written yet as an
# address above 2^48, MariaDB as 0: neither has an id yet.
_MYSQL_RUNNING = (
    "SELECT CONCAT_WS(',', MIN(CAST(trx_id AS UNSIGNED)), MAX(CAST(trx_id AS UNSIGNED))) "
    f"{_MYSQL_TRANSACTIONS} AND CAST(trx_id AS UNSIGNED) BETWEEN 1 AND {_INNODB_NO_TRANSACTION - 1}"
)


def _mysql_value(value) -> str:
    """A key's value, as read back by connectorx, as a MySQL literal that compares as the column does."""
    if isinstance(value, str):
        return mysql_text(value)  # in the column's own collation, as ORDER BY compares
    if isinstance(value, bytes):
        return f"X'{value.hex()}'" if value else "''"
    if isinstance(value, datetime):
        return f"'{value:%Y-%m-%d %H:%M:%S.%f}'"  # naive: the session's UTC, or a DATETIME as stored
    if isinstance(value, date):
        return f"'{value.isoformat()}'"
    if isinstance(value, Decimal):
        return format(value, "f")
    return str(int(value))


def _after(key: list[str], last: list, quote) -> str:
    """Rows after `last` in key order: (a > x) OR (a = x AND b > y) ..."""
    alternatives = []
    for position, name in enumerate(key):
        equal = [f"{quote(key[before])} = {_mysql_value(last[before])}" for before in range(position)]
        alternatives.append(" AND ".join([*equal, f"{quote(name)} > {_mysql_value(last[position])}"]))
    return "(" + " OR ".join(f"({alternative})" for alternative in alternatives) + ")"


def _release_freed_memory() -> None:
    """Give the memory freed so far back to the system. connectorx builds each chunk's
    batches on its own threads, whose malloc arenas keep what Python's thread frees: a
    read of the 5M-row bench table alone peaked at 264 MB and rose with the chunks
    without it, and stayed at 133 MB with it (bench/RESULTS.md has the exports')."""
    if _LIBC is not None:
        _LIBC.malloc_trim(0)


def _glibc():
    try:
        libc = ctypes.CDLL("libc.so.6")
        return libc if hasattr(libc, "malloc_trim") else None
    except OSError:  # not glibc (musl, macOS): nothing to trim
        return None


_LIBC = _glibc()


def _pymysql_conversions() -> dict:
    """PyMySQL's conversions, with SET columns as the text MySQL writes ('a,b'), not a Python set."""
    from pymysql.constants import FIELD_TYPE  # noqa: PLC0415 - an engine's driver loads only when a source of that engine is read
    from pymysql.converters import conversions  # noqa: PLC0415 - as above

    return {code: convert for code, convert in conversions.items() if code != FIELD_TYPE.SET}


# --- Common entry points ----------------------------------------------------------------


def discover(url: str) -> list[DiscoveredDataset]:
    """List the tables and views of a source database with their columns."""
    if url.startswith("sqlite:"):
        return _discover_sqlite(url)
    if url.startswith(("postgres://", "postgresql://")):
        return _discover_postgresql(url)
    if url.startswith("duckdb:"):
        return _discover_duckdb(url)
    if url.startswith(MYSQL_SCHEMES):
        return _discover_mysql(url)
    raise SourceUnavailable(
        "unsupported database URL: use sqlite:///path, duckdb:///path, postgresql://... or mysql://..."
    )


def _key_text(value) -> str | None:
    if value is None:
        return None
    if isinstance(value, datetime | date):
        return value.isoformat()
    return str(value)


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    # ADBC prefixes messages with a status ("IO: ", "NOT_FOUND: ") and appends the query.
    text = re.sub(r"^[A-Z_]+: ", "", text)
    text = text.split("\nQuery was:")[0]
    text = re.sub(r"^\[(SQLite|libpq)\] ", "", text)
    # connectorx: MySqlError { ERROR 1146 (42S02): Table 't' doesn't exist }; PyMySQL: (1146, "Table...")
    text = re.sub(r"^(?:MySqlError|DriverError|IoError) \{ (?:ERROR \d+ \(\w+\): )?(.*) \}$", r"\1", text, flags=re.S)
    text = re.sub(r"""^\((\d+), ["'](.*)["']\)$""", r"\2 (MySQL error \1)", text, flags=re.S)
    return " ".join(text.split())


# What the drivers say when the connection went away mid-query (a restart, a failover, an
# administrator's pg_terminate_backend, the network): the server was fine with the query.
_CONNECTION_LOST = re.compile(
    r"terminating connection|server closed the connection|no connection to the server|"
    r"could not receive data from server|could not send data to server|connection (?:reset|refused|timed out)|"
    r"SSL SYSCALL error|SSL connection has been closed|the database system is (?:shutting down|starting up|"
    r"in recovery mode)|conflict with recovery|lost connection|server has gone away|broken pipe|"
    r"bytes remaining on stream|IO error|Connection was killed|Query execution was interrupted",
    re.IGNORECASE,
)


def connection_lost(message: str) -> bool:
    """Whether a driver's message says the connection dropped, not that the query was wrong."""
    return bool(_CONNECTION_LOST.search(message))


def _query_failed(exc: Exception, dataset_label: str) -> SourceError:
    message = _first_line(exc)
    if connection_lost(message):
        return SourceUnavailable(
            f"the connection to the source database dropped while reading {dataset_label}: {message}"
        )
    if re.search(r"no such table|relation .* does not exist|Table '.*' doesn't exist", message):
        return SourceQueryFailed(
            f"the table {dataset_label} no longer exists in the source database ({message}); "
            "refresh the datasets and pick another one"
        )
    if re.search(r"no such column|column .* does not exist|Unknown column", message):
        return SourceQueryFailed(
            f"a column of {dataset_label} no longer exists ({message}); refresh the dataset and edit the export"
        )
    return SourceQueryFailed(f"reading {dataset_label} failed: {message}")


class DatasetReader(ABC):
    """Streams one dataset's selected columns, filtered, as Arrow record batches.

    Use as a context manager; `estimate_rows()` gives the expected row count for progress.
    Each source engine has its subclass; `reader_class(url)` picks it.
    """

    dialect: str  # the SQL dialect `compile_where` writes for

    def __init__(
        self,
        url: str,
        schema_name: str,
        table: str,
        columns: list[dict],
        filters: list[Filter],
        *,
        batch_rows: int = 65_536,
        query: str = "",
    ):
        self.url = url
        self.schema_name = schema_name
        self.table = table
        self.columns = columns
        self.filters = filters
        self.batch_rows = batch_rows
        # A custom dataset's SELECT (exports/custom.py), read in place of a table.
        self.query = query
        self.schema = arrow_schema(columns)
        if query:
            self.label = f"custom dataset {table}"
        else:
            self.label = f"{schema_name}.{table}" if schema_name else table
        self._connection: Connection | None = None
        self._cursors: list = []

    @property
    def source(self) -> str:
        """What every query of the reader reads FROM: the table, or a custom dataset's
        query as a subquery under the dataset's name."""
        if self.query:
            return f"(\n{self.query}\n) AS {self._quote(self.table)}"
        return self._relation()

    def _quote(self, name: str) -> str:
        return quote_identifier(name, self.dialect)

    def _relation(self) -> str:
        source = self._quote(self.table)
        return f"{self._quote(self.schema_name)}.{source}" if self.schema_name else source

    def __enter__(self) -> DatasetReader:
        try:
            self._connection = self._connect()
        except SourceError:
            raise
        except Exception as exc:  # noqa: BLE001 - the ADBC drivers raise their own error types; any failure here means the source can't be reached
            raise SourceUnavailable(f"cannot connect to the source database: {_first_line(exc)}") from None
        try:
            self._check_columns()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        for cursor in self._cursors:
            try:
                cursor.close()
            except Exception:  # noqa: BLE001 - closing is best effort: a failed close must not hide how the read went
                pass
        if self._connection is not None:
            try:
                self._connection.close()
            except Exception:  # noqa: BLE001 - closing is best effort: a failed close must not hide how the read went
                pass

    @abstractmethod
    def _connect(self):
        """An open ADBC connection to the source."""

    def _check_columns(self) -> None:
        """Fails when the table or a wanted column is gone, if the engine wouldn't say so itself."""
        return  # by default the query's own error names what is missing

    @abstractmethod
    def _estimate_rows(self) -> int: ...

    @abstractmethod
    def _max_value_sql(self, column: dict) -> str:
        """A query for (the column's largest value, the transactions running as it ends
        as `_PG_RUNNING` gives them, or NULL where the engine has none)."""

    @abstractmethod
    def _primary_key_sql(self) -> str:
        """A query whose rows name the table's primary key columns, in key order."""

    def _horizon_sql(self) -> str | None:
        """A query for (the source's clock, the start of its oldest open transaction other
        than ours, how many sessions hide theirs); None where the engine can't tell (then:
        the worker's clock, no transaction)."""
        return None

    def _running_transactions_sql(self) -> str | None:
        """A query for the transactions running on the source, as `_PG_RUNNING` gives
        them; None for an engine whose writers commit in the order they write (SQLite)."""
        return None

    # Whether the transactions running are read in a statement of their own after the
    # MAX (an engine that can't read both in one statement, in that order).
    running_after_max = False

    def _transactions(self, text: str | None) -> tuple[list[int], int] | None:
        """The ids in the running transactions' text, and the next id to be assigned."""
        return running_transactions(text)

    @staticmethod
    def _select_expression(column: dict) -> str:
        """How the query reads a column: its name, or a cast to what we deliver."""
        return quote_identifier(column["name"])

    def _selected(self) -> str:
        return ", ".join(self._select_expression(column) for column in self.columns)

    def _query(self) -> tuple[str, list]:
        """(sql, params) that read the selected columns, filtered."""
        where, params = compile_where(self.filters, self.dialect)
        return f"SELECT {self._selected()} FROM {self.source}{where}", params

    @abstractmethod
    def _statement_options(self) -> dict[str, str]:
        """ADBC statement options that size the batches."""

    def _data_batches(self, batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        """Drops what the engine's query adds around the data; nothing by default."""
        return batches

    def _cursor(self):
        # Only ever called inside `with`: __enter__ opened the connection first.
        assert self._connection is not None
        cursor = self._connection.cursor()
        self._cursors.append(cursor)  # the stream dies if its cursor is collected
        return cursor

    def estimate_rows(self) -> int | None:
        try:
            return self._estimate_rows()
        except SourceError:
            raise
        except Exception as exc:  # noqa: BLE001 - ADBC and Arrow raise their own error types; each is a failed read
            raise _query_failed(exc, self.label) from None

    def _fetch(self, sql: str) -> list[tuple]:
        """The rows of a small catalogue or aggregate query, or a SourceError."""
        try:
            cursor = self._cursor()
            cursor.execute(sql)
            return cursor.fetchall()
        except SourceError:
            raise
        except Exception as exc:  # noqa: BLE001 - ADBC and Arrow raise their own error types; each is a failed read
            raise _query_failed(exc, self.label) from None

    def max_value(self, column: dict) -> HighWaterMark:
        """The largest value of a column, as text the filters parse back exactly (None
        for an empty table): an incremental run's high-water mark, with the newest
        transaction that was running when it was read."""
        [(value, running)] = self._fetch(self._max_value_sql(column))
        if self.running_after_max:
            # After the MAX's snapshot: each transaction whose rows it could not see has
            # either ended (the run's read sees them) or is still running, and listed.
            running = self._fetch(self._running_transactions_sql() or "")[0][0]
        if isinstance(value, datetime | date):
            value = value.isoformat()
        found = self._transactions(running)
        blocking = max(found[0], default=None) if found else None
        return HighWaterMark(None if value is None else str(value), blocking)

    def oldest_transaction_id(self) -> int | None:
        """The oldest transaction running in the source's database, or the next one to be
        assigned when none runs (None: an engine whose writers commit in order)."""
        sql = self._running_transactions_sql()
        if sql is None:
            return None
        found = self._transactions(self._fetch(sql)[0][0])
        if found is None:
            return None
        running, next_xid = found
        return min(running, default=next_xid)

    def wait_for_transactions(self, blocking: int | None, seconds: float) -> int | None:
        """Wait up to `seconds` until the transaction `blocking` and every older one have
        ended; the oldest running transaction id at the end (None: nothing to wait for)."""
        oldest = self.oldest_transaction_id()
        if oldest is None or blocking is None:
            return oldest
        deadline = time.monotonic() + seconds
        while oldest is not None and oldest <= blocking and time.monotonic() < deadline:
            time.sleep(0.05)
            oldest = self.oldest_transaction_id()
        return oldest

    def _bounds_sql(self, column: dict) -> str:
        name = self._quote(column["name"])
        return f"SELECT MIN({name}), MAX({name}) FROM {self.source}"

    def key_bounds(self, column: dict) -> tuple[str | None, str | None]:
        """A column's smallest and largest values, as text the filters parse back
        (None, None for an empty table): where a partitioned run's key ranges lie."""
        [(low, high)] = self._fetch(self._bounds_sql(column))
        return _key_text(low), _key_text(high)

    def key_quantiles(self, column: dict) -> list[str]:
        """A column's equal-frequency bounds from the planner's statistics, lowest first,
        as text; none where the engine keeps none (then the ranges split evenly)."""
        return []

    def csv_copy(self, delimiter: str, *, spreadsheet_safe: bool = False) -> Generator[bytes] | None:
        """The selected rows as CSV text the source writes itself, in our file contract
        (docs/file-contract.md), byte for byte; None where the engine or a column's type
        can't. After the last chunk, `copied_rows` says how many rows it held."""
        return None

    copied_rows: int | None = None

    def primary_key(self) -> list[str]:
        """The table's primary key columns (none for a view or a table without one)."""
        return [row[-1] for row in self._fetch(self._primary_key_sql())]

    def transaction_horizon(self) -> TransactionHorizon:
        """The source's clock and its oldest open transaction: how far below the
        high-water mark rows may still appear when those transactions commit."""
        sql = self._horizon_sql()
        if sql is None:
            return TransactionHorizon(datetime.now(UTC), None)
        [(now, oldest, hidden)] = self._fetch(sql)
        # A naive clock is the source's UTC (MySQL's sessions are in UTC).
        return TransactionHorizon(_aware(now) or datetime.now(UTC), _aware(oldest), int(hidden or 0))

    def batches(self) -> Iterator[pa.RecordBatch]:
        sql, params = self._query()
        try:
            stream = self._stream(sql, params)
        except Exception as exc:  # noqa: BLE001 - ADBC and Arrow raise their own error types; each is a failed read
            raise _query_failed(exc, self.label) from None
        for batch in self._data_batches(self._read(stream)):
            if batch.num_rows:
                yield self._normalise(batch)

    def _stream(self, sql: str, params: list):
        """The query's result as a stream of Arrow record batches (ADBC's, by default)."""
        cursor = self._cursor()
        cursor.adbc_statement.set_options(**self._statement_options())
        cursor.execute(sql, parameters=params or None)
        return cursor.fetch_record_batch()

    def _read(self, stream) -> Iterator[pa.RecordBatch]:
        iterator = iter(stream)
        while True:
            try:
                batch = next(iterator)
            except StopIteration:
                return
            except Exception as exc:  # noqa: BLE001 - ADBC and Arrow raise their own error types; each is a failed read
                raise _query_failed(exc, self.label) from None
            yield batch

    def _normalise(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        arrays = []
        for array, field in zip(batch.columns, self.schema, strict=True):
            if isinstance(array, pa.ExtensionArray):
                array = array.storage  # PostgreSQL numeric arrives as an opaque type over text
            if array.type != field.type:
                try:
                    array = pc.cast(array, field.type)
                except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                    raise SourceQueryFailed(
                        f"column {field.name!r} of {self.label} holds a value that is not {field.type}: {exc}"
                    ) from None
            arrays.append(array)
        return pa.RecordBatch.from_arrays(arrays, schema=self.schema)


class SqliteReader(DatasetReader):
    dialect = "sqlite"

    def _connect(self):
        import adbc_driver_sqlite.dbapi as driver  # noqa: PLC0415 - an engine's driver loads only when a source of that engine is read

        path = sqlite_path(self.url)
        if not path.is_file():
            raise SourceUnavailable(f"the SQLite database file {path} does not exist")
        return driver.connect(f"file:{quote(str(path))}?mode=ro")

    def _check_columns(self) -> None:
        """SQLite reads a double-quoted name that matches no column as a string literal,
        so a dropped column would export its own name: check the columns first."""
        cursor = self._cursor()
        if self.query:
            try:
                cursor.execute(f"SELECT * FROM {self.source} LIMIT 0")
            except Exception as exc:  # noqa: BLE001 - ADBC raises its own error types; each is a failed query
                raise SourceQueryFailed(f"the query of {self.label} fails: {_first_line(exc)}") from None
            present = {column[0] for column in cursor.description or []}
        else:
            cursor.execute(f"SELECT name FROM pragma_table_info({_sql_literal(self.table)})")
            present = {row[0] for row in cursor.fetchall()}
        if not present:
            raise SourceQueryFailed(
                f"the table {self.label} no longer exists in the source database; "
                "refresh the datasets and pick another one"
            )
        wanted = [column["name"] for column in self.columns] + [f.column for f in self.filters]
        missing = sorted({name for name in wanted if name not in present})
        if missing:
            raise SourceQueryFailed(
                f"column {', '.join(map(repr, missing))} no longer exists in {self.label}; "
                "refresh the dataset and edit the export"
            )

    def _estimate_rows(self) -> int:
        where, params = compile_where(self.filters, self.dialect)
        cursor = self._cursor()
        cursor.execute(f"SELECT count(*) FROM {self.source}{where}", parameters=params)
        return int(cursor.fetchone()[0])

    def _max_value_sql(self, column: dict) -> str:
        name = quote_identifier(column["name"])
        # The filters compare timestamps in this strftime form, so the mark must be in it too.
        expression = f"strftime('%Y-%m-%dT%H:%M:%f', {name})" if column["type"] in {"timestamp", "datetime"} else name
        return f"SELECT MAX({expression}), NULL FROM {self.source}"

    def _bounds_sql(self, column: dict) -> str:
        name = quote_identifier(column["name"])
        if column["type"] in {"timestamp", "datetime"}:
            name = f"strftime('%Y-%m-%dT%H:%M:%f', {name})"  # the form the filters compare
        return f"SELECT MIN({name}), MAX({name}) FROM {self.source}"

    def _primary_key_sql(self) -> str:
        # A view, a custom query, or a table without a declared key, has no row here.
        table = "" if self.query else self.table
        return f"SELECT pk, name FROM pragma_table_info({_sql_literal(table)}) WHERE pk > 0 ORDER BY pk"

    def _query(self) -> tuple[str, list]:
        return _sqlite_query(self.source, self.columns, self.filters)

    def _statement_options(self) -> dict[str, str]:
        return {"adbc.sqlite.query.batch_rows": str(self.batch_rows)}

    def _data_batches(self, batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        """Drops the sentinel row `_sqlite_query` puts first, and its marker column."""
        sentinel = True
        for batch in batches:
            if sentinel and batch.num_rows:
                if batch.column(0)[0].as_py() != 0:
                    raise SourceQueryFailed("the SQLite reader lost its sentinel row")
                batch = batch.slice(1)
                sentinel = False
            yield batch.drop_columns(["__sentinel__"])


class PostgresReader(DatasetReader):
    dialect = "postgresql"

    def _connect(self):
        import adbc_driver_postgresql.dbapi as driver  # noqa: PLC0415 - an engine's driver loads only when a source of that engine is read

        return driver.connect(_pg_pinned(_pg_adbc_uri(self.url, custom_query=bool(self.query))))

    def _estimate_rows(self) -> int:
        """The planner's row estimate: ADBC runs queries through COPY, which can't EXPLAIN,
        so this one goes through psycopg."""
        import psycopg  # noqa: PLC0415 - an engine's driver loads only when a source of that engine is read

        sql, params = self._query()
        assert not params, "PostgreSQL queries carry their values inline (filters._Params)"
        with _pg_connect_for_catalogue(self.url) as connection:
            try:
                # Prepared: one statement, whatever a custom dataset's query holds.
                plan = connection.execute(f"EXPLAIN (FORMAT JSON) {sql}", prepare=True).fetchone()[0]
            except psycopg.Error as exc:
                raise _query_failed(exc, self.label) from None
        return int(plan[0]["Plan"]["Plan Rows"])

    def _max_value_sql(self, column: dict) -> str:
        # In one statement: the transactions running when it ends include every one whose
        # rows MAX could not see and that had not ended since.
        return f"SELECT MAX({quote_identifier(column['name'])}), {_PG_RUNNING} FROM {self.source}"

    def _running_transactions_sql(self) -> str:
        return f"SELECT {_PG_RUNNING}"

    def _primary_key_sql(self) -> str:
        if self.query:
            return _PG_PRIMARY_KEYS.format(where="false")  # a custom query has no key of its own
        return _PG_PRIMARY_KEYS.format(where=f"i.indrelid = to_regclass({_sql_literal(self._relation())})")

    def _horizon_sql(self) -> str:
        # Sessions of other roles show their transaction start only to superusers and to
        # members of pg_read_all_stats (docs/schedules.md): grant it to the source's user.
        return (
            "SELECT clock_timestamp(), least("
            "(SELECT min(xact_start) FROM pg_stat_activity WHERE datname = current_database() "
            "AND pid <> pg_backend_pid() AND backend_type = 'client backend' "
            f"AND application_name <> {_sql_literal(APPLICATION_NAME)}), "
            "(SELECT min(prepared) FROM pg_prepared_xacts WHERE database = current_database())), "
            # Sessions whose details the user may not see show no backend type.
            "(SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND backend_type IS NULL)"
        )

    _select_expression = staticmethod(_pg_select_expression)

    def key_quantiles(self, column: dict) -> list[str]:
        """pg_stats' histogram of the column (ANALYZE's sample, equal-frequency bounds)."""
        cast = _PG_HISTOGRAM_CASTS.get(column["type"])
        if self.query or cast is None:
            return []
        rows = self._fetch(
            f"SELECT unnest(histogram_bounds::text::{cast}[]) FROM pg_stats "
            f"WHERE schemaname = {_sql_literal(self.schema_name or 'public')} "
            f"AND tablename = {_sql_literal(self.table)} AND attname = {_sql_literal(column['name'])}"
        )
        return [text for (value,) in rows if (text := _key_text(value)) is not None]

    def csv_copy(self, delimiter: str, *, spreadsheet_safe: bool = False) -> Generator[bytes] | None:
        """PostgreSQL's COPY ... TO STDOUT (FORMAT csv), by `csv_copy_sql`."""
        sql = self.csv_copy_sql(delimiter, spreadsheet_safe=spreadsheet_safe)
        return None if sql is None else self._copy(sql)

    def csv_copy_sql(self, delimiter: str, *, spreadsheet_safe: bool = False) -> str | None:
        """The COPY that writes our CSV: text quoted (FORCE_QUOTE, as pyarrow's writer
        quotes every string), timestamps formatted by to_char as RFC 3339 in UTC with
        microseconds, booleans as true/false; spreadsheet-safe text with a `'` before a
        formula's first character, as `engine.defuse_formulas` does. None where a column
        has no such form: floats and other types keep the Arrow path, their text differs."""
        expressions = []
        quoted = []
        for number, column in enumerate(self.columns):
            expression = _pg_copy_expression(column)
            if expression is None:
                return None
            if spreadsheet_safe and column["type"] == "text":
                text = expression[0]
                risky = f"ascii({text}) IN ({', '.join(str(ord(char)) for char in FORMULA_CHARACTERS)})"
                expression = (f"CASE WHEN {risky} THEN '''' || {text} ELSE {text} END", True)
            expressions.append(f"{expression[0]} AS c{number}")
            if expression[1]:
                quoted.append(f"c{number}")
        where, params = compile_where(self.filters, self.dialect)
        assert not params, "PostgreSQL queries carry their values inline (filters._Params)"
        options = f"FORMAT csv, DELIMITER {_sql_literal(delimiter)}"
        if quoted:
            options += f", FORCE_QUOTE ({', '.join(quoted)})"
        return f"COPY (SELECT {', '.join(expressions)} FROM {self.source}{where}) TO STDOUT ({options})"

    def _copy(self, sql: str) -> Generator[bytes]:
        import psycopg  # noqa: PLC0415 - an engine's driver loads only when a source of that engine is read

        connection = _pg_connect_for_catalogue(self.url)
        try:
            if self.query:
                # A custom dataset's own SQL: in a read-only transaction, and cut after its
                # timeout, as its ADBC reads are (set before the transaction begins).
                connection.read_only = True
                connection.execute(f"SET LOCAL statement_timeout = {settings.EXPORT_CUSTOM_QUERY_TIMEOUT * 1000}")
            # The server's own DateStyle, as on the Arrow path: `::text` columns read the same.
            connection.execute("SET client_encoding = 'UTF8'")
            with connection.cursor() as cursor:
                with cursor.copy(sql) as copy:
                    buffer = bytearray()
                    for data in copy:  # one row per message: gathered into chunks of about 1 MB
                        buffer += data
                        if len(buffer) >= COPY_CHUNK_BYTES:
                            yield bytes(buffer)
                            buffer.clear()
                    if buffer:
                        yield bytes(buffer)
                self.copied_rows = cursor.rowcount
        except psycopg.Error as exc:
            if _NO_COPY_FORM in str(exc):
                raise CopyRefused(_first_line(exc)) from None
            raise _query_failed(exc, self.label) from None
        finally:
            connection.close()

    def _statement_options(self) -> dict[str, str]:
        # Batches of about 8 MB: a few in flight keep the export well inside its memory budget.
        return {"adbc.postgresql.batch_size_hint_bytes": str(PG_BATCH_BYTES)}


class DuckdbReader(DatasetReader):
    dialect = "duckdb"

    def _connect(self):
        return _duckdb_connect(self.url)

    def _estimate_rows(self) -> int:
        [(estimated,)] = self._fetch(
            "SELECT coalesce(max(estimated_size), 0) FROM duckdb_tables() "
            f"WHERE schema_name = {_duckdb_string(self.schema_name or 'main')} "
            f"AND table_name = {_duckdb_string(self.table)} AND database_name = current_database()"
        )
        return int(estimated)

    def _max_value_sql(self, column: dict) -> str:
        return f"SELECT max({quote_identifier(column['name'])}), NULL FROM {self.source}"

    def _primary_key_sql(self) -> str:
        return (
            "SELECT unnest(constraint_column_names) FROM duckdb_constraints() WHERE constraint_type = 'PRIMARY KEY' "
            f"AND schema_name = {_duckdb_string(self.schema_name or 'main')} "
            f"AND table_name = {_duckdb_string(self.table)} AND database_name = current_database()"
        )

    _select_expression = staticmethod(_duckdb_select_expression)

    def _statement_options(self) -> dict[str, str]:
        return {}

    def _stream(self, sql: str, params: list):
        # DuckDB's relation streams its result in batches of the size asked for.
        return self._cursor().sql(sql).to_arrow_reader(self.batch_rows)


class MysqlReader(DatasetReader):
    """A MySQL or MariaDB table: rows through connectorx's Arrow stream, the rest through PyMySQL."""

    dialect = "mysql"
    running_after_max = True

    def _connect(self):
        return mysql_connect(self.url)

    def _relation(self) -> str:
        return self._quote(self.table)  # a table of the URL's database

    def _estimate_rows(self) -> int:
        [(estimated,)] = self._fetch(
            "SELECT COALESCE(MAX(TABLE_ROWS), 0) FROM information_schema.TABLES "
            f"WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = {mysql_text(self.table)}"
        )
        return int(estimated)

    def _max_value_sql(self, column: dict) -> str:
        return f"SELECT MAX({self._quote(column['name'])}), NULL FROM {self.source}"

    def _running_transactions_sql(self) -> str:
        return _MYSQL_RUNNING

    def _transactions(self, text: str | None) -> tuple[list[int], int] | None:
        return _mysql_running(text)

    def _primary_key_sql(self) -> str:
        return f"{_MYSQL_PRIMARY_KEYS} AND TABLE_NAME = {mysql_text(self.table)} ORDER BY ORDINAL_POSITION"

    def _horizon_sql(self) -> str:
        # InnoDB gives trx_started in the server's own time zone, whatever the session's.
        started = f"(SELECT MIN(trx_started) {_MYSQL_TRANSACTIONS})"
        return f"SELECT UTC_TIMESTAMP(6), CONVERT_TZ({started}, 'SYSTEM', '+00:00'), 0"

    def _fetch(self, sql: str) -> list[tuple]:
        try:
            return super()._fetch(sql)
        except SourceQueryFailed as exc:
            if "PROCESS privilege" not in str(exc):
                raise
            raise SourceQueryFailed(
                f"incremental runs read the transactions open on the source (information_schema.INNODB_TRX), "
                f"which needs the PROCESS privilege: GRANT PROCESS ON *.* TO the source's user ({exc})"
            ) from None

    _select_expression = staticmethod(_mysql_select_expression)

    def _statement_options(self) -> dict[str, str]:
        return {}

    def _stream(self, sql: str, params: list):
        """The rows in chunks of `batch_rows`, each chunk a query of its own that
        continues after the last key read (`WHERE key > last ORDER BY key LIMIT n`, a range
        of the primary key's index): connectorx reads a query's rows as fast as the server
        sends them, whatever the writer's pace (its channel has no bound), so a chunk is what
        bounds memory. A view, or a table without a usable primary key, is read through a
        server-side cursor instead: flat too, several times slower."""
        assert not params, "MySQL queries carry their values inline (filters._Params)"
        key = self._keyset_key()
        if not key:
            return self._cursor_batches(sql)
        return self._chunks(key)

    CHUNK_PARTS = 4
    # Key types whose values connectorx reads as they are and that compare as MySQL orders them.
    _KEYSET_TYPES = frozenset(
        {"tinyint", "smallint", "mediumint", "int", "bigint", "char", "varchar", "binary", "varbinary", "date",
         "datetime", "timestamp"}
    )  # fmt: skip

    def _keyset_key(self) -> list[str]:
        rows = self._fetch(
            "SELECT k.COLUMN_NAME, c.DATA_TYPE FROM information_schema.KEY_COLUMN_USAGE k "
            "JOIN information_schema.COLUMNS c ON c.TABLE_SCHEMA = k.TABLE_SCHEMA AND c.TABLE_NAME = k.TABLE_NAME "
            "AND c.COLUMN_NAME = k.COLUMN_NAME WHERE k.TABLE_SCHEMA = DATABASE() AND k.CONSTRAINT_NAME = 'PRIMARY' "
            f"AND k.TABLE_NAME = {mysql_text(self.table)} ORDER BY k.ORDINAL_POSITION"
        )
        if not rows or any(str(data_type).lower() not in self._KEYSET_TYPES for _, data_type in rows):
            return []
        return [name for name, _ in rows]

    def _chunks(self, key: list[str]) -> Iterator[pa.RecordBatch]:
        import connectorx  # noqa: PLC0415 - an engine's driver loads only when a source of that engine is read

        selected = self._selected()
        keys = ", ".join(f"{self._quote(name)} AS `__key{position}`" for position, name in enumerate(key))
        where, _ = compile_where(self.filters, "mysql")
        order = ", ".join(self._quote(name) for name in key)
        # A chunk holds `batch_rows` rows, in CHUNK_PARTS batches: connectorx reads the
        # whole chunk ahead, and smaller batches kept the bench's peak at 210 MB (against
        # 240 MB for halves, 255 MB for whole batches), each a Parquet row group.
        rows_per_batch = max(self.batch_rows // self.CHUNK_PARTS, 1)
        limit = rows_per_batch * self.CHUNK_PARTS
        url = _connectorx_url(self.url)
        last: list | None = None
        while True:
            conditions = [where.removeprefix(" WHERE ")] if where else []
            if last is not None:
                conditions.append(_after(key, last, self._quote))
            condition = f" WHERE {' AND '.join(conditions)}" if conditions else ""
            stream = connectorx.read_sql(
                url,
                f"SELECT {selected}, {keys} FROM {self.source}{condition} ORDER BY {order} LIMIT {limit}",
                return_type="arrow_stream",
                batch_size=rows_per_batch,
                pre_execution_query=[_MYSQL_SESSION],
            )
            read = 0
            for batch in stream:
                if not batch.num_rows:
                    continue
                read += batch.num_rows
                last = [batch.column(len(self.columns) + position)[-1].as_py() for position in range(len(key))]
                yield batch.select(range(len(self.columns)))
                _release_freed_memory()
            del stream
            _release_freed_memory()
            if read < limit:
                return

    def _cursor_batches(self, sql: str) -> Iterator[pa.RecordBatch]:
        """PyMySQL's unbuffered cursor, `batch_rows` rows at a time, into Arrow arrays."""
        import pymysql  # noqa: PLC0415 - an engine's driver loads only when a source of that engine is read

        connection = mysql_connect(self.url, conversions=_pymysql_conversions())
        try:
            # Not closed (closing an unbuffered cursor reads the rest of its rows): the
            # connection's close ends the query, read to the end or not.
            cursor = connection.cursor(pymysql.cursors.SSCursor)
            cursor.execute(sql)
            while rows := cursor.fetchmany(self.batch_rows):
                yield pa.RecordBatch.from_arrays(
                    [
                        self._array(column, values)
                        for column, values in zip(self.columns, zip(*rows, strict=True), strict=True)
                    ],
                    names=[column["name"] for column in self.columns],
                )
        finally:
            connection.close()

    def _array(self, column: dict, values: tuple) -> pa.Array:
        kind = column["type"]
        if kind == "decimal":  # Decimal, or text (a CAST), or an int (BIGINT UNSIGNED)
            values = tuple(None if value is None else Decimal(value) for value in values)
        target = pa.int64() if kind == "boolean" else arrow_type(column)  # booleans checked by _normalise
        try:
            return pa.array(values, type=target)
        except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError, ArithmeticError):
            # A zero date arrives as its text; any other value is named as it is.
            raise self._unreadable(ValueError(f"column {column['name']!r} holds a value that is not {kind}")) from None

    def _panicked(self, exc: BaseException) -> BaseException:
        """connectorx panics (a BaseException, which `except Exception` lets through) on a
        value its Rust types can't hold (then: what that value is), and when its read
        fails midway (a dropped connection, a killed query). Anything else as it was."""
        if type(exc).__name__ != "PanicException":
            return exc
        if "convert" in str(exc).lower():
            return self._unreadable(exc)
        return _query_failed(Exception(str(exc)), self.label)

    def _read(self, stream) -> Iterator[pa.RecordBatch]:
        try:
            yield from super()._read(stream)
        except BaseException as exc:  # noqa: BLE001 - connectorx's PanicException is one; the rest is raised as it was
            raise self._panicked(exc) from None

    def _unreadable(self, exc: BaseException) -> SourceError:
        """What a value connectorx could not read is: a zero date, named with its column."""
        dates = [column for column in self.columns if column["type"] in {"date", "datetime", "timestamp"}]
        where, _ = compile_where(self.filters, "mysql")
        for column in dates:
            name = self._quote(column["name"])
            condition = f"{name} IS NOT NULL AND (MONTH({name}) = 0 OR DAYOFMONTH({name}) = 0)"
            rows = self._fetch(
                f"SELECT CAST({name} AS CHAR) FROM {self.source}"
                + (f"{where} AND {condition}" if where else f" WHERE {condition}")
                + " LIMIT 1"
            )
            if rows:
                return SourceQueryFailed(
                    f"column {column['name']!r} of {self.label} holds the date {rows[0][0]!r}, which MySQL allows "
                    "but no date type has (a zero day or month): set those values to NULL or a real date, "
                    "or filter them out"
                )
        return SourceQueryFailed(f"reading {self.label} failed on a value the MySQL reader can't hold: {exc}")

    def _normalise(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        for array, field in zip(batch.columns, self.schema, strict=True):
            if field.type == pa.bool_() and pa.types.is_integer(array.type):
                # TINYINT(1) is read as a boolean: any other number in it would be lost.
                low, high = (value.as_py() for value in pc.min_max(array).values())
                if (low is not None and low < 0) or (high is not None and high > 1):
                    raise SourceQueryFailed(
                        f"column {field.name!r} of {self.label} is a TINYINT(1), exported as a boolean, "
                        f"but holds {high if high > 1 else low}: make it a wider integer type to export its numbers"
                    )
        return super()._normalise(batch)


def reader_class(url: str) -> type[DatasetReader]:
    # Anything else goes to the PostgreSQL driver, whose connection error then names the problem.
    if url.startswith("sqlite:"):
        return SqliteReader
    if url.startswith("duckdb:"):
        return DuckdbReader
    if url.startswith(MYSQL_SCHEMES):
        return MysqlReader
    return PostgresReader


@contextmanager
def open_reader(
    dataset: Dataset, columns: list[str], filters: list[Filter], *, batch_rows: int = 65_536
) -> Iterator[DatasetReader]:
    """A DatasetReader for a `Dataset` row: `columns` are names (empty: all of them)."""
    by_name = {column["name"]: column for column in dataset.columns}
    missing = [name for name in columns if name not in by_name]
    if missing:
        raise SourceQueryFailed(
            f"column {', '.join(map(repr, missing))} no longer exists in {dataset.qualified_name}; "
            "refresh the dataset and edit the export"
        )
    selected = [by_name[name] for name in columns] if columns else list(dataset.columns)
    reader_type = reader_class(dataset.database.url)
    with reader_type(
        dataset.database.url,
        dataset.schema_name,
        dataset.name,
        selected,
        filters,
        batch_rows=batch_rows,
        query=dataset.query,
    ) as reader:
        yield reader
