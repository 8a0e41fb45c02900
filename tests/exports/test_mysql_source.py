"""MySQL and MariaDB sources (the machine's MariaDB, or EXPORTSITE_TEST_MYSQL_URL): a table
with every type we map, NULLs, unicode, extreme decimals and 64-bit unsigned values,
exported by a real worker to CSV, NDJSON and Parquet and read back equal to what PyMySQL,
an independent reader, reads from the server; zero dates and other values that can't be
carried fail the run naming the column; filters and incremental windows."""

from __future__ import annotations

import base64
import uuid
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import urlsplit

import pytest
from django.core import mail
from django.core.exceptions import ValidationError
from django.core.files.storage import storages
from django.urls import reverse

from exports import actions, schema_watch, sources
from exports.actions import queue_run
from exports.filters import validate_filters
from exports.models import Database, Export, Run, refresh_datasets
from tests.conftest import PASSWORD, mysql_admin
from tests.exports.readback import normalise_rows, read_file

pytestmark = pytest.mark.django_db(transaction=True)

CREATE = """
CREATE TABLE everything (
    id BIGINT UNSIGNED PRIMARY KEY,
    tiny TINYINT, flag TINYINT(1), yes_no BOOL, one_bit BIT(1), small SMALLINT, medium MEDIUMINT,
    number INT, number_u INT UNSIGNED, big BIGINT, big_u BIGINT UNSIGNED,
    single FLOAT, ratio DOUBLE, price DECIMAL(12, 2), fine DECIMAL(38, 20), whole DECIMAL(38, 0),
    huge DECIMAL(65, 30),
    code CHAR(3), label VARCHAR(200), body TEXT, latin VARCHAR(50) CHARACTER SET latin1,
    raw BLOB, bytes VARBINARY(16),
    happened_at TIMESTAMP(6) NULL, local_time DATETIME(6), day DATE, duration TIME, year_of YEAR,
    doc JSON, mood ENUM('happy', 'sad'), tags SET('a', 'b'), uid UUID
) CHARACTER SET utf8mb4
"""
ROWS = [
    # The extremes: the largest unsigned 64-bit values, 38 and 65 digits, unicode, bytes 0-255.
    "(18446744073709551615, -128, 1, TRUE, b'1', -32768, -8388608, -2147483648, 4294967295,"
    " -9223372036854775808, 18446744073709551615, 1.5, 1e300, 9999999999.99,"
    " 999999999999999999.99999999999999999999, 99999999999999999999999999999999999999,"
    " 12345678901234567890123456789012345.123456789012345678901234567891,"
    " 'Zoë', 'emoji 😀 “quoted”, a comma, a \\\\ backslash', 'two\\nlines\\ttab', 'café',"
    " x'00ff10', x'deadbeef', '2038-01-19 03:14:07.999999', '9999-12-31 23:59:59.999999', '9999-12-31',"
    " '838:59:59', 2155, '{\"a\": [1, 2.50], \"é\": null}', 'sad', 'a,b', '5b7f4a4e-8d5c-4b8e-9a43-3f1e2d6c7b8a')",
    "(1, 127, 0, FALSE, b'0', 32767, 8388607, 2147483647, 0, 9223372036854775807, 0, -3.25, -2.5e-300,"
    " -9999999999.99, -0.00000000000000000001, -99999999999999999999999999999999999999,"
    " -0.000000000000000000000000000001, '', '', '', '', x'', x'', '1970-01-01 00:00:01', '1000-01-01 00:00:00',"
    " '1000-01-01', '-838:59:59', 1901, 'null', 'happy', '', '00000000-0000-4000-8000-000000000000')",
    "(2, " + ", ".join(["NULL"] * 31) + ")",
    "(3, 0, 1, TRUE, b'1', 0, 0, 0, 1, 0, 9223372036854775808, 0, 0, 0.01, 1.5, 7, 0, 'DE', 'de', 'x', 'x',"
    " x'20', x'20', '2026-03-29 01:30:00.123456', '2026-03-29 02:30:00.5', '2026-03-29', '00:00:00.5', 2026,"
    " '[]', 'happy', 'a', NULL)",
]


