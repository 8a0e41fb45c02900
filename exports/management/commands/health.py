"""`manage.py health`: the database and Redis answer, a scheduler ticked within
HEALTH_SCHEDULER_MAX_AGE seconds and a worker serves the exports queue. Prints one line
per check and exits 1 when any fails: for a monitor's probe or a container's health check."""

from __future__ import annotations

import sys

from django.core.management.base import BaseCommand

from exports.health import all_checks


class Command(BaseCommand):
    help = "Check the database, Redis, the scheduler and the workers; exit 1 when one fails."

    def handle(self, *args, **options):
        checks = all_checks()
        for check in checks:
            mark = self.style.SUCCESS("ok  ") if check.ok else self.style.ERROR("FAIL")
            self.stdout.write(f"{mark} {check.name}: {check.detail}")
        if not all(check.ok for check in checks):
            sys.exit(1)
