"""The scale targets of issue 18, each with its target and "met" or "missed":

- **partitions**: a 50,000,000-row table to Parquet, split into key ranges, by one worker
  and by two. From SQLite (read inside the worker) with each worker pinned to its own
  core (`taskset`), so that the ratio measures the workers alone; from PostgreSQL
  unpinned (its server shares the two cores). Peak memory per worker; the files read
  back, partition by partition, equal to the source.
- **incremental**: 10,000 new rows on the 50,000,000-row table, one run, id and
  timestamp cursors, each with an index.
- **lists**: Manage Exports and the API's lists at 10,000 exports / 100,000 runs on
  SQLite and PostgreSQL, and at 100,000 / 1,000,000 on PostgreSQL (bench/list_page.py).
- **scheduler**: 10,000 exports due at once, two schedulers (bench/scheduler.py).

    python -m bench.scale [--rows 50000000] [--rounds 3] [--parts partitions-sqlite,partitions-postgresql,...]

Real processes throughout: `manage.py rqworker` workers on a Redis of the bench's own,
an app database (SQLite) under bench/var/scale. Writes each part's rows into
bench/RESULTS.md between its own markers in the `scale` section (`make bench` keeps them).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
MB = 1024 * 1024
START, END = "<!-- scale -->", "<!-- /scale -->"
QUEUE = "bench-scale"
PARTS = ("partitions-sqlite", "partitions-postgresql", "incremental", "text", "lists", "scheduler")


def django_setup(app_dir: Path, redis_url: str) -> None:
    os.environ["EXPORTSITE_DATA_DIR"] = str(app_dir)
    os.environ.pop("DATABASE_URL", None)
    os.environ["DJANGO_SETTINGS_MODULE"] = "exportsite.settings"
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    os.environ.setdefault("EXPORTSITE_ALLOWED_NETWORKS", "127.0.0.0/8,::1/128")
    os.environ["REDIS_URL"] = redis_url
    os.environ["EXPORTSITE_QUEUE"] = QUEUE
    import django

    django.setup()


def ensure_sqlite_copy(url: str, table: str, path: Path, rows: int) -> None:
    """The PostgreSQL table's rows in SQLite, through Arrow (ADBC both ends), with the
    types the other bench copy declares."""
    import adbc_driver_postgresql.dbapi as pg
    import adbc_driver_sqlite.dbapi as lite

    if path.exists():
        with lite.connect(str(path)) as conn, conn.cursor() as cursor:
            cursor.execute("SELECT max(id), count(*) FROM interactions")
            if cursor.fetchone() == (rows, rows):
                return
        path.unlink()
    print(f"creating the SQLite copy of {table} ({rows:,} rows)...", flush=True)
    building = path.with_suffix(".building")
    building.unlink(missing_ok=True)
    with lite.connect(str(building)) as target, target.cursor() as out:
        out.execute(
            "CREATE TABLE interactions (id INTEGER PRIMARY KEY, profile_id INTEGER, channel TEXT, event_type TEXT, "
            "campaign TEXT, email TEXT, country_code TEXT, occurred_at TIMESTAMP, amount DECIMAL(12,2), payload TEXT)"
        )
        target.commit()
        with pg.connect(url) as source, source.cursor() as cursor:
            cursor.execute(
                "SELECT id, profile_id, channel, event_type, campaign, email, country_code, "
                "to_char(occurred_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS+00:00') AS occurred_at, "
                f"amount::float8 AS amount, payload FROM {table} ORDER BY id"
            )
            out.adbc_ingest("interactions", cursor.fetch_record_batch(), mode="append")
        target.commit()
    building.rename(path)


class Redis:
    def __init__(self, work: Path):
        from exportsite import embedded

        self.embedded = embedded
        self.port = embedded.free_port()
        self.process = embedded.start_redis(self.port, work / "redis")
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def stop(self) -> None:
        self.embedded.stop(self.process)


def start_workers(count: int, env: dict, pinned: bool) -> list[subprocess.Popen]:
    workers = []
    for core in range(count):
        prefix = ["taskset", "-c", str(core)] if pinned else []
        workers.append(
            subprocess.Popen(
                [*prefix, sys.executable, "manage.py", "rqworker", "--skip-checks", QUEUE],
                cwd=ROOT,
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
        )
    return workers


def stop_workers(workers: list[subprocess.Popen]) -> None:
    import signal

    for worker in workers:
        if worker.poll() is None:
            os.killpg(worker.pid, signal.SIGTERM)
    for worker in workers:
        try:
            worker.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait()


def wait_for_workers(count: int) -> None:
    import django_rq
    from django.conf import settings
    from rq import Worker

    connection = django_rq.get_connection(settings.EXPORTS_QUEUE)
    deadline = time.monotonic() + 60
    while len(Worker.all(connection=connection)) < count:
        if time.monotonic() > deadline:
            raise SystemExit("the bench's workers did not start")
        time.sleep(0.2)


def export_once(dataset, workers: int, pinned: bool, env: dict) -> dict:
    """One partitioned Parquet export by `workers` workers: the wall time from the run's
    queueing to its end, the peak memory of each job, the run."""
    from django.contrib.auth import get_user_model

    from exports.actions import queue_run
    from exports.models import Export, Run

    export = Export.objects.create(
        name=f"scale {dataset.database.name} {workers}",
        owner=get_user_model().objects.get(username="bench"),
        dataset=dataset,
        file_format=Export.Format.PARQUET,
        compression=Export.Compression.SNAPPY,
    )
    processes = start_workers(workers, env, pinned)
    try:
        wait_for_workers(workers)
        started = time.perf_counter()
        run = queue_run(export)
        while Run.objects.filter(id=run.id, status__in=Run.ACTIVE).exists():
            time.sleep(0.2)
        wall = time.perf_counter() - started
    finally:
        stop_workers(processes)
    run.refresh_from_db()
    if run.status != Run.Status.SUCCEEDED:
        raise SystemExit(f"the partitioned export failed: {run.error_code} {run.error_message}")
    peaks = [p.peak_rss_bytes or 0 for p in run.partitions.all()]
    return {
        "wall": wall,
        "rss": max([run.peak_rss_bytes or 0, *peaks]),
        "rows": run.row_count,
        "partitions": run.partition_count,
        "workers": len({p.worker for p in run.partitions.all()}),
        "run": run,
    }


def verify(run, url: str, table: str) -> str:
    """Each partition's files, sorted by id, equal to the PostgreSQL table's rows in its
    range (the SQLite copy holds the same rows): every row once, every column equal."""
    import adbc_driver_postgresql.dbapi as pg
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq
    from django.conf import settings

    root = Path(settings.STORAGES["exports"]["OPTIONS"]["location"])
    by_part = {f.part: f for f in run.files.all()}
    total = 0
    with pg.connect(url) as connection, connection.cursor() as cursor:
        for partition in run.partitions.order_by("number"):
            where = []
            if partition.empty_keys:
                where.append("id IS NULL")
            if partition.low:
                where.append(f"id >= {int(partition.low)}")
            if partition.high:
                where.append(f"id < {int(partition.high)}")
            condition = f"WHERE {' AND '.join(where)}" if where else ""
            cursor.execute(f"SELECT * FROM {table} {condition} ORDER BY id")
            source = cursor.fetch_arrow_table()
            amount = source.column("amount")
            text = pa.chunked_array([chunk.storage for chunk in amount.chunks], pa.string())
            source = source.set_column(
                source.schema.get_field_index("amount"), "amount", pc.cast(text, pa.decimal128(12, 2))
            )
            parts = [by_part[record["part"]] for record in partition.files]
            if not parts:  # an empty range delivers no file
                if source.num_rows:
                    raise SystemExit(f"{partition}: no file, the source has {source.num_rows} rows")
                continue
            exported = pa.concat_tables([pq.read_table(root / f.path) for f in parts]).sort_by("id")
            if exported.num_rows != source.num_rows:
                raise SystemExit(f"{partition}: {exported.num_rows} rows, the source has {source.num_rows}")
            for field in source.schema:
                expected, actual = source.column(field.name), exported.column(field.name)
                if actual.type != expected.type:
                    actual = pc.cast(actual, expected.type)
                if not actual.equals(expected):
                    raise SystemExit(f"{partition}: column {field.name} differs from the source")
            total += exported.num_rows
            del source, exported
    return f"{total:,} rows, partition by partition equal to the source"


def remove_files(run) -> None:
    from exports.delivery import delete_downloads

    delete_downloads(list(run.files.values_list("path", flat=True)), f"run {run.id}")


PARTITION_CASES = {
    "sqlite": [(1, True, "SQLite, 1 worker pinned to 1 core"), (2, True, "SQLite, 2 workers pinned to a core each")],
    "postgresql": [(1, False, "PostgreSQL, 1 worker"), (2, False, "PostgreSQL, 2 workers")],
}


def measure_partitions(args, env: dict, source: str) -> list[str]:
    """One source's partitioned export by one worker and by two, round after round."""
    from exports.models import Dataset

    cases = PARTITION_CASES[source]
    measured: dict[int, list[dict]] = {workers: [] for workers, _, _ in cases}
    verified: dict[int, str] = {}
    dataset = Dataset.objects.get(database__name=f"scale-{source}", name=args.source_table[source])
    for round_number in range(1, args.rounds + 1):
        for workers, pinned, label in cases:
            result = export_once(dataset, workers, pinned, env)
            print(
                f"round {round_number} {label}: {result['wall']:.1f} s, {result['rss'] / MB:.0f} MB, "
                f"{result['partitions']} partitions on {result['workers']} worker(s)",
                flush=True,
            )
            if round_number == 1:
                verified[workers] = verify(result["run"], args.url, args.table)
                print(f"  read back: {verified[workers]}", flush=True)
            remove_files(result["run"])
            result.pop("run")
            measured[workers].append(result)

    def median(workers: int) -> float:
        return statistics.median(r["wall"] for r in measured[workers])

    rows = [
        f"Partitioned runs from {cases[0][2].split(',')[0]}: {args.rows:,} rows to Parquet snappy, "
        f"EXPORT_PARTITION_ROWS={args.partition_rows:,} ({measured[1][0]['partitions']} partitions, one of them the "
        f"rows whose key is empty), median of {args.rounds} rounds, the cases of a round back to back.",
        "",
        "| case | time (s) | rounds (s) | peak RSS per worker (MB) | read back |",
        "|---|---:|---|---:|---|",
    ]
    for workers, _pinned, label in cases:
        walls = ", ".join(f"{r['wall']:.1f}" for r in measured[workers])
        rss = max(r["rss"] for r in measured[workers]) / MB
        rows.append(f"| {label} | {median(workers):.1f} | {walls} | {rss:.0f} | {verified[workers]} |")
    ratio = median(1) / median(2)
    rss = max(r["rss"] for results in measured.values() for r in results) / MB
    if source == "sqlite":
        scaling = (
            f"| 1 pinned worker ÷ 2 pinned workers: ≥ 1.8 | {ratio:.2f} | {'met' if ratio >= 1.8 else '**missed**'} |"
        )
    else:
        scaling = f"| 1 worker ÷ 2 workers (its server on the same 2 cores) | {ratio:.2f} | reported |"
    return [
        *rows,
        "",
        "| ratio | value | |",
        "|---|---:|---|",
        scaling,
        f"| peak RSS per worker (MB): ≤ 250 | {rss:.0f} | {'met' if rss <= 250 else '**missed**'} |",
    ]