def independent_rows(url: str, columns: list[dict]) -> list[dict]:
    """The rows as PyMySQL reads them, in the session time zone UTC, turned into the
    values our files carry (TIME and bits as MySQL writes them, wide decimals as text)."""
    with mysql_admin(url) as conn, conn.cursor() as cursor:
        cursor.execute("SELECT * FROM everything ORDER BY id")
        names = [d[0] for d in cursor.description]
        rows = [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
    by_name = {c["name"]: c for c in columns}
    for row in rows:
        for name, value in row.items():
            if value is None:
                continue
            if isinstance(value, timedelta):  # TIME: [-]H:MM:SS[.ffffff] up to 838 hours
                sign, seconds = ("-", -value) if value < timedelta(0) else ("", value)
                whole = int(seconds.total_seconds())
                text = f"{sign}{whole // 3600:02}:{whole % 3600 // 60:02}:{whole % 60:02}"
                row[name] = text + (f".{seconds.microseconds:06}" if seconds.microseconds else "")
            elif name == "one_bit":
                row[name] = int.from_bytes(value, "big")
            elif isinstance(value, Decimal) and by_name[name]["type"] == "text":
                row[name] = format(value, "f")
            elif isinstance(value, set):
                row[name] = ",".join(sorted(value))
            elif isinstance(value, bytes):
                row[name] = base64.b64encode(value).decode()
    return rows


def delivered_rows(path: Path, file_format: str) -> list[dict]:
    rows = read_file(path, file_format)
    for row in rows:
        for name, value in row.items():
            if isinstance(value, bytes):  # Parquet's binary; the text formats carry base64
                row[name] = base64.b64encode(value).decode()
    return sorted(rows, key=lambda row: int(row["id"]))


@pytest.fixture
def database(mysql_source_url, db) -> Database:
    with mysql_admin(mysql_source_url) as conn, conn.cursor() as cursor:
        cursor.execute(CREATE)
        cursor.execute("INSERT INTO everything VALUES " + ", ".join(ROWS))
        cursor.execute("CREATE VIEW happy AS SELECT id, label FROM everything WHERE mood = 'happy'")
        cursor.execute("CREATE VIEW everything_view AS SELECT * FROM everything")
    database = Database.objects.create(name="Shop", url=mysql_source_url)
    refresh_datasets(database)
    assert not database.refresh_error, database.refresh_error
    return database


def run_export(export: Export, worker) -> Run:
    run = queue_run(export, user=export.owner)
    worker()
    run.refresh_from_db()
    return run


def test_mysql_types_map_to_ours(database):
    everything = database.datasets.get(name="everything")
    types = {c["name"]: c["type"] for c in everything.columns}
    assert types == {
        "id": "decimal",
        "tiny": "integer",
        "flag": "boolean",
        "yes_no": "boolean",
        "one_bit": "boolean",
        "small": "integer",
        "medium": "integer",
        "number": "integer",
        "number_u": "integer",
        "big": "integer",
        "big_u": "decimal",
        "single": "float",
        "ratio": "float",
        "price": "decimal",
        "fine": "decimal",
        "whole": "decimal",
        "huge": "text",  # 65 digits: more than a decimal column holds, exact as text
        "code": "text",
        "label": "text",
        "body": "text",
        "latin": "text",
        "raw": "binary",
        "bytes": "binary",
        "happened_at": "timestamp",
        "local_time": "datetime",
        "day": "date",
        "duration": "text",
        "year_of": "integer",
        "doc": "text",
        "mood": "text",
        "tags": "text",
        "uid": "text",
    }
    assert everything.column("big_u")["precision"] == 20
    assert (everything.column("fine")["precision"], everything.column("fine")["scale"]) == (38, 20)
    assert everything.primary_key == ["id"]
    assert everything.estimated_rows is not None
    assert database.datasets.get(name="happy").kind == "view"
    assert database.engine == "mysql"


@pytest.mark.parametrize(("file_format", "compression"), [("csv", "none"), ("ndjson", "gzip"), ("parquet", "zstd")])
@pytest.mark.parametrize("dataset", ["everything", "everything_view"])  # by its key's chunks; through a cursor
def test_every_mysql_type_exports_and_reads_back_equal(users, database, worker, dataset, file_format, compression):
    everything = database.datasets.get(name=dataset)
    export = Export.objects.create(
        owner=users["owner"],
        dataset=everything,
        name="Everything",
        file_format=file_format,
        compression=compression,
        spreadsheet_safe=Export.SpreadsheetSafe.OFF,  # the values as they are, '-838:59:59' too
    )
    run = run_export(export, worker)
    assert run.status == Run.Status.SUCCEEDED, run.error_message
    assert run.row_count == len(ROWS)
    [run_file] = run.files.all()
    exported = delivered_rows(Path(storages["exports"].path(run_file.path)), file_format)
    columns = everything.columns
    expected = independent_rows(database.url, columns)
    assert normalise_rows(exported, columns) == normalise_rows(expected, columns)
    # The extremes, as text a person reads: nothing rounded, nothing shifted.
    first = exported[-1]
    assert str(first["big_u"]) == "18446744073709551615"
    assert str(first["huge"]) == "12345678901234567890123456789012345.123456789012345678901234567891"
    assert str(first["fine"]) == "999999999999999999.99999999999999999999"
    assert first["label"] == "emoji 😀 “quoted”, a comma, a \\ backslash"
    assert first["duration"] == "838:59:59"


@pytest.mark.parametrize("table", ["orders", "orders_view"])
def test_a_zero_date_fails_the_run_naming_its_column(users, mysql_source_url, worker, table):
    with mysql_admin(mysql_source_url) as conn, conn.cursor() as cursor:
        cursor.execute("SET SESSION sql_mode = ''")  # what lets an application write one
        cursor.execute("CREATE TABLE orders (id INT PRIMARY KEY, placed_on DATE, shipped_at DATETIME)")
        cursor.execute(
            "INSERT INTO orders VALUES (1, '2026-01-03', '0000-00-00 00:00:00'),"
            " (2, '2026-01-02', '2026-01-02 10:00:00')"  # the first row read: connectorx fails at once
        )
        cursor.execute("CREATE VIEW orders_view AS SELECT * FROM orders")
    database = Database.objects.create(name="Legacy", url=mysql_source_url)
    refresh_datasets(database)
    export = Export.objects.create(owner=users["owner"], dataset=database.datasets.get(name=table), name="Orders")
    run = run_export(export, worker)
    assert run.status == Run.Status.FAILED
    assert run.error_code == Run.ErrorCode.SOURCE_QUERY_FAILED
    assert f"column 'shipped_at' of {table} holds the date '0000-00-00 00:00:00'" in run.error_message
    assert "set those values to NULL or a real date, or filter them out" in run.error_message
    assert not run.files.exists()
    # Filtered out, the rest exports.
    export.filters = [{"column": "id", "operator": "eq", "value": "2"}]
    export.save()
    run = run_export(export, worker)
    assert run.status == Run.Status.SUCCEEDED, run.error_message
    assert run.row_count == 1


def test_a_tinyint_1_holding_another_number_is_refused(users, mysql_source_url, worker):
    with mysql_admin(mysql_source_url) as conn, conn.cursor() as cursor:
        cursor.execute("CREATE TABLE flags (id INT PRIMARY KEY, active TINYINT(1))")
        cursor.execute("INSERT INTO flags VALUES (1, 1), (2, 0), (3, NULL), (4, 5)")
    database = Database.objects.create(name="Flags", url=mysql_source_url)
    refresh_datasets(database)
    export = Export.objects.create(owner=users["owner"], dataset=database.datasets.get(name="flags"), name="Flags")
    run = run_export(export, worker)
    assert run.status == Run.Status.FAILED
    assert "column 'active' of flags is a TINYINT(1), exported as a boolean, but holds 5" in run.error_message


def read(dataset, columns, specs) -> list[dict]:
    filters = validate_filters(specs, dataset.columns)
    with sources.open_reader(dataset, columns, filters) as reader:
        return [row for batch in reader.batches() for row in batch.to_pylist()]


@pytest.mark.parametrize(
    ("specs", "ids"),
    [
        ([{"column": "code", "operator": "eq", "value": "DE"}], [3]),  # exact, as on PostgreSQL: not 'de'
        ([{"column": "label", "operator": "eq", "value": "DE"}], []),
        ([{"column": "label", "operator": "eq", "value": "de "}], []),  # no collation's padding: exact
        ([{"column": "code", "operator": "contains", "value": "e"}], [3]),  # case-blind, not accent-blind (Zoë)
        ([{"column": "label", "operator": "gt", "value": "emoji"}], [18446744073709551615]),
        ([{"column": "label", "operator": "contains", "value": "QUOTED”, A"}], [18446744073709551615]),
        ([{"column": "label", "operator": "contains", "value": "a \\ back"}], [18446744073709551615]),
        ([{"column": "label", "operator": "starts_with", "value": "d"}], [3]),
        ([{"column": "label", "operator": "contains", "value": "%"}], []),
        ([{"column": "code", "operator": "in", "value": "DE, Zoë"}], [3, 18446744073709551615]),
        ([{"column": "big_u", "operator": "gt", "value": "9223372036854775807"}], [3, 18446744073709551615]),
        ([{"column": "id", "operator": "eq", "value": "18446744073709551615"}], [18446744073709551615]),
        ([{"column": "fine", "operator": "lt", "value": "0"}], [1]),
        ([{"column": "price", "operator": "between", "value": "0", "value_to": "0.01"}], [3]),
        ([{"column": "flag", "operator": "eq", "value": "true"}], [3, 18446744073709551615]),
        ([{"column": "one_bit", "operator": "eq", "value": "false"}], [1]),
        (
            [
                {
                    "column": "happened_at",
                    "operator": "between",
                    "value": "2026-03-29T03:30:00+02:00",
                    "value_to": "2026-03-29T01:30:00.123456Z",
                }
            ],
            [3],
        ),
        ([{"column": "happened_at", "operator": "lt", "value": "2026-03-29T01:30:00.123456Z"}], [1]),
        ([{"column": "local_time", "operator": "gte", "value": "2026-03-29T02:30:00.5"}], [3, 18446744073709551615]),
        ([{"column": "day", "operator": "eq", "value": "2026-03-29"}], [3]),
        ([{"column": "duration", "operator": "eq", "value": "838:59:59"}], [18446744073709551615]),
        ([{"column": "uid", "operator": "starts_with", "value": "5B7F"}], [18446744073709551615]),
        ([{"column": "label", "operator": "is_empty"}], [1, 2]),
        ([{"column": "happened_at", "operator": "is_empty"}], [2]),
        ([{"column": "mood", "operator": "neq", "value": "sad"}], [1, 2, 3]),
    ],
)
def test_filters_work_on_mysql_as_on_postgresql(database, specs, ids):
    everything = database.datasets.get(name="everything")
    assert sorted(int(row["id"]) for row in read(everything, ["id"], specs)) == ids


def test_an_incremental_export_reads_windows_on_mysql(users, database, worker):
    everything = database.datasets.get(name="everything")
    with sources.open_reader(everything, ["id"], []) as reader:
        mark = reader.max_value(everything.column("happened_at"))
        assert mark.value == "2038-01-19T03:14:07.999999"
        assert reader.primary_key() == ["id"]
        horizon = reader.transaction_horizon()
        assert horizon.now.tzinfo is not None
        assert reader.oldest_transaction_id() == sources._INNODB_NO_TRANSACTION
    export = Export.objects.create(
        owner=users["owner"], dataset=everything, name="By time", export_type="incremental", cursor_column="happened_at"
    )
    first = run_export(export, worker)
    assert first.status == Run.Status.SUCCEEDED, first.error_message
    assert first.row_count == 3  # the NULL cursor is never in a window
    with mysql_admin(database.url) as conn, conn.cursor() as cursor:
        cursor.execute(
            "INSERT INTO everything (id, label, happened_at) VALUES (10, 'late', '2038-01-19 03:14:07.999999'),"
            " (11, 'new', '2038-01-19 03:14:07.999999')"
        )
    second = run_export(export, worker)
    assert second.status == Run.Status.SUCCEEDED, second.error_message
    [run_file] = second.files.all()
    rows = read_file(Path(storages["exports"].path(run_file.path)), "csv")
    assert sorted(row["label"] for row in rows) == ["late", "new"]  # same mark: caught by the lookback


def test_a_vanished_table_and_a_dropped_column_are_named(database, mysql_source_url):
    everything = database.datasets.get(name="everything")
    with mysql_admin(mysql_source_url) as conn, conn.cursor() as cursor:
        cursor.execute("ALTER TABLE everything DROP COLUMN label")
    with pytest.raises(sources.SourceQueryFailed, match=r"a column of everything no longer exists.*Unknown column"):
        read(everything, ["id", "label"], [])
    with mysql_admin(mysql_source_url) as conn, conn.cursor() as cursor:
        cursor.execute("DROP TABLE everything")
    with pytest.raises(sources.SourceQueryFailed, match="the table everything no longer exists"):
        read(everything, ["id"], [])


def test_an_unreachable_server_and_a_refused_address_are_said_so(db, mysql_server_url):
    with pytest.raises(sources.SourceUnavailable, match="cannot connect"):
        sources.discover("mysql://root@127.0.0.1:1/test")
    with pytest.raises(sources.SourceUnavailable, match="EXPORTSITE_ALLOWED_NETWORKS"):
        sources.discover("mysql://root@10.0.0.1:3306/test")


@pytest.fixture
def mysql_reader_user(mysql_source_url):
    """A user with a password that may read only the test's database."""
    name, password = f"reader_{uuid.uuid4().hex[:8]}", "s3cret:" + uuid.uuid4().hex[:8]
    database = urlsplit(mysql_source_url).path.lstrip("/")
    with mysql_admin(mysql_source_url) as conn, conn.cursor() as cursor:
        cursor.execute("CREATE TABLE customers (id INT PRIMARY KEY, email VARCHAR(100))")
        cursor.execute("INSERT INTO customers VALUES (1, 'a@example.com'), (2, 'b@example.com')")
        cursor.execute(f"CREATE USER '{name}'@'%' IDENTIFIED BY '{password}'")
        cursor.execute(f"GRANT SELECT ON `{database}`.* TO '{name}'@'%'")
    yield SimpleNamespace(name=name, password=password, database=database)
    with mysql_admin(mysql_source_url) as conn, conn.cursor() as cursor:
        cursor.execute(f"DROP USER IF EXISTS '{name}'@'%'")


def test_an_admin_tests_and_adds_a_mariadb_source_on_the_sources_page(client, users, mysql_reader_user, worker):
    assert client.login(username=users["admin"].username, password=PASSWORD)
    fields = {"name": "Shop", "engine": "mysql", "host": "127.0.0.1", "port": "",
              "database": mysql_reader_user.database, "user": mysql_reader_user.name, "password": "not-it",
              "sslmode": "", "test": "1"}  # fmt: skip

    def probe(**changes) -> str:
        response = client.post(reverse("sources-new"), {**fields, **changes})
        assert response.status_code == 200
        return response.content.decode()

    assert "Connect failed: bad credentials" in probe()
    right = probe(password=mysql_reader_user.password)
    assert "Connected: connected; 1 table or views; read a row of customers" in right
    assert mysql_reader_user.password not in right
    # To a user with rights on every database it is missing; to the rest, it may be either.
    assert "Connect failed: missing database" in probe(user="root", password="", database="nope_nope")
    for database in ("mysql", "nope_nope"):
        page = probe(password=mysql_reader_user.password, database=database)
        assert "Connect failed: permission denied: the user may not use this database, or there is no such" in page
    assert "Connect failed: unreachable" in probe(port="1")
    assert "For MySQL choose disable, require or verify-ca" in probe(sslmode="prefer")
    assert "For MySQL choose disable, require or verify-ca" in probe(sslmode="verify-full")
    assert "Connect failed: TLS" in probe(password=mysql_reader_user.password, sslmode="require")
    assert not Database.objects.filter(name="Shop").exists()

    saved = {**fields, "password": mysql_reader_user.password, "save": "1"}
    del saved["test"]
    response = client.post(reverse("sources-new"), saved)
    assert response.status_code == 302
    database = Database.objects.get(name="Shop")
    assert database.engine == "mysql"
    assert database.url.startswith(f"mysql://{mysql_reader_user.name}:")
    assert ":3306/" in database.url
    customers = database.datasets.get(name="customers")
    export = Export.objects.create(owner=users["owner"], dataset=customers, name="Customers")
    run = run_export(export, worker)
    assert run.status == Run.Status.SUCCEEDED, run.error_message
    assert run.row_count == 2
    # The user may not see InnoDB's transactions (no PROCESS): an incremental run says what to grant.
    export.export_type, export.cursor_column = Export.Type.INCREMENTAL, "id"
    export.save()
    run = run_export(export, worker)
    assert run.status == Run.Status.FAILED
    assert "needs the PROCESS privilege: GRANT PROCESS ON *.* TO the source's user" in run.error_message


def test_a_column_dropped_from_a_mysql_table_flags_its_export_and_fails_its_next_run(users, database, worker):
    everything = database.datasets.get(name="everything")
    export = actions.save_draft(
        users["owner"],
        Export(
            owner=users["owner"], dataset=everything, sandbox_id=database.sandbox_id, name="Moods",
            columns=["id", "mood"], filters=[{"column": "price", "operator": "gt", "value": "0"}],
        ),
    )  # fmt: skip
    with mysql_admin(database.url) as conn, conn.cursor() as cursor:
        cursor.execute("ALTER TABLE everything DROP COLUMN mood, MODIFY price VARCHAR(20)")
    schema_watch.refresh(database)
    export.refresh_from_db()
    assert "the column mood is gone from everything" in export.schema_problem
    assert "the column price of everything changed type, from decimal(12,2) to text" in export.schema_problem
    [message] = mail.outbox
    assert "mood" in message.subject + message.body
    run = run_export(export, worker)
    assert run.status == Run.Status.FAILED
    assert run.error_code == "SCHEMA_CHANGED"
    assert "the column mood is gone from everything" in run.error_message


def test_timestamps_are_read_in_utc_whatever_the_servers_time_zone(database, mysql_server_url):
    everything = database.datasets.get(name="everything")
    with mysql_admin(mysql_server_url) as conn, conn.cursor() as cursor:
        cursor.execute("SELECT @@GLOBAL.time_zone")
        [(was,)] = cursor.fetchall()
        cursor.execute("SET GLOBAL time_zone = '+05:00'")  # new sessions' default
    try:
        [row] = read(everything, ["happened_at"], [{"column": "id", "operator": "eq", "value": "3"}])
        with sources.open_reader(everything, ["id"], []) as reader:
            mark = reader.max_value(everything.column("happened_at"))
    finally:
        with mysql_admin(mysql_server_url) as conn, conn.cursor() as cursor:
            cursor.execute(f"SET GLOBAL time_zone = '{was}'")
    assert row["happened_at"].isoformat() == "2026-03-29T01:30:00.123456+00:00"
    assert mark.value == "2038-01-19T03:14:07.999999"


@pytest.mark.parametrize(
    ("key", "values"),
    [
        ("code VARCHAR(20), n INT, PRIMARY KEY (code, n)", lambda i: f"('{'ab'[i % 2]}é{i // 7}', {i % 5})"),
        ("day DATETIME(6), raw VARBINARY(8), PRIMARY KEY (day, raw)",
         lambda i: f"('2026-01-01 00:00:{i % 60:02}.{i:06}', x'{i:04x}')"),
        ("id BIGINT UNSIGNED PRIMARY KEY", lambda i: f"({18446744073709551615 - i * 1000})"),
    ],
)  # fmt: skip
def test_a_table_is_read_in_chunks_of_its_key_each_row_once(mysql_source_url, db, key, values):
    with mysql_admin(mysql_source_url) as conn, conn.cursor() as cursor:
        cursor.execute(f"CREATE TABLE chunked ({key}, note INT)")
        rows = [values(i) for i in range(100)]
        cursor.execute(
            "INSERT IGNORE INTO chunked VALUES " + ", ".join(f"{row[:-1]}, {i})" for i, row in enumerate(rows))
        )
        cursor.execute("SELECT note FROM chunked")
        expected = sorted(note for (note,) in cursor.fetchall())
    database = Database.objects.create(name="Chunks", url=mysql_source_url)
    refresh_datasets(database)
    chunked = database.datasets.get(name="chunked")
    filters = validate_filters([{"column": "note", "operator": "gte", "value": "0"}], chunked.columns)
    with sources.open_reader(chunked, ["note"], filters, batch_rows=3) as reader:  # chunks of 12 rows
        assert reader._keyset_key()
        batches = list(reader.batches())
    notes = [row["note"] for batch in batches for row in batch.to_pylist()]
    assert sorted(notes) == expected
    assert len(notes) == len(set(notes))
    assert len(batches) >= len(expected) // 3


def test_infinite_and_nan_filter_values_are_refused(database):
    everything = database.datasets.get(name="everything")
    for value in ("inf", "-Infinity", "nan"):
        with pytest.raises(ValidationError, match="is not a number"):
            validate_filters([{"column": "ratio", "operator": "gt", "value": value}], everything.columns)
