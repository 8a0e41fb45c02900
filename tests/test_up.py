"""`make run` as a user meets it: `manage.py up` on a fresh data folder brings up the
embedded Redis, the web server, a worker and the hosted SFTP server, and Ctrl-C stops every one of them."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import requests

from exportsite.embedded import free_port, port_in_use
from tests.services import children_of

BASE_DIR = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_up_starts_everything_and_ctrl_c_stops_it(tmp_path):
    port, redis_port, sftp_port = free_port(), free_port(), free_port()
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"REDIS_URL", "DATABASE_URL", "DJANGO_SETTINGS_MODULE", "EXPORTSITE_QUEUE"}
    }
    env.update(
        EXPORTSITE_DATA_DIR=str(tmp_path / "var"),
        PORT=str(port),
        EXPORTSITE_EMBEDDED_REDIS_PORT=str(redis_port),
        EXPORTSITE_SFTPD_PORT=str(sftp_port),
        EXPORTSITE_ADMIN_PASSWORD="s3cret-for-test",
        PYTHONUNBUFFERED="1",
    )
    process = subprocess.Popen(
        [sys.executable, "manage.py", "up"],
        cwd=BASE_DIR,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    lines = []
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            if not line:
                break
            lines.append(line)
            if "press Ctrl-C to stop" in line:
                break
        output = "".join(lines)
        assert f"http://127.0.0.1:{port}/" in output, output[-3000:]
        assert "'admin' with password 's3cret-for-test'" in output
        assert "Demo CRM ready" in output
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/accounts/login/") as response:
            assert response.status == 200
            assert b"Log in" in response.read()
        # Two demo organisations, each with its logins: each sees its own source only.
        logins = dict(re.findall(r"log in as '([a-z]+-[a-z]+)' with password '([^']+)'", output))
        assert set(logins) == {"acme-admin", "acme-marketer", "bravo-admin", "bravo-marketer"}, output[-3000:]
        site = f"http://127.0.0.1:{port}"
        session = requests.Session()
        session.get(f"{site}/accounts/login/", timeout=10)
        signed_in = session.post(
            f"{site}/accounts/login/",
            {
                "username": "acme-marketer",
                "password": logins["acme-marketer"],
                "csrfmiddlewaretoken": session.cookies["csrftoken"],
            },
            timeout=10,
        )
        assert "/o/acme/production/" in signed_in.url
        sources = session.get(f"{site}/sources/", timeout=10)
        assert sources.url.endswith("/o/acme/production/sources/")
        assert "Acme Retail CRM" in sources.text
        assert "Bravo Travel CRM" not in sources.text
        assert session.get(f"{site}/o/bravo/production/sources/", timeout=10).status_code == 404
        assert port_in_use(redis_port)
        assert f"hosted SFTP on 127.0.0.1:{sftp_port}" in output
        deadline = time.monotonic() + 30
        while not port_in_use(sftp_port) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert port_in_use(sftp_port), "sftpd is not listening"

        # The worker dies (SIGKILL): the site stays up, and a new worker takes its place.
        [worker] = [pid for pid in children_of(process.pid) if _is_export_worker(pid)]
        os.kill(worker, signal.SIGKILL)
        killed_at = time.monotonic()
        replacement = None
        while replacement is None and time.monotonic() - killed_at < 10:
            assert session.get(f"{site}/sources/", timeout=5).status_code == 200
            found = [pid for pid in children_of(process.pid) if _is_export_worker(pid) and pid != worker]
            replacement = found[0] if found else None
            time.sleep(0.2)
        assert replacement is not None, "no new worker within 10 s"
    finally:
        os.killpg(process.pid, signal.SIGINT)
        rest, _ = process.communicate(timeout=60)
    assert process.returncode == 0, rest[-3000:]
    assert "worker exited with code -9; starting it again in 1 s" in rest + "".join(lines)
    assert "stopped" in rest
    assert not port_in_use(port)
    assert not port_in_use(redis_port)
    assert not port_in_use(sftp_port)


def _is_export_worker(pid: int) -> bool:
    """The worker of `up` that runs exports (the other one only tests connections)."""
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return b"rqworker" in command and b"exports" in command