def measure_incremental(args) -> list[str]:
    """10,000 new rows on the large table: one incremental run's time, by cursor."""
    import psycopg
    from django.contrib.auth import get_user_model

    from exports.actions import queue_run
    from exports.jobs import run_export
    from exports.models import Database, Dataset, Export, Run, refresh_datasets

    table, new = args.table, 10_000
    with psycopg.connect(args.url, autocommit=True) as conn:
        conn.execute(f"CREATE INDEX IF NOT EXISTS {table}_occurred_at ON {table} (occurred_at)")
        conn.execute(f"ANALYZE {table}")
        base = conn.execute(f"SELECT max(id) FROM {table}").fetchone()[0]
    refresh_datasets(Database.objects.get(name="scale-postgresql"))
    dataset = Dataset.objects.get(database__name="scale-postgresql", name=table)
    measured: dict[str, list[tuple[float, float]]] = {}
    try:
        for cursor_column in ("id", "occurred_at"):
            export = Export.objects.create(
                name=f"incremental {cursor_column}",
                owner=get_user_model().objects.get(username="bench"),
                dataset=dataset,
                export_type=Export.Type.INCREMENTAL,
                cursor_column=cursor_column,
                file_format=Export.Format.PARQUET,
                compression=Export.Compression.SNAPPY,
            )
            with psycopg.connect(args.url) as conn:
                mark = conn.execute(f"SELECT max({cursor_column}) FROM {table}").fetchone()[0]
            Export.objects.filter(id=export.id).update(
                watermark={
                    "column": cursor_column,
                    "value": mark.isoformat() if hasattr(mark, "isoformat") else str(mark),
                }
            )
            for round_number in range(1, args.rounds + 1):
                with psycopg.connect(args.url, autocommit=True) as conn:
                    # New ids and new moments, above both cursors' marks.
                    shift, latest = conn.execute(f"SELECT max(id), max(occurred_at) FROM {table}").fetchone()
                    conn.execute(
                        f"INSERT INTO {table} SELECT id + %(shift)s, profile_id, channel, event_type, campaign, email, "
                        "country_code, %(latest)s + id * interval '1 millisecond', amount, payload "
                        f"FROM {table} WHERE id <= %(new)s",
                        {"shift": shift, "latest": latest, "new": new},
                    )
                run = queue_run(Export.objects.get(id=export.id), enqueue=False)
                started = time.perf_counter()
                run_export(str(run.id))
                wall = time.perf_counter() - started
                run.refresh_from_db()
                if run.status != Run.Status.SUCCEEDED or run.row_count != new:
                    raise SystemExit(f"incremental {cursor_column}: {run.status} {run.row_count} {run.error_message}")
                measured.setdefault(cursor_column, []).append((wall, run.duration.total_seconds()))
                remove_files(run)
                print(f"round {round_number} incremental {cursor_column}: {wall:.2f} s", flush=True)
    finally:
        with psycopg.connect(args.url, autocommit=True) as conn:
            conn.execute(f"DELETE FROM {table} WHERE id > %s", [base])
            conn.execute(f"VACUUM ANALYZE {table}")
    lines = [
        f"Incremental: {new:,} new rows on the {args.rows:,}-row PostgreSQL table, indexed cursor, Parquet, "
        f"one run (the job, from its claim to its report), median of {args.rounds} rounds.",
        "",
        "| cursor | run (s) | |",
        "|---|---:|---|",
    ]
    for cursor_column, results in measured.items():
        wall = statistics.median(result[0] for result in results)
        lines.append(f"| {cursor_column}: ≤ 2 s | {wall:.2f} | {'met' if wall <= 2 else '**missed**'} |")
    return lines


