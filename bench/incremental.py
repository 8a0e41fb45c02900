"""What the incremental lookback costs: a run that delivers 10,000 new rows of the
5,000,000-row table, with its lookback and without it (a plain window from the
watermark), for an id cursor and a timestamp cursor.

    python -m bench.incremental [--rows 5000000] [--new 10000] [--rounds 5]

Works on its own copy of the bench table (`interactions_incremental`, with an index on
`occurred_at`) and its own app database under bench/var/incremental. The first full run
is made once per cursor; every round then inserts the new rows, runs from the same
watermark with and without the lookback's memory, and deletes them again. Writes its
table into bench/RESULTS.md between the `incremental` markers (`make bench` keeps them).
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import time
from pathlib import Path

import psycopg
from psycopg import sql

from bench.data import DEFAULT_URL, ensure_table

BENCH_DIR = Path(__file__).resolve().parent
TABLE = "interactions_incremental"
START, END = "<!-- incremental -->", "<!-- /incremental -->"


def ensure_copy(url: str, rows: int) -> None:
    ensure_table(url, "interactions", rows)
    with psycopg.connect(url, autocommit=True) as conn:
        if conn.execute("SELECT to_regclass(%s)", [TABLE]).fetchone()[0]:
            count = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(TABLE))).fetchone()[0]
            if count == rows:
                return
            conn.execute(sql.SQL("DROP TABLE {}").format(sql.Identifier(TABLE)))
        print(f"copying interactions into {TABLE}...", flush=True)
        conn.execute(sql.SQL("CREATE TABLE {} (LIKE interactions INCLUDING ALL)").format(sql.Identifier(TABLE)))
        conn.execute(sql.SQL("INSERT INTO {} SELECT * FROM interactions").format(sql.Identifier(TABLE)))
        conn.execute(sql.SQL("CREATE INDEX ON {} (occurred_at)").format(sql.Identifier(TABLE)))
        conn.execute(sql.SQL("VACUUM ANALYZE {}").format(sql.Identifier(TABLE)))


def insert_new(url: str, base: int, new: int) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            sql.SQL(
                "INSERT INTO {} SELECT id + %(base)s, profile_id, channel, event_type, campaign, email, "
                "country_code, clock_timestamp(), amount, payload FROM interactions WHERE id <= %(new)s"
            ).format(sql.Identifier(TABLE)),
            {"base": base, "new": new},
        )


def delete_new(url: str, base: int) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(sql.SQL("DELETE FROM {} WHERE id > %s").format(sql.Identifier(TABLE)), [base])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", default=os.environ.get("BENCH_POSTGRES_URL", DEFAULT_URL))
    parser.add_argument("--rows", type=int, default=5_000_000)
    parser.add_argument("--new", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--work", type=Path, default=BENCH_DIR / "var" / "incremental")
    parser.add_argument("--results", type=Path, default=BENCH_DIR / "RESULTS.md")
    args = parser.parse_args()
    ensure_copy(args.url, args.rows)
    delete_new(args.url, args.rows)

    from bench.cases import django_setup

    django_setup(args.work)
    from django.contrib.auth import get_user_model
    from django.core.management import call_command

    from exports.actions import queue_run
    from exports.jobs import run_export
    from exports.models import Database, Export, IncrementalMemory, Run, refresh_datasets

    call_command("migrate", verbosity=0)
    user, _ = get_user_model().objects.get_or_create(username="bench")
    database, _ = Database.objects.update_or_create(name="bench-postgresql", defaults={"url": args.url})
    refresh_datasets(database)
    dataset = database.datasets.get(name=TABLE)

    def run(export) -> Run:
        run = queue_run(export, enqueue=False)
        started = time.perf_counter()
        run_export(str(run.id))
        run.refresh_from_db()
        if run.status != Run.Status.SUCCEEDED:
            raise SystemExit(f"{export.name} failed: {run.error_code} {run.error_message}")
        run.seconds = time.perf_counter() - started
        return run

    lines = []
    for cursor in ("id", "occurred_at"):
        Export.objects.filter(name=f"lookback {cursor}").delete()
        export = Export.objects.create(
            name=f"lookback {cursor}",
            owner=user,
            dataset=dataset,
            export_type=Export.Type.INCREMENTAL,
            cursor_column=cursor,
            file_format=Export.Format.CSV,
            compression=Export.Compression.NONE,
            rows_per_file=100_000_000,
        )
        print(f"{cursor}: the first, full run...", flush=True)
        run(export)
        export.refresh_from_db()
        watermark = export.watermark
        memory = IncrementalMemory.objects.get(export=export)
        timings: dict[str, list[float]] = {"lookback": [], "plain": []}
        rows: dict[str, int] = {}
        for _ in range(args.rounds):
            insert_new(args.url, args.rows, args.new)
            for mode in ("lookback", "plain"):
                Export.objects.filter(id=export.id).update(watermark=watermark)
                IncrementalMemory.objects.filter(export=export).delete()
                if mode == "lookback":
                    memory.save(force_insert=True)
                done = run(export)
                timings[mode].append(done.seconds)
                rows[mode] = done.row_count
                if mode == "lookback":
                    assert done.lookback_from is not None, "the lookback did not apply"
                    rows["late"] = done.late_rows
                    rows["read"] = rows_between(args.url, cursor, done.lookback_from, done.window_to)
                    rows["memory"] = IncrementalMemory.objects.get(export=export).key_count
            delete_new(args.url, args.rows)
        assert rows["lookback"] == rows["plain"] == args.new, rows
        lookback, plain = statistics.median(timings["lookback"]), statistics.median(timings["plain"])
        lines.append(
            f"| `{cursor}` | {args.new:,} | {rows['read']:,} | {rows['memory']:,} | {plain:.3f} s | "
            f"{lookback:.3f} s | {lookback / plain:.2f}x |"
        )
        print(lines[-1], flush=True)

    table = "\n".join(
        [
            START,
            "## The incremental lookback's cost",
            "",
            f"`python -m bench.incremental`: an incremental CSV run of `{TABLE}` ({args.rows:,} rows, "
            f"a copy of the bench table) that delivers {args.new:,} new rows, from the same watermark "
            "with its lookback and with a plain window. Medians of "
            f"{args.rounds} rounds; the whole run (`run_export`: read, write, store, report).",
            "",
            "| cursor | delivered | read (lookback + new) | keys remembered | plain window | with lookback | ratio |",
            "|---|---|---|---|---|---|---|",
            *lines,
            END,
        ]
    )
    write_section(args.results, table)
    print(table)


def rows_between(url: str, cursor: str, low: str, high: str) -> int:
    with psycopg.connect(url) as conn:
        query = sql.SQL("SELECT count(*) FROM {} WHERE {} > %s AND {} <= %s").format(
            sql.Identifier(TABLE), sql.Identifier(cursor), sql.Identifier(cursor)
        )
        return conn.execute(query, [low, high]).fetchone()[0]


def write_section(path: Path, section: str) -> None:
    text = path.read_text() if path.exists() else ""
    pattern = re.compile(re.escape(START) + ".*?" + re.escape(END), re.S)
    text = pattern.sub(lambda _: section, text) if pattern.search(text) else text.rstrip("\n") + "\n\n" + section
    path.write_text(text.rstrip("\n") + "\n")


def kept_section(path: Path) -> str:
    """The section this bench wrote, for `bench.run` to keep when it rewrites the file."""
    if not path.exists():
        return ""
    found = re.search(re.escape(START) + ".*?" + re.escape(END), path.read_text(), re.S)
    return found.group(0) if found else ""


if __name__ == "__main__":
    main()
