"""Real local servers for each store: moto (S3), gcp-storage-emulator (GCS), Azurite
(Azure Blob), an external asyncssh SFTP server and the project's own `sftpd`.

Each runs as a subprocess in its own session on a free loopback port, is ready when it
answers, and is stopped as a process group.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from http.client import HTTPException
from pathlib import Path

from exportsite.embedded import free_port, wait_for_port

BASE_DIR = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
AZURITE = BASE_DIR / ".node" / "node_modules" / ".bin" / "azurite-blob"
AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


def events_file(path: Path, rows: int, payload_bytes: int = 100) -> Path:
    """A SQLite source with one table, `events(id, payload)`: `rows` rows of random hex
    text, twice `payload_bytes` characters each."""
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE events (id INTEGER PRIMARY KEY, payload TEXT NOT NULL)")
        conn.execute(
            f"WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {int(rows)}) "
            f"INSERT INTO events SELECT i, hex(randomblob({int(payload_bytes)})) FROM n"
        )
    return path


def children_of(pid: int) -> list[int]:
    """A process's direct children, from /proc (RQ's work horse runs in a session of its own)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(entry))
    return found


@dataclass
class Service:
    name: str
    process: subprocess.Popen
    port: int
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


def _start(name: str, command: list[str], log_dir: Path, port: int, *, env=None, ready_url: str = "") -> Service:
    log = log_dir / f"{name}-{port}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "wb") as out:
        process = subprocess.Popen(
            command,
            cwd=BASE_DIR,
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
            start_new_session=True,
        )
    service = Service(name, process, port, log)
    deadline = time.monotonic() + 60
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited with {process.returncode}:\n{service.output()[-3000:]}")
        try:
            if ready_url:
                urllib.request.urlopen(f"http://127.0.0.1:{port}{ready_url}", timeout=1).close()
            else:
                wait_for_port(port, timeout=0.5)
            return service
        except (OSError, HTTPException, RuntimeError):  # not up yet: refused, reset, or an error page
            if time.monotonic() > deadline:
                service.stop()
                raise RuntimeError(f"{name} did not start:\n{service.output()[-3000:]}") from None
            time.sleep(0.1)


def start_moto(log_dir: Path, port: int | None = None, *, unauthenticated_actions: int | None = None) -> Service:
    """moto's S3 (and IAM) server. With `unauthenticated_actions`, only that many calls
    go unchecked; after them every request needs keys an IAM user really holds."""
    port = port or free_port()
    env = {}
    if unauthenticated_actions is not None:
        env["INITIAL_NO_AUTH_ACTION_COUNT"] = str(unauthenticated_actions)
    command = [str(VENV_BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)]
    return _start("moto", command, log_dir, port, env=env, ready_url="/moto-api/")


def start_gcs(log_dir: Path) -> Service:
    port = free_port()
    command = [str(VENV_BIN / "gcp-storage-emulator"), "start", "-H", "127.0.0.1", "--port", str(port), "--in-memory"]
    return _start("gcs", command, log_dir, port, ready_url="/storage/v1/b")


def start_azurite(log_dir: Path) -> Service:
    if not AZURITE.exists():
        raise RuntimeError(f"Azurite is not installed at {AZURITE}: run `make install-test`")
    port = free_port()
    command = [
        str(AZURITE),
        "--inMemoryPersistence",
        "--blobHost",
        "127.0.0.1",
        "--blobPort",
        str(port),
        "--skipApiVersionCheck",
        "--loose",
        "--silent",
        "--disableTelemetry",
    ]
    return _start("azurite", command, log_dir, port)


def azurite_connection_string(port: int, key: str = AZURITE_KEY) -> str:
    return (
        "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;"
        f"AccountKey={key};BlobEndpoint=http://127.0.0.1:{port}/devstoreaccount1;"
    )


def start_external_sftp(
    log_dir: Path,
    root: Path,
    host_key: Path,
    *,
    user: str,
    password: str,
    authorized_key: str = "",
    port: int | None = None,
) -> Service:
    """An SFTP server that is not ours: password or key login for one user, chrooted to `root`."""
    port = port or free_port()
    command = [
        sys.executable,
        str(BASE_DIR / "tests" / "external_sftp.py"),
        "--port",
        str(port),
        "--root",
        str(root),
        "--host-key",
        str(host_key),
        "--user",
        user,
    ]
    env = {"EXTERNAL_SFTP_PASSWORD": password, "EXTERNAL_SFTP_AUTHORIZED_KEYS": authorized_key}
    return _start("external-sftp", command, log_dir, port, env=env)


def start_sftpd(log_dir: Path, database_url: str) -> Service:
    """The project's own hosted SFTP server, on the tests' database and data folder."""
    port = free_port()
    command = [sys.executable, "manage.py", "sftpd", "--port", str(port)]
    env = {"DATABASE_URL": database_url, "DJANGO_SETTINGS_MODULE": "tests.settings"}
    return _start("sftpd", command, log_dir, port, env=env)