def _json_lines(command: list[str]) -> list[dict]:
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stderr[-3000:]}")
    return [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]


def measure_lists(args) -> list[str]:
    """Manage Exports' tabs, search and sorts, and the API's lists, at two sizes, on
    SQLite and PostgreSQL app databases (bench/list_page.py)."""
    small, large = int(10_000 * args.list_scale), int(100_000 * args.list_scale)
    sizes = [
        ("SQLite", "", small, small * 10, 100),
        ("PostgreSQL", args.app_url("lists_small"), small, small * 10, 100),
        ("PostgreSQL", args.app_url("lists_large"), large, large * 10, 200),
    ]
    lines = [
        "Manage Exports (every tab, with a search and with each sort) and the API's lists, median of 7 requests "
        "each (bench/list_page.py); the slowest of them, and the queries a page takes.",
        "",
        "| app database | exports / runs | slowest (ms) | which | queries per page | |",
        "|---|---|---:|---|---|---|",
    ]
    counts: dict[str, set] = {}
    for label, url, exports, runs, limit in sizes:
        command = [sys.executable, "-m", "bench.list_page", "--exports", str(exports), "--runs", str(runs), "--json"]
        if url:
            command += ["--database-url", url]
        else:
            command += ["--work", str(args.work / "list_page")]
        results = _json_lines(command)
        slowest = max(results, key=lambda result: result["ms"])
        for result in results:
            counts.setdefault(f"{label} {result['what']}", set()).add(result["queries"])
        queries = sorted({result["queries"] for result in results})
        verdict = "met" if slowest["ms"] <= limit else "**missed**"
        lines.append(
            f"| {label} | {exports:,} / {runs:,} | {slowest['ms']:.0f} | `{slowest['what']}` | "
            f"{queries[0]}–{queries[-1]} | ≤ {limit} ms: {verdict} |"
        )
    varying = sorted(what for what, seen in counts.items() if len(seen) > 1)
    lines += [
        "",
        f"Query counts the same at both sizes: {'yes' if not varying else 'no: ' + ', '.join(varying)}.",
    ]
    return lines


