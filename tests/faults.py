"""`make faults`: the product as `make run` starts it, driven through real faults.

A product starts (`manage.py up`: web, worker, scheduler, hosted SFTP, under its
supervisor) on a Redis of its own and PostgreSQL (SQLite without one), with moto as S3
behind a TCP proxy that can cut the store off. Each scenario launches runs, breaks
something while they execute, and then reads what reached the stores:

- delivered exactly once: one run of the export succeeded, and the store holds exactly
  its files, with their SHA-256, and (S3) its one TNF;
- duplicates: a second successful run, or files on the store that no successful run lists;
- partial TNFs: a TNF that lists a file the store doesn't hold whole;
- failed: exports that no run delivered in the end.

`python -m tests.faults` runs the full suite and writes the table into
docs/reliability.md; `--short` runs a few of each (tests/test_faults.py, in `make test`).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from pathlib import Path

import boto3
import psycopg
import redis

from tests import services
from tests.services import children_of, events_file

BASE_DIR = Path(__file__).resolve().parent.parent
REPORT = BASE_DIR / "docs" / "reliability.md"
BUCKET = "faults"
ROWS = 500_000
PG_URL = os.environ.get("EXPORTSITE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")


@dataclass
class Row:
    scenario: str
    runs: int | str = 0
    exactly_once: int | str = 0
    duplicates: int = 0
    partial_tnfs: int | str = 0
    failed: int | str = 0
    notes: list[str] = field(default_factory=list)

    def cells(self) -> list[str]:
        last = "; ".join(str(part) for part in (self.failed, *self.notes) if part != "")
        figures = (self.runs, self.exactly_once, self.duplicates, self.partial_tnfs)
        return [self.scenario, *(str(value) for value in figures), last]


def wait_until(condition: Callable[[], object], timeout: float, what: str, every: float = 0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(every)
    raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")


# --- a store that can be cut off ------------------------------------------------------------


class Proxy:
    """A TCP forwarder to a local port. `cut()` closes its port and every connection
    through it (the store is unreachable: connections are refused); `restore()` opens
    the same port again."""

    def __init__(self, target: int):
        self.target = target
        self.port = _free_port()
        self._server: socket.socket | None = None
        self._connections: list[socket.socket] = []
        self._lock = threading.Lock()
        self.restore()

    def restore(self) -> None:
        server = socket.socket()
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", self.port))
        server.listen(64)
        self._server = server
        threading.Thread(target=self._accept, args=(server,), daemon=True).start()

    def cut(self) -> None:
        with self._lock:
            server, self._server = self._server, None
            connections, self._connections = self._connections, []
        if server is not None:
            server.close()
        for conn in connections:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            conn.close()

    def _accept(self, server: socket.socket) -> None:
        while True:
            try:
                client, _ = server.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target))
            except OSError:
                client.close()
                continue
            with self._lock:
                if self._server is not server:
                    client.close()
                    upstream.close()
                    return
                self._connections += [client, upstream]
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for conn in (source, sink):
                try:
                    conn.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# --- the product ------------------------------------------------------------------------------


def _command_line(pid: int) -> list[bytes]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return []


class Product:
    """`manage.py up` in a folder of its own, and this process set up as one more of its
    machines (same data folder, database and Redis) to create exports and read runs."""

    def __init__(self, folder: Path, *, retry_backoff: int):
        from exportsite import embedded

        self.folder = folder
        self.redis_port = _free_port()
        self.redis = embedded.start_redis(self.redis_port, folder / "redis")
        self.database = ""
        try:
            name = f"exportsite_faults_{uuid.uuid4().hex[:8]}"
            with psycopg.connect(PG_URL, autocommit=True, connect_timeout=3) as conn:
                conn.execute(f'CREATE DATABASE "{name}"')
            self.database = name
            database_url = PG_URL.rsplit("/", 1)[0] + f"/{name}"
        except Exception as exc:  # any failure: no PostgreSQL here
            if os.environ.get("CI"):
                raise
            print(f"no PostgreSQL ({exc}); the product runs on SQLite and the source scenario is skipped")
            database_url = f"sqlite:///{folder / 'var' / 'db.sqlite3'}"
        self.env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("EXPORTSITE_", "EXPORT_", "DJANGO_SETTINGS_MODULE", "DATABASE_URL", "REDIS_URL"))
        }
        self.port = _free_port()
        self.env.update(
            DJANGO_SETTINGS_MODULE="exportsite.settings",
            EXPORTSITE_DATA_DIR=str(folder / "var"),
            EXPORTSITE_SFTP_ROOT=str(folder / "sftp"),
            DATABASE_URL=database_url,
            REDIS_URL=f"redis://127.0.0.1:{self.redis_port}/0",
            PORT=str(self.port),
            EXPORTSITE_SFTPD_PORT=str(_free_port()),
            EXPORTSITE_ADMIN_PASSWORD="faults-admin-password",
            EXPORTSITE_ALLOWED_NETWORKS="127.0.0.0/8",
            SCHEDULER_TICK_SECONDS="1",
            EXPORT_HEARTBEAT_SECONDS="1",
            EXPORT_HEARTBEAT_TIMEOUT="10",
            EXPORT_REQUEUE_AFTER="5",
            EXPORT_RETRY_BACKOFF=str(retry_backoff),
            EXPORT_MAX_ATTEMPTS="6",
            EXPORT_DELIVERY_ATTEMPTS="2",
            EXPORT_DELIVERY_BACKOFF="1",
            DESTINATION_CONNECT_TIMEOUT="3",
            EMAIL_BACKEND="django.core.mail.backends.locmem.EmailBackend",
            PYTHONUNBUFFERED="1",
        )
        # This process is one more machine of the product: exactly its environment.
        os.environ.clear()
        os.environ.update(self.env)
        import django

        django.setup()
        from django.core.management import call_command

        call_command("migrate", interactive=False, verbosity=0)
        self.log = folder / "up.log"
        self.up = subprocess.Popen(
            [sys.executable, "manage.py", "up"],
            cwd=BASE_DIR,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=self.log.open("w"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            wait_until(lambda: "press Ctrl-C to stop" in self.log.read_text(), 180, "the product to start", every=0.5)
            wait_until(self.worker, 30, "the worker")
        except BaseException:
            print(self.log.read_text()[-3000:])
            self.stop()
            raise

    def _child(self, test: Callable[[list[bytes]], bool]) -> int | None:
        for pid in children_of(self.up.pid):
            if test(_command_line(pid)):
                return pid
        return None

    def worker(self) -> int | None:
        """The worker that runs exports (the other one only tests connections)."""
        from django.conf import settings

        return self._child(lambda cmd: b"rqworker" in cmd and settings.EXPORTS_QUEUE.encode() in cmd)

    def horse(self) -> int | None:
        worker = self.worker()
        horses = children_of(worker) if worker else []
        return horses[0] if horses else None

    def scheduler(self) -> int | None:
        return self._child(lambda cmd: b"scheduler" in cmd)

    def flushall(self) -> None:

        redis.Redis(port=self.redis_port).flushall()

    def stop(self) -> None:
        from exportsite import embedded

        if self.up.poll() is None:
            os.killpg(self.up.pid, signal.SIGINT)
            try:
                self.up.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(self.up.pid, signal.SIGKILL)
        embedded.stop(self.redis)
        if self.database:
            from django.db import connections

            connections.close_all()

            with psycopg.connect(PG_URL, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)')


# --- the suite ---------------------------------------------------------------------------------


class Suite:
    def __init__(self, product: Product, moto_port: int):
        from django.contrib.auth import get_user_model

        from connectors.models import Connector
        from exports.models import Database, refresh_datasets

        self.product = product
        self.rows: list[Row] = []
        self.owner = get_user_model().objects.get(username="admin")
        self.proxy = Proxy(moto_port)
        self.s3_endpoint = f"http://127.0.0.1:{self.proxy.port}"
        path = events_file(product.folder / "events.sqlite3", ROWS, payload_bytes=60)
        database = Database.objects.create(name="Events", url=f"sqlite:///{path}")
        refresh_datasets(database)
        self.dataset = database.datasets.get(name="events")

        self.s3 = boto3.client(
            "s3",
            endpoint_url=f"http://127.0.0.1:{moto_port}",
            aws_access_key_id="faults",
            aws_secret_access_key="faults",
            region_name="us-east-1",
        )
        self.s3.create_bucket(Bucket=BUCKET)
        self.connector = Connector(
            name="S3 through a proxy",
            kind=Connector.Kind.S3,
            owner=self.owner,
            base_path="faults",
            options={
                "bucket": BUCKET,
                "region": "us-east-1",
                "access_key_id": "faults",
                "endpoint_url": self.s3_endpoint,
            },
        )
        self.connector.set_secrets({"secret_access_key": "faults"})
        self.connector.save()
        # How long a run takes, to break the next ones at a random moment of theirs.
        self.took = {s3: self._warm_up(s3) for s3 in (False, True)}

    def _warm_up(self, s3: bool) -> float:
        from exports.models import Run

        export = self.export(f"warm-up {'S3' if s3 else 'Desktop'}", s3=s3)
        run = self.launch(export)
        self.settled([export], 120)
        run.refresh_from_db()
        assert run.status == Run.Status.SUCCEEDED, run.error_message
        return (run.finished_at - run.started_at).total_seconds()

    def sleep_into(self, run, s3: bool) -> None:
        """Until a random moment of the run, from its start: reading, writing or delivering."""
        from exports.models import Run

        started = Run.objects.filter(id=run.id).values_list("started_at", flat=True).first()
        moment = started.timestamp() + random.uniform(0.05, 0.85) * self.took[s3] if started else time.time()
        time.sleep(max(0.0, moment - time.time()))

    # Exports and what they left -------------------------------------------------------------

    def export(self, name: str, *, s3: bool, dataset=None):
        from exports.models import Export

        return Export.objects.create(
            name=name,
            owner=self.owner,
            dataset=dataset or self.dataset,
            connector=self.connector if s3 else None,
            rows_per_file=ROWS // 4,
            compression=Export.Compression.GZIP,
        )

    def launch(self, export):
        from exports.actions import queue_run

        return queue_run(export, user=self.owner)

    def settled(self, exports, timeout: float) -> None:
        """Every export's latest run ended, and no retry is left to come."""
        from django.conf import settings

        from exports.actions import AUTO_RETRY
        from exports.models import Run

        def done() -> bool:
            for export in exports:
                latest = Run.objects.filter(export=export).order_by("-queued_at").first()
                if latest is None or latest.status in Run.ACTIVE:
                    return False
                if (
                    latest.status == Run.Status.FAILED
                    and latest.error_code in AUTO_RETRY
                    and latest.attempt < settings.EXPORT_MAX_ATTEMPTS
                ):
                    return False  # its retry comes after the back-off
            return True

        wait_until(done, timeout, "the runs to settle", every=0.5)

    def verdict(self, export) -> tuple[bool, int, int, bool]:
        """(delivered exactly once, duplicates, partial TNFs, failed) for one export."""
        from exports.models import Run

        succeeded = list(Run.objects.filter(export=export, status=Run.Status.SUCCEEDED).prefetch_related("files"))
        failed = not succeeded
        duplicates = max(0, len(succeeded) - 1)
        expected = {f.path: f.sha256 for run in succeeded for f in run.files.all()}
        if export.connector_id:
            stored, tnfs = self._s3_files(f"faults/{export.id}/")
        else:
            stored, tnfs = self._desktop_files(export), {}
        extra = set(stored) - set(expected)
        duplicates += len(extra)
        whole = all(stored.get(path) == sha for path, sha in expected.items())
        partial_tnfs = 0
        for document in tnfs.values():
            listed = document.get("Files", [])
            if not all(stored.get(item["Path"]) == item["Sha256"] for item in listed):
                partial_tnfs += 1
        if export.connector_id:
            expected_tnfs = {run.tnf_path for run in succeeded}
            duplicates += len(set(tnfs) - expected_tnfs)
            whole = whole and set(tnfs) == expected_tnfs
        exactly_once = len(succeeded) == 1 and whole and not extra
        return exactly_once, duplicates, partial_tnfs, failed

    def _s3_files(self, prefix: str) -> tuple[dict[str, str], dict[str, dict]]:
        files: dict[str, str] = {}
        tnfs: dict[str, dict] = {}
        listed = self.s3.list_objects_v2(Bucket=BUCKET, Prefix=prefix).get("Contents", [])
        for item in listed:
            body = self.s3.get_object(Bucket=BUCKET, Key=item["Key"])["Body"].read()
            if "/tnfs/" in item["Key"]:
                tnfs[item["Key"]] = json.loads(body)
            else:
                files[item["Key"]] = hashlib.sha256(body).hexdigest()
        return files, tnfs

    def _desktop_files(self, export) -> dict[str, str]:
        from django.conf import settings

        root = Path(settings.STORAGES["exports"]["OPTIONS"]["location"])
        folder = root / str(export.id)
        if not folder.exists():
            return {}
        return {
            str(path.relative_to(root)): hashlib.sha256(path.read_bytes()).hexdigest()
            for path in folder.rglob("*")
            if path.is_file()
        }

    def tally(self, scenario: str, exports, notes: list[str] | None = None) -> Row:
        row = Row(scenario, runs=len(exports), notes=list(notes or []))
        exactly = failed = partial = 0
        for export in exports:
            once, duplicates, partial_tnfs, lost = self.verdict(export)
            exactly += once
            row.duplicates += duplicates
            partial += partial_tnfs
            failed += lost
        row.exactly_once, row.partial_tnfs, row.failed = exactly, partial, failed
        self.rows.append(row)
        print(" | ".join(row.cells()), flush=True)
        return row

    def wait_running(self, run, timeout: float = 60) -> bool:
        """Until the run is running (True), or ended first (False)."""
        from exports.models import Run

        def state():
            status = Run.objects.filter(id=run.id).values_list("status", flat=True).first()
            return status if status != Run.Status.QUEUED else None

        return wait_until(state, timeout, "the run to start") == Run.Status.RUNNING

    def first_attempt_code(self, export) -> str:
        from exports.models import Run

        first = Run.objects.filter(export=export).order_by("queued_at").first()
        return first.error_code if first else ""

    # Scenarios ---------------------------------------------------------------------------------

    def strike(self, name: str, count: int, target: Callable[[], int | None], sig: int, after=None):
        """Launch runs, Desktop and S3 in turn, and at a random moment of each send `sig`
        to the process `target()` picks. A strike that came after its run ended tests
        nothing: it doesn't count, and is done again. The exports struck, the RQ worker
        that held each run when struck, and the misses."""
        from exports.models import Run

        exports, held_by, missed = [], {}, 0
        while len(exports) < count:
            s3 = len(exports) % 2 == 1
            export = self.export(f"{name} {len(exports)}", s3=s3)
            run = self.launch(export)
            struck = False
            if self.wait_running(run):
                self.sleep_into(run, s3)
                pid = target()
                if pid is not None and not self._ended(run):
                    held_by[export.id] = Run.objects.get(id=run.id).worker
                    os.kill(pid, sig)
                    struck = True
                    if after is not None:
                        after(pid)
            self.settled([export], 180)
            self._learn(export, s3)
            if struck:
                exports.append(export)
            else:
                missed += 1
        return exports, held_by, missed

    def _learn(self, export, s3: bool) -> None:
        """Runs get faster once the caches are warm: aim at what they take now."""
        from exports.models import Run

        done = Run.objects.filter(export=export, status=Run.Status.SUCCEEDED).order_by("-finished_at").first()
        if done is not None and done.started_at and done.finished_at:
            self.took[s3] = (self.took[s3] + (done.finished_at - done.started_at).total_seconds()) / 2

    def _replaced(self, worker: int) -> None:
        wait_until(lambda: (self.product.worker() or worker) != worker, 120, "the supervisor's new worker")

    @staticmethod
    def _missed(missed: int) -> list[str]:
        return [f"{missed} strikes came after their run ended and were done again"] if missed else []

    def horse_kills(self, count: int) -> None:
        """SIGKILL of the work horse at a random moment of the run."""
        exports, _held_by, missed = self.strike("horse", count, self.product.horse, signal.SIGKILL)
        codes = {self.first_attempt_code(export) for export in exports}
        self.tally(
            f"SIGKILL of the work horse at a random moment, Desktop and S3, ×{count}",
            exports,
            [f"first attempts: {', '.join(sorted(codes))}", *self._missed(missed)],
        )

    def worker_kills(self, count: int) -> None:
        """SIGKILL of the whole worker process: its work horse finishes the run, and the
        supervisor starts a new worker."""
        exports, _held_by, missed = self.strike(
            "worker", count, self.product.worker, signal.SIGKILL, after=self._replaced
        )
        self.tally(
            f"SIGKILL of the whole worker process ×{count} (the supervisor restarts it)",
            exports,
            self._missed(missed),
        )

    def deploys(self, count: int) -> None:
        """SIGTERM of the worker mid-run: the run goes back to the queue, no attempt counted."""
        from exports.models import Run

        exports, held_by, missed = self.strike(
            "deploy", count, self.product.worker, signal.SIGTERM, after=self._replaced
        )
        runs = Run.objects.filter(export__in=exports)
        counted = sum(1 for run in runs if run.attempt != 1)
        # Put back: the run that delivered is the struck one, finished by another worker.
        put_back = sum(1 for run in runs if run.status == Run.Status.SUCCEEDED and run.worker != held_by[run.export_id])
        self.tally(
            f"SIGTERM of a worker mid-run (a deploy) ×{count}",
            exports,
            [
                f"{_count(counted, 'attempt', none='no')} counted, {_count(runs.count(), 'run')} in all",
                f"{put_back} put back mid-run, {len(exports) - put_back} finished delivering first",
                *self._missed(missed),
            ],
        )

    def flushall(self, count: int) -> None:
        exports = [self.export(f"flush {n}", s3=n % 2 == 1) for n in range(count)]
        for export in exports:
            self.launch(export)
        time.sleep(0.5)
        self.product.flushall()
        self.settled(exports, 600)
        self.tally(f"Redis FLUSHALL with {count} runs queued", exports)

    def source_cuts(self, count: int) -> None:
        """pg_terminate_backend of the reading session mid-run (a restart, a failover)."""
        if not self.product.database:
            self.rows.append(Row(f"Source connection terminated mid-run ×{count}", "skipped: no PostgreSQL"))
            return

        from exports.models import Database, refresh_datasets

        table = f"faults_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(PG_URL, autocommit=True) as conn:
            conn.execute(
                f'CREATE TABLE "{table}" AS SELECT g AS id, md5(g::text) || md5((g + 1)::text) AS payload '
                f"FROM generate_series(1, {ROWS}) AS g"
            )
            conn.execute(
                f'CREATE FUNCTION "{table}_pace"(i int) RETURNS int LANGUAGE plpgsql AS $$ '
                "BEGIN IF i % 10000 = 0 THEN PERFORM pg_sleep(0.1); END IF; RETURN i; END $$"
            )
            conn.execute(f'CREATE VIEW "{table}_v" AS SELECT "{table}_pace"(id) AS id, payload FROM "{table}"')
        try:
            database = Database.objects.create(name="Warehouse", url=PG_URL)
            refresh_datasets(database)
            dataset = database.datasets.get(name=f"{table}_v")
            exports, codes = [], set()
            for n in range(count):
                export = self.export(f"source {n}", s3=n % 2 == 1, dataset=dataset)
                run = self.launch(export)
                self.wait_running(run)
                time.sleep(random.uniform(0.2, 1.0))
                with psycopg.connect(PG_URL, autocommit=True) as admin:
                    admin.execute(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                        "WHERE pid <> pg_backend_pid() AND query LIKE %s",
                        [f'%"{table}_v"%'],
                    )
                exports.append(export)
                self.settled([export], 180)
                codes.add(self.first_attempt_code(export))
            self.tally(
                f"Source connection terminated mid-run ×{count}",
                exports,
                [f"first attempts: {', '.join(sorted(code or 'not cut (it had finished)' for code in codes))}"],
            )
        finally:
            with psycopg.connect(PG_URL, autocommit=True) as conn:
                conn.execute(f'DROP VIEW IF EXISTS "{table}_v"')
                conn.execute(f'DROP FUNCTION IF EXISTS "{table}_pace"')
                conn.execute(f'DROP TABLE IF EXISTS "{table}"')

    def store_outage(self, count: int, seconds: float) -> None:
        """The store unreachable for a while (its port closed), then back."""
        from exports.models import Run

        exports = [self.export(f"outage {n}", s3=True) for n in range(count)]
        self.proxy.cut()
        started = time.monotonic()
        for export in exports:
            self.launch(export)
        time.sleep(max(0.0, seconds - (time.monotonic() - started)))
        self.proxy.restore()
        self.settled(exports, 900)
        attempts = max(Run.objects.filter(export__in=exports).values_list("attempt", flat=True))
        self.tally(
            f"Store unreachable for {_duration(seconds)} (its port closed, then open again)",
            exports,
            [f"up to {attempts} attempts"],
        )

    def scheduler_kill(self, count: int) -> None:
        """A second scheduler ticks beside the product's; the product's is killed meanwhile."""
        from django.utils import timezone

        from exports import actions
        from exports.models import Run

        second = subprocess.Popen(
            [sys.executable, "manage.py", "scheduler"],
            cwd=BASE_DIR,
            env=self.product.env,
            stdout=subprocess.DEVNULL,
            stderr=(self.product.folder / "scheduler-2.log").open("w"),
            start_new_session=True,
        )
        try:
            start = timezone.now() + timedelta(seconds=5)
            exports = []
            for n in range(count):
                export = self.export(f"slot {n}", s3=False)
                export.schedule_start = start + timedelta(seconds=2 * n)
                export.save()
                exports.append(actions.schedule(self.owner, export))
            killed = 0
            deadline = time.monotonic() + 5 + 2 * count
            while time.monotonic() < deadline:
                time.sleep(3)
                scheduler = self.product.scheduler()
                if scheduler is not None:
                    os.kill(scheduler, signal.SIGKILL)
                    killed += 1
            wait_until(
                lambda: Run.objects.filter(export__in=exports).count() >= count, 120, "every slot's run", every=0.5
            )
            self.settled(exports, 300)
        finally:
            os.killpg(second.pid, signal.SIGTERM)
            second.wait(timeout=30)
        runs_per_slot = [
            Run.objects.filter(export=export).exclude(trigger=Run.Trigger.RETRY).count() for export in exports
        ]
        once = sum(1 for n in runs_per_slot if n == 1)
        row = Row(
            "Scheduler killed; a second scheduler keeps ticking",
            runs="every slot once" if once == count else f"{once} of {count} slots once",
            exactly_once="",
            duplicates=sum(max(0, n - 1) for n in runs_per_slot),
            partial_tnfs="",
            failed="",
            notes=[f"{count} one-shot slots, the product's scheduler killed {killed}×"],
        )
        self.rows.append(row)
        print(" | ".join(row.cells()), flush=True)

    @staticmethod
    def _ended(run) -> bool:
        from exports.models import Run

        return Run.objects.filter(id=run.id).exclude(status__in=Run.ACTIVE).exists()


