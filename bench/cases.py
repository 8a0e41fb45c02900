"""One benchmark case, run as its own process: `python -m bench.cases NAME OUT_DIR`.

Our cases go through the worker's own code path (`exports.jobs.run_export` on a real
Run row), so the run's report is written as usual. Prints one JSON line: rows, bytes
and the files written.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
OURS = {
    "ours-parquet-snappy": ("parquet", "snappy"),
    "ours-parquet-zstd": ("parquet", "zstd"),
    "ours-parquet-gzip": ("parquet", "gzip"),
    "ours-csv": ("csv", "none"),
    "ours-csv-gzip": ("csv", "gzip"),
    "ours-ndjson-gzip": ("ndjson", "gzip"),
}


def django_setup(app_dir: Path) -> None:
    os.environ["EXPORTSITE_DATA_DIR"] = str(app_dir)
    os.environ.pop("DATABASE_URL", None)
    # The product's own settings, even when started from the test suite.
    os.environ["DJANGO_SETTINGS_MODULE"] = "exportsite.settings"
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    # The bench's source is a local server: open loopback, as `make run` does.
    os.environ.setdefault("EXPORTSITE_ALLOWED_NETWORKS", "127.0.0.0/8,::1/128")
    import django

    django.setup()


def setup(app_dir: Path, url: str) -> None:
    """Prepare the bench's own app database: migrated, with the source registered."""
    django_setup(app_dir)
    from django.contrib.auth import get_user_model
    from django.core.management import call_command

    from exports.models import Database, refresh_datasets

    call_command("migrate", verbosity=0)
    get_user_model().objects.get_or_create(username="bench")
    for name, source_url in (
        ("bench-postgresql", url),
        ("bench-sqlite", f"sqlite:///{app_dir.parent / 'interactions.sqlite3'}"),
        ("bench-mysql", os.environ["BENCH_MYSQL_URL"]),
    ):
        if not source_url:
            continue  # `bench.run --mysql-url ''`: no MariaDB cases
        database, _ = Database.objects.update_or_create(name=name, defaults={"url": source_url})
        if name == "bench-sqlite" and not (app_dir.parent / "interactions.sqlite3").exists():
            continue
        refresh_datasets(database)


def run_ours(case: str, out_dir: Path, app_dir: Path, table: str, source: str) -> dict:
    django_setup(app_dir)
    from django.conf import settings
    from django.contrib.auth import get_user_model

    from exports.actions import queue_run
    from exports.jobs import run_export
    from exports.models import Dataset, Export, Run

    file_format, compression = OURS[case.removesuffix("-sqlite").removesuffix("-mysql").removesuffix("-memory")]
    dataset = Dataset.objects.get(database__name=f"bench-{source}", name=table)
    export = Export.objects.create(
        name=case,
        owner=get_user_model().objects.get(username="bench"),
        dataset=dataset,
        file_format=file_format,
        compression=compression,
        rows_per_file=100_000_000,
        file_template=case,
    )
    run = queue_run(export, enqueue=False)  # run right here, not by a worker
    run_export(str(run.id))
    run.refresh_from_db()
    if run.status != Run.Status.SUCCEEDED:
        raise SystemExit(f"{case} failed: {run.error_code} {run.error_message}")
    files = []
    for run_file in run.files.all():
        target = out_dir / run_file.name
        os.replace(Path(settings.STORAGES["exports"]["OPTIONS"]["location"]) / run_file.path, target)
        files.append(str(target))
    return {"rows": run.row_count, "bytes": run.bytes, "files": files, "peak_rss_report": run.peak_rss_bytes}


def run_bare_adbc(out_dir: Path, url: str, table: str) -> dict:
    """The limit: ADBC straight into pyarrow's ParquetWriter, nothing else."""
    import adbc_driver_postgresql.dbapi as pg
    import pyarrow.parquet as pq

    path = out_dir / "bare.parquet"
    rows = 0
    with pg.connect(url) as connection, connection.cursor() as cursor:
        cursor.execute(f'SELECT * FROM "{table}"')
        reader = cursor.fetch_record_batch()
        with pq.ParquetWriter(path, reader.schema, compression="snappy") as writer:
            for batch in reader:
                writer.write_batch(batch)
                rows += batch.num_rows
    return {"rows": rows, "bytes": path.stat().st_size, "files": [str(path)]}


def copy_sql(app_dir: Path, table: str) -> str:
    """The COPY our CSV case runs (a Desktop download: spreadsheet-safe), for psql to run
    the same: what the contract's forms cost PostgreSQL itself."""
    django_setup(app_dir)
    from exports.models import Dataset
    from exports.sources import open_reader

    dataset = Dataset.objects.get(database__name="bench-postgresql", name=table)
    with open_reader(dataset, [], []) as reader:
        sql = reader.csv_copy_sql(",", spreadsheet_safe=True)
    if sql is None:
        raise SystemExit(f"{table}: a column has no COPY form")
    return sql


def main() -> None:
    case, out_dir = sys.argv[1], Path(sys.argv[2])
    url = os.environ["BENCH_POSTGRES_URL"]
    app_dir = Path(os.environ.get("BENCH_APP_DIR", BENCH_DIR / "var" / "app"))
    table = os.environ.get("BENCH_TABLE", "interactions")
    out_dir.mkdir(parents=True, exist_ok=True)
    if case == "setup":
        setup(app_dir, url)
        return
    if case == "copy-sql":
        print(copy_sql(app_dir, table))
        return
    if case == "bare-adbc-parquet":
        result = run_bare_adbc(out_dir, url, table)
    else:
        source = case.rsplit("-", 1)[1] if case.endswith(("-sqlite", "-mysql")) else "postgresql"
        result = run_ours(case, out_dir, app_dir, table, source)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