def measure_scheduler(args) -> list[str]:
    """10,000 exports due in the same minute, two schedulers (bench/scheduler.py)."""
    lines = [
        f"Scheduler: {args.due:,} exports due at the same moment, two `manage.py scheduler` processes already running; "
        "the time from the moment they fall due to the last run's creation (it includes the wait for the next "
        "tick, SCHEDULER_TICK_SECONDS = 5), median of the rounds.",
        "",
        "| app database | time (s) | runs | slots run twice | |",
        "|---|---:|---:|---:|---|",
    ]
    for label, url in (("SQLite", ""), ("PostgreSQL", args.app_url("scheduler"))):
        results = []
        for _ in range(args.rounds):
            command = [sys.executable, "-m", "bench.scheduler", "--json", "--exports", str(args.due)]
            command += ["--lead", str(args.lead)]
            command += ["--database-url", url] if url else ["--work", str(args.work / "scheduler")]
            [result] = _json_lines(command)
            results.append(result)
            print(f"scheduler {label}: {result}", flush=True)
        seconds = statistics.median(result["seconds"] or float("inf") for result in results)
        duplicates = sum(result["duplicates"] for result in results)
        runs = min(result["runs"] for result in results)
        ok = seconds <= 10 and duplicates == 0 and runs == args.due
        lines.append(
            f"| {label} | {seconds:.1f} | {runs:,} | {duplicates} | ≤ 10 s, 0 twice: {'met' if ok else '**missed**'} |"
        )
    return lines


