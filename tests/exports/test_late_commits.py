"""Incremental exports under concurrent writers that commit late: four writers, half of
them holding each transaction open for 0.5-3 s, insert during six runs, then two runs
after the writes stop; one run in the middle meets a stopped SFTP server. Across all
deliveries every source row appears exactly once, for an integer id cursor and for a
`clock_timestamp()` cursor with no safety lag, on PostgreSQL, MariaDB and SQLite."""

from __future__ import annotations

import csv
import io
import random
import signal
import sqlite3
import subprocess
import threading
import time

import psycopg
import pytest

from exports.actions import queue_run
from exports.models import Database, Export, IncrementalMemory, Run, refresh_datasets
from tests.conftest import mysql_admin, start_worker_in_background

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

SEED_ROWS = 2_000
ROWS_PER_TRANSACTION = 50


class Writer(threading.Thread):
    """Inserts ROWS_PER_TRANSACTION rows per transaction until stopped; a slow writer
    holds each transaction open for 0.5-3 s after its insert, as an application that
    inserts and then does more work."""

    def __init__(self, insert_batch, *, slow: bool, seed: int):
        super().__init__(daemon=True)
        self.insert_batch = insert_batch
        self.slow = slow
        self.random = random.Random(seed)
        self.stopped = threading.Event()
        self.transactions = 0
        self.error: BaseException | None = None

    def hold(self) -> None:
        if self.slow:
            time.sleep(self.random.uniform(0.5, 3.0))

    def run(self) -> None:
        try:
            while not self.stopped.is_set():
                self.insert_batch(self.hold)
                self.transactions += 1
                # A pause long enough for SQLite's busy handler to let another writer in.
                time.sleep(self.random.uniform(0.05, 0.3))
        except BaseException as exc:  # noqa: BLE001 - handed to the test, which fails with it
            self.error = exc


class PostgresTable:
    def __init__(self, url: str, name: str, cursor: str):
        self.url, self.name = url, name
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(
                f'CREATE TABLE "{name}" (id bigserial PRIMARY KEY, '
                "created_at timestamptz NOT NULL DEFAULT clock_timestamp(), writer int NOT NULL, payload text)"
            )
            if cursor == "created_at":
                conn.execute(f'CREATE INDEX ON "{name}" (created_at)')
            conn.execute(
                f'INSERT INTO "{name}" (writer, payload) '
                f"SELECT 0, 'seed ' || n FROM generate_series(1, {SEED_ROWS}) n"
            )

    def writer(self, number: int, *, slow: bool) -> Writer:
        conn = psycopg.connect(self.url, autocommit=True)

        def insert_batch(hold):
            with conn.transaction():
                conn.execute(
                    f'INSERT INTO "{self.name}" (writer, payload) '
                    f"SELECT {number}, 'row ' || n FROM generate_series(1, {ROWS_PER_TRANSACTION}) n"
                )
                hold()

        return Writer(insert_batch, slow=slow, seed=number)

    def ids(self) -> list[int]:
        with psycopg.connect(self.url) as conn:
            return [row[0] for row in conn.execute(f'SELECT id FROM "{self.name}" ORDER BY id')]

    def database(self) -> Database:
        return Database.objects.create(name="Orders PG", url=self.url)


class MysqlTable:
    """InnoDB: AUTO_INCREMENT ids and CURRENT_TIMESTAMP(6), both taken at the insert
    (inside the transaction), committed whenever the writer commits."""

    def __init__(self, url: str, name: str, cursor: str):
        self.url, self.name = url, name
        with mysql_admin(url) as conn, conn.cursor() as c:
            c.execute(
                f"CREATE TABLE `{name}` (id BIGINT AUTO_INCREMENT PRIMARY KEY, "
                "created_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6), writer INT NOT NULL, payload TEXT)"
            )
            if cursor == "created_at":
                c.execute(f"CREATE INDEX by_created_at ON `{name}` (created_at)")
            c.executemany(
                f"INSERT INTO `{name}` (writer, payload) VALUES (0, %s)", [(f"seed {n}",) for n in range(SEED_ROWS)]
            )

    def writer(self, number: int, *, slow: bool) -> Writer:
        conn = mysql_admin(self.url)

        def insert_batch(hold):
            conn.begin()
            try:
                with conn.cursor() as c:
                    c.executemany(
                        f"INSERT INTO `{self.name}` (writer, payload) VALUES (%s, %s)",
                        [(number, f"row {n}") for n in range(ROWS_PER_TRANSACTION)],
                    )
                hold()
                conn.commit()
            except BaseException:
                conn.rollback()
                raise

        return Writer(insert_batch, slow=slow, seed=number)

    def ids(self) -> list[int]:
        with mysql_admin(self.url) as conn, conn.cursor() as c:
            c.execute(f"SELECT id FROM `{self.name}` ORDER BY id")
            return [row[0] for row in c.fetchall()]

    def database(self) -> Database:
        return Database.objects.create(name="Orders MariaDB", url=self.url)


