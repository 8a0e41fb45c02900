"""10,000 exports due in the same minute: how long two schedulers take to give every one
its run, and whether any slot got two.

    python -m bench.scheduler [--exports 10000] [--database-url postgresql://...] [--json]

Real `manage.py scheduler` processes (two, started before the slot is due) on the bench's
own app database (SQLite under bench/var/scheduler, or the PostgreSQL database given) and
a Redis of its own. The time is from the moment the exports fall due to the last run's
creation, so it includes the wait for the schedulers' next tick (SCHEDULER_TICK_SECONDS).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--exports", type=int, default=10_000)
    parser.add_argument("--schedulers", type=int, default=2)
    parser.add_argument("--work", type=Path, default=Path(__file__).resolve().parent / "var" / "scheduler")
    parser.add_argument("--database-url", default="")
    parser.add_argument("--lead", type=int, default=20, help="seconds the schedulers get to start before it is due")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    from bench.data import use_app_database

    use_app_database(args.work, args.database_url)
    from exportsite import embedded

    port = embedded.free_port()
    redis = embedded.start_redis(port, args.work / "redis")
    os.environ["REDIS_URL"] = f"redis://127.0.0.1:{port}/0"
    os.environ["EXPORTSITE_QUEUE"] = "bench-scheduler"
    try:
        result = measure(args)
    finally:
        embedded.stop(redis)
    if args.json:
        print(json.dumps(result))
    else:
        print(
            f"{result['exports']:,} due exports: every run created {result['seconds']:.1f} s after they fell due; "
            f"{result['runs']:,} runs, {result['duplicates']} slots run twice"
        )


def measure(args) -> dict:
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.db import connection
    from django.db.models import Count, Max
    from django.utils import timezone

    from exports.models import Database, Dataset, Export, Run, SkippedSlot
    from orgs.models import default_sandbox

    call_command("migrate", verbosity=0)
    user = get_user_model().objects.get_or_create(username="bench")[0]
    Run.objects.all().delete()
    SkippedSlot.objects.all().delete()
    Export.objects.all().delete()
    database, _ = Database.objects.get_or_create(name="Bench", defaults={"url": "sqlite:////nowhere"})
    dataset, _ = Dataset.objects.get_or_create(database=database, name="events")
    now = timezone.now()
    due = (now + timedelta(seconds=args.lead)).replace(microsecond=0)
    sandbox = default_sandbox()
    exports = [
        Export(
            name=f"Daily {n:05d}",
            owner=user,
            sandbox_id=sandbox,  # bulk_create skips the save that fills it
            dataset=dataset,
            status=Export.Status.SCHEDULED,
            export_type=Export.Type.PERIODIC_FULL,
            schedule_unit=Export.TimeUnit.DAY,
            schedule_interval=1,
            schedule_start=due,
            schedule_end=due + timedelta(days=180),
            schedule_timezone="UTC",
            next_run_at=due,
        )
        for n in range(args.exports)
    ]
    Export.objects.bulk_create(exports, batch_size=2000)
    connection.close()
    env = dict(os.environ)
    schedulers = [
        subprocess.Popen(
            [sys.executable, "manage.py", "scheduler"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        for _ in range(args.schedulers)
    ]
    try:
        deadline = time.monotonic() + 300
        while Run.objects.count() < args.exports and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(2)  # anything late would show as a duplicate or an extra run
    finally:
        for process in schedulers:
            os.killpg(process.pid, signal.SIGTERM)
        for process in schedulers:
            process.wait(timeout=60)
    runs = Run.objects.count()
    last = Run.objects.aggregate(last=Max("queued_at"))["last"]
    duplicates = Run.objects.values("export_id", "scheduled_for").annotate(n=Count("id")).filter(n__gt=1).count()
    return {
        "exports": args.exports,
        "runs": runs,
        "duplicates": duplicates,
        "seconds": (last - due).total_seconds() if last else None,
        "database": connection.vendor,
    }


if __name__ == "__main__":
    main()