def _count(n: int, noun: str, *, none: str = "0") -> str:
    return f"{n if n else none} {noun}{'' if n == 1 or (not n and none == 'no') else 's'}"


def _duration(seconds: float) -> str:
    return f"{seconds / 60:.0f} minutes" if seconds >= 120 else f"{seconds:.0f} s"


def table(rows: list[Row]) -> str:
    lines = [
        "| scenario | runs | delivered exactly once | duplicates | partial TNFs | failed |",
        "|---|---|---|---|---|---|",
    ]
    lines += ["| " + " | ".join(row.cells()) + " |" for row in rows]
    return "\n".join(lines)


def write_report(rows: list[Row], seconds: float) -> None:
    marker = "<!-- faults table -->"
    text = REPORT.read_text()
    start, end = text.index(marker), text.rindex(marker)
    stamp = time.strftime("%Y-%m-%d", time.gmtime())
    body = f"{marker}\nMeasured by `make faults` on {stamp} ({seconds / 60:.0f} minutes):\n\n{table(rows)}\n{marker}"
    REPORT.write_text(text[:start] + body + text[end + len(marker) :])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--short", action="store_true", help="a few runs of each scenario (make test)")
    parser.add_argument("--json", action="store_true", help="print the rows as JSON at the end")
    args = parser.parse_args(argv)
    began = time.monotonic()
    folder = Path(tempfile.mkdtemp(prefix="exportsite-faults-"))
    moto = services.start_moto(folder)
    product = None
    try:
        product = Product(folder, retry_backoff=2 if args.short else 10)  # stops itself if it can't start
        suite = Suite(product, moto.port)
        if args.short:
            suite.horse_kills(2)
            suite.worker_kills(1)
            suite.deploys(1)
            suite.flushall(3)
            suite.source_cuts(1)
            suite.store_outage(1, 8)
            suite.scheduler_kill(3)
        else:
            suite.horse_kills(20)
            suite.worker_kills(10)
            suite.deploys(10)
            suite.flushall(10)
            suite.source_cuts(5)
            suite.store_outage(5, 120)
            suite.scheduler_kill(10)
        print()
        print(table(suite.rows))
        if not args.short:
            write_report(suite.rows, time.monotonic() - began)
        if args.json:
            print("JSON " + json.dumps([asdict(row) for row in suite.rows]))
    finally:
        if product is not None:
            product.stop()
        moto.stop()
        shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