class SqliteTable:
    def __init__(self, path, name: str, cursor: str):
        self.path, self.name = path, name
        with sqlite3.connect(path) as conn:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(
                f"CREATE TABLE {name} (id INTEGER PRIMARY KEY AUTOINCREMENT, "
                "created_at TIMESTAMP NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')), "
                "writer INTEGER NOT NULL, payload TEXT)"
            )
            conn.executemany(
                f"INSERT INTO {name} (writer, payload) VALUES (0, ?)", [(f"seed {n}",) for n in range(SEED_ROWS)]
            )

    def writer(self, number: int, *, slow: bool) -> Writer:
        conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=60)

        def insert_batch(hold):
            conn.execute("BEGIN")
            try:
                conn.executemany(
                    f"INSERT INTO {self.name} (writer, payload) VALUES (?, ?)",
                    [(number, f"row {n}") for n in range(ROWS_PER_TRANSACTION)],
                )
                hold()
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise

        return Writer(insert_batch, slow=slow, seed=number)

    def ids(self) -> list[int]:
        with sqlite3.connect(self.path) as conn:
            return [row[0] for row in conn.execute(f"SELECT id FROM {self.name} ORDER BY id")]

    def database(self) -> Database:
        return Database.objects.create(name="Orders SQLite", url=f"sqlite:///{self.path}")


@pytest.fixture
def long_lived_worker(monkeypatch):
    """One real RQ worker for the whole test (a burst worker per run would start nine),
    with no margins and a short wait: the transactions the source reports protect the
    rows, and runs often settle at an earlier run's mark (200 ids cover a sequence value
    taken just before its transaction's id is)."""
    monkeypatch.setenv("EXPORT_LOOKBACK_SECONDS", "0")
    monkeypatch.setenv("EXPORT_LOOKBACK_IDS", "200")
    monkeypatch.setenv("EXPORT_SETTLE_SECONDS", "1")
    process = start_worker_in_background(burst=False)
    yield process
    process.send_signal(signal.SIGTERM)
    try:
        process.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()


def finished(run: Run, timeout: float = 120) -> Run:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run.refresh_from_db()
        if not run.is_active:
            return run
        time.sleep(0.05)
    raise AssertionError(f"run {run.id} is still {run.status} after {timeout} s")


def delivered_ids(run: Run, external_sftp) -> list[int]:
    """The ids in the run's files, read back from the SFTP server."""
    stored = {item.path: item.data for item in external_sftp.objects(run.delivery_folder)}
    ids = []
    for run_file in run.files.order_by("part"):
        text = stored[run_file.path].decode()
        ids += [int(row["id"]) for row in csv.DictReader(io.StringIO(text))]
    return ids


