"""`make run`: the whole product on one machine, on the embedded defaults.

1. Migrate, seed the demo source (first time only) and make sure an admin exists.
2. Start the embedded Redis when REDIS_URL is unset.
3. Start the web server, a worker, a worker for Test connection alone, the scheduler
   and the hosted SFTP server, print where to log in, and watch them: one that exits is
   started again after a back-off (1 s, doubling with each crash to 30 s; back to 1 s
   after a clean exit or once it stayed up a minute), and the others keep running.
4. On Ctrl-C or SIGTERM stop them all, then Redis, and exit.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from dataclasses import dataclass

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

from exportsite import embedded
from orgs.demo import seed_organisations
from orgs.models import Membership, Sandbox, default_sandbox


@dataclass
class Child:
    """One process of the product, started again when it exits (until we stop)."""

    name: str
    command: list[str]
    process: subprocess.Popen | None = None
    started: float = 0.0
    restart_at: float | None = None
    backoff: float = 1.0

    MAX_BACKOFF = 30.0
    STEADY = 60.0  # up this long: the next exit is a new incident, not the same one

    def __post_init__(self) -> None:
        self.start(time.monotonic())

    def start(self, now: float) -> None:
        # Its own session: a signal for it reaches its children too (gunicorn's workers).
        self.process = subprocess.Popen(self.command, cwd=settings.BASE_DIR, start_new_session=True)
        self.started = now
        self.restart_at = None

    def watch(self, now: float) -> str:
        """Start it again when it exited and its back-off has passed; what to log."""
        if self.restart_at is not None:
            if now >= self.restart_at:
                self.start(now)
                assert self.process is not None
                return f"{self.name} started again (pid {self.process.pid})"
            return ""
        assert self.process is not None
        code = self.process.poll()
        if code is None:
            return ""
        if code == 0 or now - self.started >= self.STEADY:
            self.backoff = 1.0  # a clean exit (it was asked to stop), or after a good while up
        self.restart_at = now + self.backoff
        message = f"{self.name} exited with code {code}; starting it again in {self.backoff:.0f} s"
        if code != 0:
            self.backoff = min(self.backoff * 2, self.MAX_BACKOFF)
        return message

    def signal(self, signum: int) -> None:
        if self.process is not None and self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signum)
            except ProcessLookupError:
                pass

    def wait(self, timeout: float) -> None:
        if self.process is None:
            return
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.signal(signal.SIGKILL)
            self.process.wait()


class Command(BaseCommand):
    help = "Start web, worker and (when REDIS_URL is unset) an embedded Redis; stop them all on Ctrl-C."

    def handle(self, *args, **options):
        port = int(os.environ.get("PORT", "8000"))
        # Local servers (emulators, a test SFTP server) are what a first run connects to.
        os.environ.setdefault("EXPORTSITE_ALLOWED_NETWORKS", "127.0.0.0/8,::1/128")
        call_command("migrate", interactive=False, verbosity=0)
        call_command("seed_demo", if_missing=True, stdout=self.stdout)
        username, password = self._ensure_admin()
        organisations = seed_organisations(settings.DATA_DIR)

        children: list[Child] = []
        redis = None
        stopping = False

        def stop(signum, frame):
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGTERM, stop)
        try:
            if settings.EMBEDDED_REDIS:
                if embedded.port_in_use(settings.EMBEDDED_REDIS_PORT):
                    raise CommandError(
                        f"port {settings.EMBEDDED_REDIS_PORT} for the embedded Redis is taken: "
                        "stop what uses it, or set EXPORTSITE_EMBEDDED_REDIS_PORT or REDIS_URL"
                    )
                redis = embedded.start_redis(settings.EMBEDDED_REDIS_PORT, settings.DATA_DIR / "redis")
                self.stdout.write(f"embedded Redis on {settings.REDIS_URL}")
            if embedded.port_in_use(port):
                raise CommandError(f"port {port} is taken: set PORT to another one")
            if embedded.port_in_use(settings.SFTPD_PORT):
                raise CommandError(
                    f"port {settings.SFTPD_PORT} for the hosted SFTP server is taken: set EXPORTSITE_SFTPD_PORT"
                )
            python = sys.executable
            processes = {
                "web": [
                    python,
                    "-m",
                    "gunicorn",
                    "exportsite.wsgi",
                    "--bind",
                    f"127.0.0.1:{port}",
                    "--workers",
                    "2",
                    "--threads",
                    "4",
                    "--worker-class",
                    "gthread",
                    "--timeout",
                    "120",
                    "--access-logfile",
                    "-",
                ],
                "worker": [python, "manage.py", "rqworker", "--skip-checks", *settings.WORKER_QUEUES],
                "tester": [python, "manage.py", "rqworker", "--skip-checks", *settings.SMALL_WORKER_QUEUES],
                "scheduler": [python, "manage.py", "scheduler"],
                "sftpd": [python, "manage.py", "sftpd"],
            }
            for name, command in processes.items():
                children.append(Child(name, command))
            embedded.wait_for_port(port, timeout=30)
            self.stdout.write(
                self.style.SUCCESS(
                    f"\nExport site is up: http://127.0.0.1:{port}/\n"
                    f"  log in as {username!r} with password {password!r} (platform admin: every organisation)\n"
                    + "".join(
                        f"  log in as {login.username!r} with password {login.password!r} "
                        f"({login.organisation}, {login.role})\n"
                        for login in organisations
                    )
                    + f"  hosted SFTP on {settings.SFTPD_PUBLIC_HOST}:{settings.SFTPD_PORT}\n"
                    "  press Ctrl-C to stop\n"
                )
            )
            while not stopping:
                for child in children:
                    message = child.watch(time.monotonic())
                    if message:
                        self.stderr.write(message)
                time.sleep(0.2)
        finally:
            self.stdout.write("stopping...")
            for child in children:
                child.signal(signal.SIGTERM)
            for child in children:
                child.wait(timeout=20)
            if redis is not None:
                embedded.stop(redis)
            self.stdout.write("stopped")

    def _ensure_admin(self) -> tuple[str, str]:
        """The first admin account: password from EXPORTSITE_ADMIN_PASSWORD, or generated
        once and kept (owner-only) in the data folder so it can be shown again."""
        username = os.environ.get("EXPORTSITE_ADMIN_USER", "admin")
        password_file = settings.DATA_DIR / "admin_password"
        password = os.environ.get("EXPORTSITE_ADMIN_PASSWORD")
        if not password:
            if password_file.exists():
                password = password_file.read_text().strip()
            else:
                password = secrets.token_urlsafe(12)
                fd = os.open(password_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                with os.fdopen(fd, "w") as fh:
                    fh.write(password)
        User = get_user_model()
        user = User.objects.filter(username=username).first()
        if user is None:
            user = User.objects.create_superuser(username, f"{username}@localhost", password)
            # Platform staff may enter any organisation; Default (the Demo CRM) is theirs.
            Membership.objects.get_or_create(
                user=user,
                organisation=Sandbox.objects.get(pk=default_sandbox()).organisation,
                defaults={"role": Membership.Role.ADMIN},
            )
        elif os.environ.get("EXPORTSITE_ADMIN_PASSWORD") and not user.check_password(password):
            user.set_password(password)
            user.save(update_fields=["password"])
        elif not user.check_password(password):
            password = "(changed since it was generated)"
        return username, password
