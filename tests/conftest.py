"""Shared fixtures: users with different rights, the demo source, a PostgreSQL source,
and a real RQ worker (a `manage.py rqworker --burst` subprocess on the test's Redis)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import unquote, urlsplit, urlunsplit

import django_rq
import psycopg
import pymysql
import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import connection
from django.urls import get_script_prefix, set_script_prefix

from exports.demo import build_demo_database
from exports.models import Database, refresh_datasets
from exportsite.embedded import free_port
from orgs.models import DEFAULT_ORGANISATION, PRODUCTION, Membership, Sandbox, default_sandbox

# One real server per store (S3, GCS, Azure Blob, SFTP), shared by the whole session.
pytest_plugins = ["tests.stores", "tests.tenants"]

BASE_DIR = Path(__file__).resolve().parent.parent
PASSWORD = "correct horse battery staple"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark what a test needs beyond this process, for `make check` to leave out:
    `browser` for tests/e2e, `emulator` for a test whose fixtures start a store's
    server (any fixture of tests/stores.py, directly or through another fixture). A test
    that picks its store at run time (`request.getfixturevalue`) marks itself."""
    e2e = BASE_DIR / "tests" / "e2e"
    for item in items:
        if item.path.is_relative_to(e2e):
            item.add_marker(pytest.mark.browser)
        # Every fixture the test needs, with where each is defined: pytest offers no
        # public way to read the definitions, so this reads its private _fixtureinfo.
        fixture_info = getattr(item, "_fixtureinfo", None)
        definitions = fixture_info.name2fixturedefs.values() if fixture_info else ()
        if any(fixturedef.func.__module__ == "tests.stores" for defs in definitions for fixturedef in defs):
            item.add_marker(pytest.mark.emulator)


@pytest.fixture(autouse=True)
def _in_default_sandbox():
    """Tests act in Default/production, as everything that existed before organisations:
    `reverse()` gives the page URLs of that sandbox (/o/default/production/exports/...),
    as it does inside a page of it. Tests of other sandboxes say so (`in_sandbox`)."""
    previous = get_script_prefix()
    set_script_prefix(f"/o/{DEFAULT_ORGANISATION}/{PRODUCTION}/")
    yield
    set_script_prefix(previous)


@contextmanager
def in_sandbox(sandbox):
    """`reverse()` gives the page URLs of `sandbox` in this block."""
    previous = get_script_prefix()
    set_script_prefix(f"/o/{sandbox.organisation.slug}/{sandbox.slug}/")
    try:
        yield
    finally:
        set_script_prefix(previous)


def member(user, organisation, role: str):
    Membership.objects.update_or_create(user=user, organisation=organisation, defaults={"role": role})
    return user


@pytest.fixture
def users(db):
    """Members of the Default organisation: owner and teammate are marketers; viewer,
    staff and nobody are viewers (nobody owns nothing); admin is an admin; superuser is
    platform staff, a member of nothing."""
    User = get_user_model()
    created = {
        "owner": User.objects.create_user("alice", "alice@example.com", PASSWORD),
        "teammate": User.objects.create_user("bob", "bob@example.com", PASSWORD),
        "viewer": User.objects.create_user("vera", "vera@example.com", PASSWORD),
        "staff": User.objects.create_user("carol", "carol@example.com", PASSWORD, is_staff=True),
        "admin": User.objects.create_user("ada", "ada@example.com", PASSWORD),
        "superuser": User.objects.create_superuser("root", "root@example.com", PASSWORD),
        "nobody": User.objects.create_user("nemo", "nemo@example.com", PASSWORD),
    }
    default = Sandbox.objects.get(pk=default_sandbox()).organisation
    for name, role in ROLE_OF.items():
        member(created[name], default, role)
    return created


@pytest.fixture
def destination_admins(users):
    """For tests of destinations rather than of roles: owner and teammate are admins, who
    manage destinations (marketers only use them; tests/connectors/test_views.py)."""
    default = Sandbox.objects.get(pk=default_sandbox()).organisation
    for name in ("owner", "teammate"):
        member(users[name], default, "admin")
    return users


ROLE_OF = {
    "owner": "marketer",
    "teammate": "marketer",
    "viewer": "viewer",
    "staff": "viewer",
    "admin": "admin",
    "nobody": "viewer",
}