@pytest.mark.parametrize("cursor", ["id", "created_at"])
@pytest.mark.parametrize("engine", ["postgresql", "mariadb", "sqlite"])
def test_every_row_is_delivered_exactly_once_while_writers_commit_late(
    users, engine, cursor, tmp_path, external_sftp, long_lived_worker, request
):
    owner = users["owner"]
    if engine == "postgresql":
        table = PostgresTable(request.getfixturevalue("pg_source_url"), request.getfixturevalue("pg_table"), cursor)
    elif engine == "mariadb":
        table = MysqlTable(request.getfixturevalue("mysql_source_url"), "orders", cursor)
    else:
        table = SqliteTable(tmp_path / "orders.sqlite3", "orders", cursor)
    database = table.database()
    refresh_datasets(database)
    dataset = database.datasets.get(name=table.name)
    assert dataset.primary_key == ["id"]
    export = Export.objects.create(
        name=f"Orders feed by {cursor}",
        owner=owner,
        dataset=dataset,
        connector=external_sftp.connector(owner),
        export_type=Export.Type.INCREMENTAL,
        cursor_column=cursor,
        safety_lag_seconds=0,
        file_format=Export.Format.CSV,
        compression=Export.Compression.NONE,
        rows_per_file=1_000,
    )
    runs = [finished(queue_run(export, user=owner))]  # the first run: everything so far
    writers = [table.writer(number, slow=number % 2 == 0) for number in range(1, 5)]
    for writer in writers:
        writer.start()
    try:
        for number in range(1, 7):
            time.sleep(1.0)
            if number == 3:
                external_sftp.service.stop()  # this run's delivery fails
            try:
                runs.append(finished(queue_run(export, user=owner)))
            finally:
                if number == 3:
                    external_sftp.start()
    finally:
        for writer in writers:
            writer.stopped.set()
        for writer in writers:
            writer.join(timeout=30)
    for writer in writers:
        assert writer.error is None, writer.error
        assert writer.transactions >= 2, "a writer hardly ran: the test proves nothing"
    for _ in range(2):
        runs.append(finished(queue_run(export, user=owner)))

    failed = runs[3]
    assert failed.status == Run.Status.FAILED
    assert failed.error_code == Run.ErrorCode.DESTINATION_UNREACHABLE
    succeeded = [run for number, run in enumerate(runs) if number != 3]
    for run in succeeded:
        assert run.status == Run.Status.SUCCEEDED, f"{run.error_code}: {run.error_message}"
        assert run.warning == ""

    seen = [row_id for run in succeeded for row_id in delivered_ids(run, external_sftp)]
    expected = table.ids()
    assert len(expected) > SEED_ROWS + 8 * ROWS_PER_TRANSACTION
    assert len(runs) == 9
    duplicated = len(seen) - len(set(seen))
    missing = sorted(set(expected) - set(seen))
    assert (duplicated, len(missing)) == (0, 0), f"{duplicated} rows duplicated, {len(missing)} never delivered"
    assert sorted(seen) == expected
    assert sum(run.row_count for run in succeeded) == len(expected)
    # Every run after the first re-read a lookback and counted the late rows it caught.
    assert runs[0].lookback_from is None
    assert all(run.lookback_from is not None and run.late_rows is not None for run in succeeded[1:])
    if engine != "sqlite":
        # The slow writers' rows commit behind newer ones: some must have come late.
        assert sum(run.late_rows for run in succeeded[1:]) > 0
    export.refresh_from_db()
    memory = IncrementalMemory.objects.get(export=export)
    assert memory.watermark == export.watermark["value"]
    assert memory.history[-1]["high"] == memory.watermark


@pytest.mark.parametrize(
    ("cursor", "warning"),
    [
        ("created_at", "is older than the lookback (1 s): rows it commits with created_at more than 1 s old"),
        ("id", "which this first run could not see, was still open after 1 s: rows it commits with id at or below"),
    ],
)
@pytest.mark.parametrize("engine", ["postgresql", "mariadb"])
def test_a_transaction_open_longer_than_the_lookback_is_reported(
    users, engine, monkeypatch, worker, cursor, warning, request
):
    monkeypatch.setenv("EXPORT_LOOKBACK_MAX_SECONDS", "1")
    monkeypatch.setenv("EXPORT_SETTLE_SECONDS", "1")
    if engine == "postgresql":
        table = PostgresTable(request.getfixturevalue("pg_source_url"), request.getfixturevalue("pg_table"), cursor)
        forgotten = psycopg.connect(table.url)
        relation = f'"{table.name}"'
    else:
        table = MysqlTable(request.getfixturevalue("mysql_source_url"), "orders", cursor)
        forgotten = mysql_admin(table.url)
        forgotten.begin()
        relation = f"`{table.name}`"
    database = table.database()
    refresh_datasets(database)
    export = Export.objects.create(
        name="Orders feed",
        owner=users["owner"],
        dataset=database.datasets.get(name=table.name),
        export_type=Export.Type.INCREMENTAL,
        cursor_column=cursor,
    )
    try:  # a BEGIN left open in a console
        forgotten.cursor().execute(f"INSERT INTO {relation} (writer, payload) VALUES (9, 'late')")
        time.sleep(2.5)
        run = queue_run(export, user=users["owner"])
        worker()
        run.refresh_from_db()
    finally:
        forgotten.rollback()
        forgotten.close()
    assert run.status == Run.Status.SUCCEEDED, run.error_message
    assert run.row_count == SEED_ROWS
    assert warning in run.warning
