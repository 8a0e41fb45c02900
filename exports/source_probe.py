"""Test connection for a source database: connect, list its tables, read one row of one.
Each step says whether it passed and, if not, why in words a person can act on:
unreachable, bad credentials, missing database, permission denied, TLS, or an address
the outbound policy refuses. Nothing the probe reads is kept."""

from __future__ import annotations

from dataclasses import dataclass, field

from exports import sources
from exports.filters import quote_identifier
from exportsite import redaction


@dataclass
class Step:
    name: str  # "connect", "list tables", "read a row"
    ok: bool
    message: str


@dataclass
class Probe:
    steps: list[Step] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return bool(self.steps) and all(step.ok for step in self.steps)

    @property
    def summary(self) -> str:
        failed = next((step for step in self.steps if not step.ok), None)
        if failed is None:
            return "connected: " + "; ".join(step.message for step in self.steps)
        return f"{failed.name} failed: {failed.message}"


# PostgreSQL's SQLSTATEs for what a person can fix, in their words.
_PG_STATES = {
    "28P01": "bad credentials: the server refused the user name or password",
    "28000": "bad credentials: the server refused the user name or password",
    "3D000": "missing database: there is no such database on the server",
    "42501": "permission denied: the user may not read it",
}


def _pg_connect_problem(exc: Exception) -> str:
    state = getattr(exc, "sqlstate", None)
    if state in _PG_STATES:
        return _PG_STATES[state]
    text = sources._first_line(exc)
    lowered = text.lower()
    if "password authentication failed" in lowered or "no password supplied" in lowered:
        return _PG_STATES["28P01"]
    if "does not exist" in lowered and "database" in lowered:
        return _PG_STATES["3D000"]
    if "ssl" in lowered or "certificate" in lowered or "tls" in lowered:
        return f"TLS: {text}"
    if "permission denied" in lowered:
        return f"permission denied: {text}"
    return f"unreachable: {text}"


def probe(url: str) -> Probe:
    """The three steps; no message carries the URL's password, whatever a driver said."""
    result = _probe(url)
    secrets = redaction.url_secrets(url)
    for step in result.steps:
        step.message = redaction.redact(step.message, secrets)
    return result


def _probe(url: str) -> Probe:
    result = Probe()
    if url.startswith(("postgres://", "postgresql://")):
        connection = _connect_postgresql(url, result)
    elif url.startswith(sources.MYSQL_SCHEMES):
        connection = _connect_mysql(url, result)
    elif url.startswith(("sqlite:", "duckdb:")):
        connection = _connect_file(url, result)
    else:
        result.steps.append(Step("connect", False, "unsupported engine"))
        return result
    if connection is None:
        return result
    try:
        try:
            found = [dataset for dataset in sources.discover(url) if not dataset.error]
        except sources.SourceError as exc:
            result.steps.append(Step("list tables", False, _listing_problem(str(exc))))
            return result
        if not found:
            result.steps.append(Step("list tables", False, "the database has no tables or views the user can see"))
            return result
        result.steps.append(Step("list tables", True, f"{len(found)} table{'s' if len(found) != 1 else ''} or views"))
        first = found[0]
        dialect = sources.reader_class(url).dialect
        relation = quote_identifier(first.name, dialect)
        if first.schema_name:
            relation = f"{quote_identifier(first.schema_name, dialect)}.{relation}"
        label = f"{first.schema_name}.{first.name}" if first.schema_name else first.name
        try:
            cursor = connection.cursor()
            cursor.execute(f"SELECT * FROM {relation} LIMIT 1")
            cursor.fetchall()
        except Exception as exc:  # noqa: BLE001 - each driver has its own errors; any failure is this step's
            result.steps.append(Step("read a row", False, _read_problem(exc, label)))
            return result
        result.steps.append(Step("read a row", True, f"read a row of {label}"))
    finally:
        connection.close()
    return result


def _connect_postgresql(url: str, result: Probe):
    import psycopg  # noqa: PLC0415 - an engine's driver loads only when a source of that engine is read

    try:
        pinned = sources._pg_pinned(url)
    except sources.SourceUnavailable as exc:
        result.steps.append(Step("connect", False, str(exc).removeprefix("cannot connect to the source database: ")))
        return None
    try:
        connection = psycopg.connect(pinned, connect_timeout=5, application_name=sources.APPLICATION_NAME)
    except psycopg.Error as exc:
        result.steps.append(Step("connect", False, _pg_connect_problem(exc)))
        return None
    connection.autocommit = True
    connection.read_only = True
    result.steps.append(Step("connect", True, "connected"))
    return connection


# MySQL's error numbers for what a person can fix.
_MYSQL_ERRORS = {
    1045: _PG_STATES["28P01"],  # Access denied for user
    1049: _PG_STATES["3D000"],  # Unknown database
    # To a user with no rights on it, MySQL says this of a missing database too.
    1044: "permission denied: the user may not use this database, or there is no such database",
}


def _mysql_connect_problem(exc: Exception) -> str:
    code = exc.args[0] if exc.args and isinstance(exc.args[0], int) else None
    if code in _MYSQL_ERRORS:
        return _MYSQL_ERRORS[code]
    text = sources._first_line(exc)
    lowered = text.lower()
    if "ssl" in lowered or "certificate" in lowered or "tls" in lowered:
        return f"TLS: {text}"
    return f"unreachable: {text}"


def _connect_mysql(url: str, result: Probe):
    import pymysql  # noqa: PLC0415 - an engine's driver loads only when a source of that engine is read

    try:
        connection = sources.mysql_connect(url, timeout=5, read_timeout=30, raw_errors=True)
    except sources.SourceUnavailable as exc:
        result.steps.append(Step("connect", False, str(exc).removeprefix("cannot connect to the source database: ")))
        return None
    except pymysql.Error as exc:
        result.steps.append(Step("connect", False, _mysql_connect_problem(exc)))
        return None
    result.steps.append(Step("connect", True, "connected"))
    return connection


def _connect_file(url: str, result: Probe):
    try:
        if url.startswith("duckdb:"):
            connection = sources._duckdb_connect(url)
        else:
            path = sources.sqlite_path(url)
            if not path.is_file():
                raise sources.SourceUnavailable(f"the SQLite database file {path} does not exist")
            connection = sources._sqlite_connect_readonly(path)
            connection.execute("SELECT count(*) FROM sqlite_master").fetchall()  # it is a database
    except sources.SourceUnavailable as exc:
        result.steps.append(Step("connect", False, f"missing database: {exc}"))
        return None
    except Exception as exc:  # noqa: BLE001 - a file that isn't a database of that engine
        result.steps.append(Step("connect", False, f"not a database: {sources._first_line(exc)}"))
        return None
    result.steps.append(Step("connect", True, "opened"))
    return connection


def _listing_problem(text: str) -> str:
    lowered = text.lower()
    if "permission denied" in lowered or "command denied" in lowered:
        return f"permission denied: {text}"
    return text


def _read_problem(exc: Exception, label: str) -> str:
    text = sources._first_line(exc)
    # PostgreSQL's 42501; MySQL's 1142: SELECT command denied.
    denied = getattr(exc, "sqlstate", None) == "42501" or (exc.args and exc.args[0] == 1142)
    if "permission denied" in text.lower() or denied:
        return f"permission denied: the user may not read {label}"
    return f"reading {label} failed: {text}"
