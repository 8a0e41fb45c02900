"""How fast the Manage Exports page, and the API's lists, render with 10,000 exports
and 100,000 runs (or as many as asked).

    python -m bench.list_page [--exports 10000] [--runs 100000] [--database-url postgresql://...] [--json]

Uses its own app database (SQLite under bench/var/list_page, or the PostgreSQL database
given, created if missing), filled once and reused while the counts match, and prints
the median time of each tab, search and sort over 7 requests, and the number of SQL
queries each takes; with --json, one JSON line per measurement.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time
import uuid
from datetime import timedelta
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--exports", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=100_000)
    parser.add_argument("--work", type=Path, default=Path(__file__).resolve().parent / "var" / "list_page")
    parser.add_argument("--database-url", default="", help="a PostgreSQL app database (default: SQLite in --work)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    from bench.data import use_app_database

    use_app_database(args.work, args.database_url)
    import django

    django.setup()
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.db import connection
    from django.db.models import OuterRef, Subquery
    from django.test import Client
    from django.test.utils import CaptureQueriesContext
    from django.utils import timezone

    from exports.listing import SORTS
    from exports.models import Database, Dataset, Export, Run
    from orgs.models import default_sandbox

    settings.ALLOWED_HOSTS = ["*"]
    call_command("migrate", verbosity=0)
    User = get_user_model()
    user = User.objects.filter(username="bench").first() or User.objects.create_superuser("bench", "", "bench")
    if Export.objects.count() != args.exports or Run.objects.count() != args.runs:
        print(f"creating {args.exports:,} exports and {args.runs:,} runs...", flush=True)
        Run.objects.all().delete()
        Export.objects.all().delete()
        database, _ = Database.objects.get_or_create(name="Bench", defaults={"url": "sqlite:////nowhere"})
        datasets = [
            Dataset.objects.get_or_create(database=database, name=f"table_{n}", defaults={"data_type": data_type})[0]
            for n, data_type in enumerate(Dataset.DataType.values)
        ]
        rng = random.Random(1)
        now = timezone.now()
        statuses = [Export.Status.DRAFT, Export.Status.SCHEDULED, Export.Status.FINISHED]
        sandbox = default_sandbox()
        exports = [
            Export(
                id=uuid.uuid4(),
                name=f"Export {n:05d} {rng.choice(['weekly', 'daily', 'crm', 'bi'])}",
                owner=user,
                sandbox_id=sandbox,  # bulk_create skips the save that fills it
                dataset=rng.choice(datasets),
                status=rng.choice(statuses),
                export_type=rng.choice(Export.Type.values),
            )
            for n in range(args.exports)
        ]
        Export.objects.bulk_create(exports, batch_size=2000)
        run_statuses = [Run.Status.SUCCEEDED] * 8 + [Run.Status.FAILED, Run.Status.CANCELLED]
        runs = []
        for n in range(args.runs):
            moment = now - timedelta(minutes=n)
            runs.append(
                Run(
                    export=exports[n % len(exports)],
                    sandbox_id=sandbox,
                    status=rng.choice(run_statuses),
                    queued_at=moment,
                    started_at=moment,
                    finished_at=moment + timedelta(seconds=30),
                    row_count=n,
                    destination_kind="desktop",  # bulk_create skips Run.save, which records it
                    destination="Desktop",
                )
            )
            if len(runs) == 5000:
                Run.objects.bulk_create(runs)
                runs = []
        Run.objects.bulk_create(runs)
        # What Run.save keeps, and bulk_create skips: each export's latest run time.
        latest = Run.objects.filter(export=OuterRef("pk")).order_by("-queued_at").values("queued_at")[:1]
        Export.objects.update(last_run_at=Subquery(latest))
    if connection.vendor == "postgresql":
        # As autovacuum leaves a table in use; also after a migration rewrote the tables.
        with connection.cursor() as cursor:
            cursor.execute("VACUUM ANALYZE")

    def report(what: str, timings: list[float], queries: int) -> None:
        median = statistics.median(timings) * 1000
        if args.json:
            print(json.dumps({"what": what, "ms": median, "queries": queries}), flush=True)
        else:
            print(f"{what}: median {median:.0f} ms, {queries} queries", flush=True)

    client = Client()
    client.force_login(user)
    # Manage Exports lives under its organisation and sandbox (/o/<org>/<sandbox>/exports/).
    first = client.get("/exports/")
    page_path = first["Location"].split("?")[0] if first.status_code == 302 else "/exports/"
    for tab in ("draft", "scheduled", "in_progress", "finished"):
        sorts = [{"sort": sort} for name in SORTS for sort in (name, f"-{name}")]
        for params in ({"tab": tab}, {"tab": tab, "q": "crm"}, *({"tab": tab, **sort} for sort in sorts)):
            timings = []
            for _ in range(7):
                with CaptureQueriesContext(connection) as queries:
                    started = time.perf_counter()
                    response = client.get(page_path, params)
                    timings.append(time.perf_counter() - started)
                assert response.status_code == 200
            report(f"page {params}", timings, len(queries))

    # The same lists through the API (the per-token rate limit is left out: it is one
    # Redis round trip, and this measures the database work).
    from exports.api.auth import TokenRateThrottle
    from exports.models import ApiToken

    TokenRateThrottle.allow_request = lambda self, request: True
    headers = {"HTTP_AUTHORIZATION": f"Bearer {ApiToken.issue(user, 'bench')[1]}"}
    for path, params in [
        ("/api/v1/exports", {}),
        ("/api/v1/exports", {"page_size": 200}),
        ("/api/v1/exports", {"q": "crm", "sort": "name", "status": "Draft"}),
        ("/api/v1/runs", {}),
        ("/api/v1/runs", {"page_size": 200, "status": "Failed"}),
    ]:
        timings = []
        for _ in range(7):
            with CaptureQueriesContext(connection) as queries:
                started = time.perf_counter()
                response = client.get(path, params, **headers)
                timings.append(time.perf_counter() - started)
            assert response.status_code == 200, response.content[:500]
        report(f"{path} {params}", timings, len(queries))


if __name__ == "__main__":
    main()
