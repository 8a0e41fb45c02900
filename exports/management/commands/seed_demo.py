from __future__ import annotations

import time

from django.conf import settings
from django.core.management.base import BaseCommand

from exports.demo import build_demo_database
from exports.models import Database, refresh_datasets

DEMO_NAME = "Demo CRM"


class Command(BaseCommand):
    help = "Create the demo SQLite source database 'Demo CRM' and register its datasets."

    def add_arguments(self, parser):
        parser.add_argument("--if-missing", action="store_true", help="do nothing if the demo is already there")
        parser.add_argument("--profiles", type=int, default=100_000)
        parser.add_argument("--interactions", type=int, default=1_000_000)

    def handle(self, *args, if_missing: bool, profiles: int, interactions: int, **options):
        path = settings.DATA_DIR / "demo" / "demo_crm.sqlite3"
        database = Database.objects.filter(name=DEMO_NAME).first()
        if if_missing and database is not None and path.exists():
            self.stdout.write(f"{DEMO_NAME} is already there ({path})")
            return
        started = time.monotonic()
        path.parent.mkdir(parents=True, exist_ok=True)
        counts = build_demo_database(path, profiles=profiles, interactions=interactions)
        if database is None:
            database = Database(name=DEMO_NAME)
        database.url = f"sqlite:///{path}"
        database.save()
        refresh_datasets(database)
        summary = ", ".join(f"{table} {rows:,}" for table, rows in counts.items())
        self.stdout.write(f"{DEMO_NAME} ready in {time.monotonic() - started:.1f} s: {summary}")
