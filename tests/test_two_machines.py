"""A rehearsal of the production layout on one host: a web server and two workers, each
in a data folder of its own (no disk shared), sharing only PostgreSQL, Redis and the
stores; Desktop downloads go to S3 (moto). Runs execute on both workers, and the web
server serves every download."""

from __future__ import annotations

import gzip
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import psycopg
import pytest
import requests
from cryptography.fernet import Fernet

from exportsite.embedded import free_port, wait_for_port
from tests.stores import S3_BUCKET

BASE_DIR = Path(__file__).resolve().parent.parent
ROWS = 150_000

pytestmark = [pytest.mark.slow, pytest.mark.emulator]

SETUP = """
import json
from django.contrib.auth import get_user_model
from exports.models import ApiToken, Database, refresh_datasets
from orgs.models import Membership, Sandbox, default_sandbox

sandbox = Sandbox.objects.get(pk=default_sandbox())
user = get_user_model().objects.create_user("marketer", "m@example.com", "a-long-password-1")
Membership.objects.create(user=user, organisation=sandbox.organisation, role=Membership.Role.MARKETER)
database = Database.objects.create(name="Warehouse", url={source!r})
refresh_datasets(database)
_token, secret = ApiToken.issue(user, "rehearsal", sandbox=sandbox)
print(json.dumps({{"token": secret, "dataset": database.datasets.get(name={table!r}).id}}))
"""


@pytest.fixture
def app_database(pg_source_url):
    """An empty PostgreSQL database for the product, dropped afterwards."""
    name = f"exportsite_rehearsal_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(pg_source_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield f"postgres://postgres@127.0.0.1:5432/{name}"
    with psycopg.connect(pg_source_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_two_workers_without_a_shared_disk_deliver_downloads_the_web_server_serves(
    tmp_path, s3, app_database, pg_source_url, pg_table
):
    with psycopg.connect(pg_source_url, autocommit=True) as conn:
        conn.execute(
            f'CREATE TABLE "{pg_table}" AS SELECT g AS id, md5(g::text) AS payload FROM generate_series(1, {ROWS}) g'
        )
    common = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("EXPORTSITE_", "EXPORT_", "DATABASE_URL", "DJANGO_SETTINGS_MODULE"))
    }
    port = free_port()
    common.update(
        DJANGO_SETTINGS_MODULE="exportsite.settings",
        EXPORTSITE_SITE_URL=f"http://127.0.0.1:{port}",
        DATABASE_URL=app_database,
        REDIS_URL=os.environ["REDIS_URL"],
        EXPORTSITE_QUEUE=f"rehearsal-{uuid.uuid4().hex[:8]}",
        # Every machine shares the secrets: sessions, signed URLs and encrypted credentials.
        SECRET_KEY="rehearsal-secret-key-" + uuid.uuid4().hex,
        EXPORTSITE_ENCRYPTION_KEY=Fernet.generate_key().decode(),
        EXPORTSITE_ALLOWED_NETWORKS="127.0.0.0/8",
        EXPORTSITE_DOWNLOADS_STORAGE="s3",
        EXPORTSITE_DOWNLOADS_OPTIONS=json.dumps(
            {
                "bucket_name": S3_BUCKET,
                "location": "downloads",
                "endpoint_url": s3.endpoint,
                "access_key": s3.access_key_id,
                "secret_key": s3.secret_access_key,
                "region_name": "us-east-1",
            }
        ),
        PYTHONUNBUFFERED="1",
    )

    def machine(name: str) -> dict[str, str]:
        folder = tmp_path / name
        return {**common, "EXPORTSITE_DATA_DIR": str(folder), "EXPORTSITE_SFTP_ROOT": str(folder / "sftp")}

    web_env = machine("web")
    manage = [sys.executable, "manage.py"]
    subprocess.run([*manage, "migrate", "-v0"], cwd=BASE_DIR, env=web_env, check=True, timeout=300)
    setup = subprocess.run(
        [*manage, "shell", "-c", SETUP.format(source=pg_source_url, table=pg_table)],
        cwd=BASE_DIR,
        env=web_env,
        check=True,
        capture_output=True,
        text=True,
        timeout=120,
    )
    given = json.loads(setup.stdout.strip().splitlines()[-1])
    processes = [
        subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "exportsite.wsgi", "--bind", f"127.0.0.1:{port}", "--workers", "2"],
            cwd=BASE_DIR,
            env=web_env,
            stdout=subprocess.DEVNULL,
            stderr=(tmp_path / "web.log").open("w"),
            start_new_session=True,
        )
    ]
    for name in ("machine-a", "machine-b"):
        processes.append(
            subprocess.Popen(
                [*manage, "rqworker", "--skip-checks", "--name", name, common["EXPORTSITE_QUEUE"]],
                cwd=BASE_DIR,
                env=machine(name),
                stdout=subprocess.DEVNULL,
                stderr=(tmp_path / f"{name}.log").open("w"),
                start_new_session=True,
            )
        )
    try:
        wait_for_port(port, timeout=30)
        site = f"http://127.0.0.1:{port}/api/v1"
        api = requests.Session()
        api.headers["Authorization"] = f"Bearer {given['token']}"
        runs = []
        for n in range(6):
            created = api.post(
                f"{site}/exports",
                json={
                    "Name": f"rehearsal {n}",
                    "DatasetId": given["dataset"],
                    "RowsPerFile": 60_000,
                    "Launch": True,
                    "QueueAnyway": True,
                },
                timeout=30,
            )
            assert created.status_code == 201, created.text
            runs.append(api.get(f"{site}/exports/{created.json()['Id']}/runs", timeout=30).json()["Items"][0]["Id"])
        finished = {}
        deadline = time.monotonic() + 240
        while len(finished) < len(runs) and time.monotonic() < deadline:
            for run_id in runs:
                if run_id not in finished:
                    report = api.get(f"{site}/runs/{run_id}", timeout=30).json()
                    if report["Status"] not in ("Pending", "Processing"):
                        finished[run_id] = report
            time.sleep(0.5)
        assert len(finished) == len(runs), "the runs did not finish in time"
        for report in finished.values():
            assert report["Status"] == "Success", report
        workers = {report["Worker"].rsplit(":", 1)[1] for report in finished.values()}
        assert workers == {"machine-a", "machine-b"}, workers

        # Every file is served by the web server, from S3: no worker's disk is involved.
        for report in finished.values():
            rows = 0
            for file in report["Files"]:
                download = requests.get(file["Url"], timeout=60)
                assert download.status_code == 200, download.text[:300]
                lines = gzip.decompress(download.content).decode().splitlines()
                rows += len(lines) - 1  # the header
                assert file["Rows"] == len(lines) - 1
            assert rows == ROWS
        stored = s3.client().list_objects_v2(Bucket=S3_BUCKET, Prefix="downloads/")["KeyCount"]
        assert stored == sum(len(report["Files"]) for report in finished.values())
        for name in ("web", "machine-a", "machine-b"):
            assert not (tmp_path / name / "downloads").exists(), f"{name} wrote downloads to its own disk"
    finally:
        for process in processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in processes:
            process.wait(timeout=30)
