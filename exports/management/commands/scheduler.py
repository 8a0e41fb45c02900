"""`manage.py scheduler`: turn due exports into runs, reconcile lost runs and expire old
downloads, every SCHEDULER_TICK_SECONDS. Any number may run at once: the database makes
sure each slot gets one run. Stops cleanly on SIGTERM or Ctrl-C.

`--at 2026-03-29T06:00:00Z,...` ticks once at each given (simulated) time and exits:
the tests drive several schedulers through the same clock this way.
"""

from __future__ import annotations

import logging
import signal
import time
from datetime import datetime

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import close_old_connections

from exports.scheduler import tick

logger = logging.getLogger(__name__)


class Command(BaseCommand):
    help = "Start due scheduled runs, reconcile lost runs and expire old downloads, in a loop."

    def add_arguments(self, parser):
        parser.add_argument("--once", action="store_true", help="tick once and exit")
        parser.add_argument("--at", default="", help="comma-separated ISO times to tick at, then exit")

    def handle(self, *args, once: bool, at: str, **options):
        if at:
            try:
                moments = [datetime.fromisoformat(item.strip().replace("Z", "+00:00")) for item in at.split(",")]
            except ValueError as exc:
                raise CommandError(f"--at takes ISO date-times with a zone: {exc}") from None
            for moment in moments:
                self._report(moment, tick(moment))
            return
        stopping = False

        def stop(signum, frame):
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGTERM, stop)
        self.stdout.write(f"scheduler ticking every {settings.SCHEDULER_TICK_SECONDS} s")
        while not stopping:
            close_old_connections()
            try:
                self._report(None, tick())
            except Exception:
                self.stderr.write("tick failed; trying again at the next one")
                logger.exception("scheduler tick failed")
            if once:
                return
            deadline = time.monotonic() + settings.SCHEDULER_TICK_SECONDS
            while not stopping and time.monotonic() < deadline:
                time.sleep(0.2)
        self.stdout.write("scheduler stopped")

    def _report(self, moment, report) -> None:
        parts = [
            f"{len(items)} {label}"
            for label, items in (
                ("runs", report.created),
                ("skipped", report.skipped),
                ("lost", report.lost),
                ("requeued", report.requeued),
                ("retried", report.retried),
                ("expired", report.expired),
            )
            if items
        ]
        if parts:
            self.stdout.write(f"{(moment.isoformat() + ': ') if moment else ''}{', '.join(parts)}")
