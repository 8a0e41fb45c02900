"""Settings for the test suite: the product's settings, on a private data folder, Redis
server and queue, so a leftover worker elsewhere can never steal a test's jobs."""

import atexit
import os
import shutil
import tempfile
import uuid
from pathlib import Path

_base = Path(__file__).resolve().parent.parent
os.environ.setdefault("EXPORTSITE_DATA_DIR", str(_base / "var" / "test"))
os.environ.setdefault("EXPORTSITE_QUEUE", f"exports-test-{uuid.uuid4().hex[:8]}")
# Hosted SFTP zones of this session only (its workers and sftpd inherit the variable):
# zones left by an earlier session would hold its logins (connectors.SftpLogin).
if "EXPORTSITE_SFTP_ROOT" not in os.environ:
    os.environ["EXPORTSITE_SFTP_ROOT"] = tempfile.mkdtemp(prefix="exportsite-sftp-")
    atexit.register(shutil.rmtree, os.environ["EXPORTSITE_SFTP_ROOT"], ignore_errors=True)
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
# Deliveries retry once, at once: tests of a stopped server stay fast.
os.environ.setdefault("EXPORT_DELIVERY_ATTEMPTS", "2")
os.environ.setdefault("EXPORT_DELIVERY_BACKOFF", "0")
os.environ.setdefault("DESTINATION_CONNECT_TIMEOUT", "3")
os.environ.setdefault("EXPORT_HOOK_TIMEOUT", "3")
# Workers beat every second; the reconciler takes 4 silent seconds for a dead worker.
os.environ.setdefault("EXPORT_HEARTBEAT_SECONDS", "1")
os.environ.setdefault("EXPORT_HEARTBEAT_TIMEOUT", "4")
os.environ.setdefault("EXPORT_REQUEUE_AFTER", "0")
os.environ.setdefault("EXPORT_RETRY_BACKOFF", "0")
os.environ.setdefault("EMAIL_BACKEND", "django.core.mail.backends.filebased.EmailBackend")
# The storage emulators and test servers listen on loopback (tests/security/ closes it).
os.environ.setdefault("EXPORTSITE_ALLOWED_NETWORKS", "127.0.0.0/8,::1/128")
# Tests log in with Client.login, which django-axes can't see; tests/security turns it on.
os.environ.setdefault("LOGIN_THROTTLING", "false")

if "REDIS_URL" not in os.environ:
    from exportsite import embedded

    _port = embedded.free_port()
    _redis = embedded.start_redis(_port, Path(os.environ["EXPORTSITE_DATA_DIR"]) / f"redis-{_port}")
    atexit.register(embedded.stop, _redis)
    os.environ["REDIS_URL"] = f"redis://127.0.0.1:{_port}/0"

from exportsite.settings import *  # noqa: E402,F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

# Live-server threads must not keep connections open past a test: PostgreSQL refuses
# to drop a test database that still has sessions.
DATABASES["default"]["CONN_MAX_AGE"] = 0  # noqa: F405