@pytest.fixture(scope="session")
def demo_path(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("demo") / "demo_crm.sqlite3"
    build_demo_database(path, profiles=400, interactions=5_000)
    return path


@pytest.fixture
def demo_database(db, demo_path) -> Database:
    database = Database.objects.create(name="Demo CRM", url=f"sqlite:///{demo_path}")
    refresh_datasets(database)
    return database


@pytest.fixture
def interactions(demo_database):
    return demo_database.datasets.get(name="interactions")


@pytest.fixture
def profiles(demo_database):
    return demo_database.datasets.get(name="profiles")


def _test_database_url() -> str:
    """The URL of the database this test runs on, for worker subprocesses."""
    config = connection.settings_dict
    if config["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{config['NAME']}"
    password = f":{config['PASSWORD']}" if config.get("PASSWORD") else ""
    host = f"{config['HOST'] or '127.0.0.1'}:{config['PORT'] or 5432}"
    return f"postgres://{config['USER']}{password}@{host}/{config['NAME']}"


def start_worker_in_background(
    *, burst: bool = True, stderr=subprocess.PIPE, env: dict[str, str] | None = None
) -> subprocess.Popen:
    """A real RQ worker, left to run while the test acts on its run: in burst mode it
    stops when the queue is empty, otherwise it waits for jobs until it is stopped.
    `env`: more environment (settings) for it."""
    env = dict(os.environ, DATABASE_URL=_test_database_url(), DJANGO_SETTINGS_MODULE="tests.settings", **(env or {}))
    return subprocess.Popen(
        [
            sys.executable,
            "manage.py",
            "rqworker",
            *(["--burst"] if burst else []),
            "--skip-checks",
            *settings.WORKER_QUEUES,
        ],
        cwd=BASE_DIR,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=stderr,
        text=True,
    )


@pytest.fixture
def live_worker(tmp_path):
    """A real RQ worker that waits for jobs (Test connection, runs) until the test ends;
    its log is `process.log_path`."""
    log_path = tmp_path / "worker.log"
    with log_path.open("w") as log:
        process = start_worker_in_background(burst=False, stderr=log)
    process.log_path = log_path  # type: ignore[attr-defined]
    yield process
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def wait_until_running(run, timeout: float = 60) -> None:
    """Until the worker has claimed `run` and written some rows."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run.refresh_from_db()
        if run.status == run.Status.RUNNING and run.rows_done > 0:
            return
        time.sleep(0.05)
    raise AssertionError(f"the run is {run.status}, not running, after {timeout} s")


def run_worker(timeout: float = 300) -> subprocess.CompletedProcess:
    """Run a real RQ worker in burst mode until the queue is empty."""
    env = dict(os.environ, DATABASE_URL=_test_database_url(), DJANGO_SETTINGS_MODULE="tests.settings")
    result = subprocess.run(
        [
            sys.executable,
            "manage.py",
            "rqworker",
            "--burst",
            "--skip-checks",
            *settings.WORKER_QUEUES,
        ],
        cwd=BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result


@pytest.fixture
def worker():
    return run_worker


@pytest.fixture(autouse=True)
def _empty_queue():
    yield
    for name in settings.WORKER_QUEUES:
        django_rq.get_queue(name).empty()


# --- a PostgreSQL source ---------------------------------------------------------------

PG_URL = os.environ.get("EXPORTSITE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")


@pytest.fixture(scope="session")
def pg_source_url():
    """A PostgreSQL server to use as an export source, or a skip when there is none
    (CI always has one: there the test fails instead)."""
    try:
        psycopg.connect(PG_URL, connect_timeout=3).close()
    except psycopg.OperationalError as exc:
        if os.environ.get("CI"):
            raise
        pytest.skip(f"no PostgreSQL at {PG_URL}: {exc}")
    return PG_URL


@pytest.fixture
def pg_table(pg_source_url):
    """A fresh table name in the PostgreSQL source, dropped afterwards."""
    name = f"src_{uuid.uuid4().hex[:10]}"
    yield name
    with psycopg.connect(pg_source_url, autocommit=True) as conn:
        conn.execute(f'DROP TABLE IF EXISTS "{name}"')


# --- a MySQL or MariaDB source -----------------------------------------------------------

MYSQL_URL = os.environ.get("EXPORTSITE_TEST_MYSQL_URL", "mysql://root@127.0.0.1:3306/test")


def mysql_admin(url: str, database: str | None = None) -> pymysql.Connection:
    """A PyMySQL connection of the tests' own (not the product's) to the server of `url`."""
    parts = urlsplit(url)
    return pymysql.connect(
        host=parts.hostname,
        port=parts.port or 3306,
        user=unquote(parts.username or ""),
        password=unquote(parts.password or ""),
        database=database if database is not None else parts.path.lstrip("/"),
        charset="utf8mb4",
        autocommit=True,
        init_command="SET time_zone = '+00:00'",
    )


@pytest.fixture(scope="session")
def mysql_server_url():
    """A MySQL or MariaDB server to use as an export source (the machine's MariaDB, or
    EXPORTSITE_TEST_MYSQL_URL), or a skip when there is none (in CI: a failure)."""
    try:
        mysql_admin(MYSQL_URL).close()
    except pymysql.Error as exc:
        if os.environ.get("CI"):
            raise
        pytest.skip(f"no MySQL at {MYSQL_URL}: {exc}")
    return MYSQL_URL


@pytest.fixture
def mysql_source_url(mysql_server_url):
    """The URL of a fresh database on that server, dropped afterwards."""
    name = f"src_{uuid.uuid4().hex[:10]}"
    with mysql_admin(mysql_server_url) as conn, conn.cursor() as cursor:
        cursor.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
    yield urlunsplit(urlsplit(mysql_server_url)._replace(path=f"/{name}"))
    with mysql_admin(mysql_server_url) as conn, conn.cursor() as cursor:
        cursor.execute(f"DROP DATABASE IF EXISTS `{name}`")


# --- a PostgreSQL server that checks passwords ------------------------------------------


@pytest.fixture(scope="session")
def pg_with_passwords():
    """A private PostgreSQL server of this session on a free loopback port, with
    scram-sha-256 authentication (the machine's server trusts everyone, so it can't say
    "bad credentials"), holding a database `crm` with a table `customers`. Started with
    the machine's PostgreSQL binaries as the `postgres` user; skipped without them,
    except in CI where it fails."""
    binaries = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    if not binaries or os.geteuid() != 0:
        if os.environ.get("CI"):
            raise RuntimeError("CI needs PostgreSQL's binaries and root to start a server that checks passwords")
        pytest.skip("no PostgreSQL binaries, or not root: can't start a server that checks passwords")
    bindir = binaries[-1].parent
    root = Path(tempfile.mkdtemp(prefix="exportsite-pg-"))
    password = "correct-pg-" + uuid.uuid4().hex[:8]
    (root / "pw").write_text(password)
    shutil.chown(root, "postgres")
    shutil.chown(root / "pw", "postgres")
    as_postgres = ["runuser", "-u", "postgres", "--"]
    subprocess.run(
        [*as_postgres, str(bindir / "initdb"), "-D", str(root / "data"), "-A", "scram-sha-256", "-U", "postgres",
         f"--pwfile={root / 'pw'}"],
        check=True, capture_output=True,
    )  # fmt: skip
    port = free_port()
    options = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off"
    subprocess.run(
        [*as_postgres, str(bindir / "pg_ctl"), "-D", str(root / "data"), "-l", str(root / "log"), "-o", options,
         "-w", "start"],
        check=True, capture_output=True,
    )  # fmt: skip
    url = f"postgresql://postgres:{password}@127.0.0.1:{port}"
    try:
        with psycopg.connect(f"{url}/postgres", autocommit=True) as conn:
            conn.execute("CREATE DATABASE crm")
        with psycopg.connect(f"{url}/crm", autocommit=True) as conn:
            conn.execute("CREATE TABLE customers (id bigint PRIMARY KEY, email text NOT NULL, joined_at timestamptz)")
            conn.execute(
                "INSERT INTO customers SELECT i, 'customer' || i || '@example.com', "
                "timestamptz '2026-01-01 00:00:00+00' + i * interval '1 hour' FROM generate_series(1, 250) i"
            )
        yield SimpleNamespace(host="127.0.0.1", port=port, user="postgres", password=password, database="crm")
    finally:
        subprocess.run(
            [*as_postgres, str(bindir / "pg_ctl"), "-D", str(root / "data"), "-m", "immediate", "stop"],
            capture_output=True,
        )
        shutil.rmtree(root, ignore_errors=True)
