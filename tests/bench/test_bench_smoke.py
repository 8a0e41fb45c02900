"""`make bench` on a tiny table, so the benchmark scripts never rot: every case runs,
our files read back equal to the source, and RESULTS.md gets every row and ratio."""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path

import psycopg
import pytest

from bench.run import CASES
from tests.conftest import mysql_admin

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_the_benchmark_runs_every_case_on_a_small_table(pg_source_url, mysql_server_url, tmp_path):
    url = pg_source_url.rsplit("/", 1)[0] + f"/bench_smoke_{uuid.uuid4().hex[:8]}"
    mysql_url = mysql_server_url.rsplit("/", 1)[0] + f"/bench_smoke_{uuid.uuid4().hex[:8]}"
    results = tmp_path / "RESULTS.md"
    try:
        finished = subprocess.run(
            [
                sys.executable,
                "-m",
                "bench.run",
                "--url",
                url,
                "--mysql-url",
                mysql_url,
                "--rows",
                "3000",
                "--rounds",
                "1",
                "--memory-factor",
                "2",
                "--work",
                str(tmp_path / "work"),
                "--results",
                str(results),
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert finished.returncode == 0, finished.stderr[-4000:] + finished.stdout[-2000:]
    finally:
        with psycopg.connect(pg_source_url.rsplit("/", 1)[0] + "/postgres", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" WITH (FORCE)')
        with mysql_admin(mysql_server_url) as conn, conn.cursor() as cursor:
            cursor.execute(f"DROP DATABASE IF EXISTS `{mysql_url.rsplit('/', 1)[1]}`")
    text = results.read_text()
    for label, _kind in CASES.values():
        assert f"| {label} |" in text
    # Ours: 6 on PostgreSQL, 2 on SQLite, 2 on MariaDB (compared with PostgreSQL's table: the same rows).
    assert text.count("3,000 rows, every column equal to the source") == 10
    assert "(memory case)" in text
    for ratio in ("÷ bare ADBC", "dlt Parquet ÷", "csv.gz ÷", "dlt JSONL ÷", "peak RSS at 3,000", "peak RSS at 6,000"):
        assert ratio in text
    assert "| peak RSS, MariaDB source, at 3,000 rows (MB): ≤ 250 |" in text
    assert "| csv.gz from MariaDB ÷ mysql --batch --quick \\| gzip -1 |" in text
    assert "| csv.gz from MariaDB ÷ csv.gz from PostgreSQL |" in text


@pytest.mark.slow
def test_the_scale_benchmark_runs_every_part_on_a_small_table(pg_source_url, tmp_path):
    """`make bench`'s scale section on a tiny table: partitions by one and two real
    workers read back equal to the source, an incremental run, the lists at both sizes,
    two schedulers; every row with its target."""
    server = pg_source_url.rsplit("/", 1)[0]
    name = f"bench_smoke_{uuid.uuid4().hex[:8]}"
    results = tmp_path / "RESULTS.md"
    results.write_text("# Benchmark results\n")
    try:
        finished = subprocess.run(
            [
                sys.executable,
                "-m",
                "bench.scale",
                "--url",
                f"{server}/{name}",
                "--rows",
                "20000",
                "--partition-rows",
                "2500",
                "--rounds",
                "1",
                "--list-scale",
                "0.002",
                "--due",
                "200",
                "--lead",
                "8",
                "--text-rows",
                "3000",
                "--work",
                str(tmp_path / "work"),
                "--results",
                str(results),
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=900,
        )
        assert finished.returncode == 0, finished.stderr[-4000:] + finished.stdout[-2000:]
    finally:
        with psycopg.connect(f"{server}/postgres", autocommit=True) as conn:
            for database in conn.execute("SELECT datname FROM pg_database WHERE datname LIKE %s", [f"{name}%"]):
                conn.execute(f'DROP DATABASE IF EXISTS "{database[0]}" WITH (FORCE)')
    text = results.read_text()
    assert text.startswith("# Benchmark results")
    for part in ("partitions-sqlite", "partitions-postgresql", "incremental", "text", "lists", "scheduler"):
        assert f"<!-- scale:{part} -->" in text
    assert text.count("partition by partition equal to the source") == 4
    assert "| 1 pinned worker ÷ 2 pinned workers: ≥ 1.8 |" in text
    assert "| id: ≤ 2 s |" in text
    assert "| occurred_at: ≤ 2 s |" in text
    assert text.count("| PostgreSQL |") >= 3
    assert "Query counts the same at both sizes" in text
    assert "| 200 | 0 |" in text  # every due export got its run, none twice
    assert "| CSV ÷ psql \\copy: ≤ 1.25 |" in text
    assert "| NDJSON.gz ÷ ours csv.gz: ≤ 1.25 |" in text
