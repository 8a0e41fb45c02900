"""Custom datasets: platform staff's own read-only SELECT over a source database.

A custom dataset (`Dataset.Kind.QUERY`) may join tables and compute columns. It is
checked when it is saved: one SELECT (or WITH ... SELECT), which the database itself runs
with `LIMIT 0`, read-only, under a short timeout, and whose result gives the dataset's
columns (named, each once). A refusal carries the database's own reason.

Exports then read it like a table (`sources.DatasetReader.source`: the query as a
subquery), so columns, filters, cursor columns and incremental windows work on it. On
PostgreSQL its reads run in read-only transactions under EXPORT_CUSTOM_QUERY_TIMEOUT
(`sources._pg_adbc_uri`); a SQLite source is always opened read-only.
"""

from __future__ import annotations

import re
import sqlite3
import time
from collections.abc import Callable

from django.conf import settings
from django.core.exceptions import ValidationError

from exports import sources
from exports.filters import quote_identifier

# The first word after any comments and blanks.
_FIRST_WORD = re.compile(r"\A(?:\s+|--[^\n]*(?:\n|\Z)|/\*.*?\*/)*(\w*)", re.S)
# PostgreSQL's name for a column it couldn't name, SQLite's is the expression itself.
_UNNAMED = "?column?"


def normalise(query: str) -> str:
    """The query as it is stored: without surrounding blanks and trailing semicolons."""
    return query.strip().rstrip(";").rstrip()


def check_shape(query: str) -> None:
    """One SELECT: refuse anything else before it reaches the database."""
    if not query:
        raise ValidationError("a custom dataset needs its SELECT query")
    found = _FIRST_WORD.match(query)
    first = found.group(1).upper() if found else ""
    if first not in {"SELECT", "WITH"}:
        raise ValidationError(
            f"a custom dataset is one SELECT query (WITH ... SELECT too), not {first or 'this'}: "
            "it only reads, it never changes data"
        )


def describe(url: str, query: str) -> list[dict]:
    """The columns of `query`'s result, found by running it with LIMIT 0 on the source,
    read-only. A ValidationError names what is wrong, with the database's reason."""
    query = normalise(query)
    check_shape(query)
    if not url.startswith(("sqlite:", "postgres://", "postgresql://")):
        raise ValidationError("a custom dataset reads a SQLite or PostgreSQL source; this source's engine has none yet")
    try:
        if url.startswith("sqlite:"):
            columns = _describe_sqlite(url, query)
        else:
            columns = _describe_postgresql(url, query)
    except sources.SourceUnavailable as exc:
        raise ValidationError(f"the source database can't be reached to check the query: {exc}") from None
    _check_names([column["name"] for column in columns])
    return columns


def _check_names(names: list[str]) -> None:
    if not names:
        raise ValidationError("the query gives no columns")
    seen: set[str] = set()
    for name in names:
        if not name or name == _UNNAMED or not re.fullmatch(r"[^\x00-\x1f]{1,200}", name):
            raise ValidationError(f"name every computed column with AS: {name!r} is not a column name")
        if name in seen:
            raise ValidationError(f"column {name!r} comes twice in the result: give each its own name with AS")
        seen.add(name)


def _refused(message: str) -> ValidationError:
    return ValidationError(f"the database refused the query: {message}")


def _describe_sqlite(url: str, query: str) -> list[dict]:
    """A temporary view of the query (the connection is read-only; temporary objects are
    its own) gives the columns' declared types; an expression has none and reads as text."""
    connection = sources._sqlite_connect_readonly(sources.sqlite_path(url))
    deadline = time.monotonic() + settings.CUSTOM_QUERY_CHECK_SECONDS
    connection.set_progress_handler(_past(deadline), 10_000)
    try:
        connection.execute(f"CREATE TEMP VIEW __custom AS SELECT * FROM (\n{query}\n) LIMIT 0")
        connection.execute("SELECT * FROM temp.__custom").fetchall()
        info = connection.execute("PRAGMA temp.table_info(__custom)").fetchall()
    except sqlite3.Error as exc:
        message = str(exc)
        if message == "interrupted":
            message = f"it took more than {settings.CUSTOM_QUERY_CHECK_SECONDS} s"
        raise _refused(message) from None
    finally:
        connection.close()
    names = {row[1] for row in info}
    columns = []
    for _cid, name, declared, _notnull, _default, _pk in info:
        # SQLite renames a second "id" of a subquery "id:1".
        twin = re.fullmatch(r"(.*):\d+", name)
        if twin and twin.group(1) in names:
            _check_names([twin.group(1), twin.group(1)])
        column = {"name": name, "source_type": declared or "", "nullable": True}
        column.update(sources._sqlite_logical_type(declared or ""))
        columns.append(column)
    return columns


def _past(deadline: float) -> Callable[[], int]:
    return lambda: int(time.monotonic() > deadline)


def _describe_postgresql(url: str, query: str) -> list[dict]:
    import psycopg  # noqa: PLC0415 - an engine's driver loads only when a source of that engine is read

    with sources._pg_connect_for_catalogue(url) as connection:
        try:
            # Every statement its own transaction, each read-only: nothing here can write.
            connection.autocommit = True
            connection.execute("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY")
            connection.execute(f"SET statement_timeout = {settings.CUSTOM_QUERY_CHECK_SECONDS * 1000}")
            # Prepared: one statement, so a query that closes the subquery early and adds
            # statements after a `;` is refused by the server, never run.
            cursor = connection.execute(
                f"SELECT * FROM (\n{query}\n) AS {quote_identifier('custom')} LIMIT 0", prepare=True
            )
            described = list(cursor.description or [])
            types = dict(
                connection.execute(
                    "SELECT oid::int, format_type(oid, NULL) FROM pg_type WHERE oid = ANY(%s)",
                    [[column.type_code for column in described]],
                ).fetchall()
            )
        except psycopg.Error as exc:
            raise _refused(sources._first_line(exc)) from None
    columns = []
    for column in described:
        data_type = types.get(column.type_code, "text")
        found = {"name": column.name, "source_type": data_type, "nullable": True}
        if data_type == "numeric" and column.precision is not None:
            found.update(type="decimal", precision=min(column.precision, 38), scale=column.scale or 0)
        else:
            found["type"] = sources._PG_TYPES.get(data_type, "text")
        columns.append(found)
    return columns