TEXT_CASES = (
    "ours-parquet-snappy",
    "bare-adbc-parquet",
    "ours-csv",
    "psql-copy-csv",
    "psql-copy-contract",
    "ours-csv-gzip",
    "psql-copy-gzip",
    "ours-ndjson-gzip",
)


def measure_text(args) -> list[str]:
    """The text formats against psql and each other, and the targets that must stay met
    (Parquet, csv.gz, memory at 4x the rows): bench.run's cases on its 5,000,000-row
    table, into a results file of their own, whose tables are copied here."""
    results = args.work / "text-results.md"
    command = [sys.executable, "-m", "bench.run", "--url", args.url, "--rounds", str(args.rounds)]
    command += ["--cases", ",".join(TEXT_CASES), "--results", str(results), "--work", str(args.work / "text")]
    command += ["--rows", str(args.text_rows), "--mysql-url", os.environ.get("BENCH_MYSQL_URL", "")]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"bench.run failed:\n{done.stderr[-3000:]}")
    text = results.read_text()
    cases, ratios = text.split("## Targets", 1)
    table = [line for line in cases.splitlines() if line.startswith("| ") and not line.startswith("| case |")]
    wanted = ("CSV ÷", "NDJSON.gz ÷", "Parquet (default) ÷", "csv.gz ÷ psql", "peak RSS at", "psql writing")
    targets = [line for line in ratios.splitlines() if line.startswith("| ") and line[2:].startswith(wanted)]
    return [
        f"Text formats and the earlier targets: `bench.run` on the {args.text_rows:,}-row table, "
        f"{args.rounds} rounds, the cases of a round back to back.",
        "",
        "| case | median wall (s) | rows/s | peak RSS (MB) | output (MB) | rounds (s) | read back |",
        "|---|---:|---:|---:|---:|---|---|",
        *table,
        "",
        "| ratio | value | |",
        "|---|---:|---|",
        *targets,
    ]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument(
        "--url", default=os.environ.get("BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/bench")
    )
    parser.add_argument("--rows", type=int, default=50_000_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--partition-rows", type=int, default=6_250_000)
    parser.add_argument("--parts", default=",".join(PARTS))
    parser.add_argument("--text-rows", type=int, default=5_000_000, help="the table of the text part (bench.run's)")
    parser.add_argument("--list-scale", type=float, default=1.0, help="the list sizes times this (a smoke run)")
    parser.add_argument("--due", type=int, default=10_000, help="exports due at once for the scheduler")
    parser.add_argument("--lead", type=int, default=20, help="seconds the schedulers get to start before the due time")
    parser.add_argument("--work", type=Path, default=BENCH_DIR / "var" / "scale")
    parser.add_argument("--results", type=Path, default=BENCH_DIR / "RESULTS.md")
    args = parser.parse_args()
    parts = [part for part in args.parts.split(",") if part]
    server, source_database = args.url.rsplit("/", 1)
    args.app_url = lambda name: f"{server}/{source_database}_app_{name}"
    args.table = "interactions_50m" if args.rows == 50_000_000 else f"interactions_{args.rows}"
    args.source_table = {"postgresql": args.table, "sqlite": "interactions"}
    # In a child process: the workers and the verification are the ones that must be measured small.
    subprocess.run(
        [sys.executable, "-c", f"import bench.data as d; d.ensure_table({args.url!r}, {args.table!r}, {args.rows})"],
        cwd=ROOT,
        check=True,
    )
    sqlite_path = args.work / f"{args.table}.sqlite3"
    args.work.mkdir(parents=True, exist_ok=True)
    ensure_sqlite_copy(args.url, args.table, sqlite_path, args.rows)

    redis = Redis(args.work)
    try:
        app_dir = args.work / "app"
        django_setup(app_dir, redis.url)
        from django.contrib.auth import get_user_model
        from django.core.management import call_command

        from exports.models import Database, refresh_datasets

        call_command("migrate", verbosity=0)
        get_user_model().objects.get_or_create(username="bench")
        for name, url in (("scale-postgresql", args.url), ("scale-sqlite", f"sqlite:///{sqlite_path}")):
            database, _ = Database.objects.update_or_create(name=name, defaults={"url": url})
            refresh_datasets(database)
        env = dict(
            os.environ,
            EXPORTSITE_DATA_DIR=str(app_dir),
            REDIS_URL=redis.url,
            EXPORTSITE_QUEUE=QUEUE,
            EXPORT_PARTITION_ROWS=str(args.partition_rows),
        )
        blocks: dict[str, list[str]] = {}
        for source in PARTITION_CASES:
            if f"partitions-{source}" in parts:
                blocks[f"partitions-{source}"] = measure_partitions(args, env, source)
        if "incremental" in parts:
            blocks["incremental"] = measure_incremental(args)
        if "lists" in parts:
            blocks["lists"] = measure_lists(args)
        if "scheduler" in parts:
            blocks["scheduler"] = measure_scheduler(args)
        if "text" in parts:
            blocks["text"] = measure_text(args)
    finally:
        redis.stop()
    write_section(args.results, blocks)
    for lines in blocks.values():
        print("\n".join(lines) + "\n")


def kept_section(path: Path) -> str:
    """This bench's section, for `bench.run` to keep when it rewrites the file."""
    if not path.exists():
        return ""
    found = re.search(re.escape(START) + ".*?" + re.escape(END), path.read_text(), re.S)
    return found.group(0) if found else ""


def write_section(results: Path, blocks: dict[str, list[str]]) -> None:
    """Each measured part's rows between its own markers in the scale section: a run of
    some parts keeps the others' rows."""
    text = results.read_text() if results.exists() else ""
    if START not in text:
        text = text.rstrip("\n") + f"\n\n{START}\n## Scale (issue 18)\n\n{END}\n"
    before, rest = text.split(START, 1)
    section, after = rest.split(END, 1)
    for part in PARTS:
        if part not in blocks:
            continue
        begin, end = f"<!-- scale:{part} -->", f"<!-- /scale:{part} -->"
        block = "\n".join([begin, *blocks[part], end])
        if begin in section and end in section:
            head, tail = section.split(begin, 1)
            section = head + block + tail.split(end, 1)[1]
        else:
            section = section.rstrip("\n") + "\n\n" + block + "\n"
    results.write_text(before + START + section + END + after)


if __name__ == "__main__":
    main()
