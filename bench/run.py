"""`make bench`: every case in its own process, three rounds, competitors back to back,
then `bench/RESULTS.md` with medians, ratios and the targets.

    python -m bench.run [--rows 5000000] [--rounds 3] [--results bench/RESULTS.md]
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.metadata
import json
import os
import platform
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import unquote, urlsplit

from bench.incremental import kept_section
from bench.report import render
from bench.scale import kept_section as kept_scale_section

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
DLT_PYTHON = ROOT / ".venv-dlt" / "bin" / "python"
MB = 1024 * 1024

# name: (label, kind); the kind tells how to run it and how to read its files back.
CASES = {
    "ours-parquet-snappy": ("ours → Parquet snappy (default)", "parquet"),
    "ours-parquet-zstd": ("ours → Parquet zstd", "parquet"),
    "ours-parquet-gzip": ("ours → Parquet gzip", "parquet"),
    "ours-csv": ("ours → CSV", "csv"),
    "ours-csv-gzip": ("ours → csv.gz", "csv"),
    "ours-ndjson-gzip": ("ours → NDJSON.gz", "ndjson"),
    "psql-copy-csv": ("psql \\copy CSV", "csv"),
    "psql-copy-gzip": ("psql \\copy \\| gzip -1", "csv"),
    "psql-copy-contract": ("psql, the COPY of our CSV (a Desktop download: spreadsheet-safe)", "csv"),
    "bare-adbc-parquet": ("bare ADBC → pyarrow ParquetWriter snappy", "parquet"),
    "dlt-parquet": ("dlt sql_database (pyarrow) → filesystem Parquet", "parquet"),
    "dlt-jsonl": ("dlt sql_database (pyarrow) → filesystem JSONL", "jsonl"),
    "ours-parquet-snappy-sqlite": ("ours → Parquet snappy, SQLite source", "parquet"),
    "ours-csv-gzip-sqlite": ("ours → csv.gz, SQLite source", "csv"),
    "ours-parquet-snappy-mysql": ("ours → Parquet snappy, MariaDB source", "parquet"),
    "ours-csv-gzip-mysql": ("ours → csv.gz, MariaDB source", "csv"),
    "mysql-batch-gzip": ("mysql --batch --quick \\| gzip -1, MariaDB", "tsv"),
}
MEMORY_CASE = "ours-parquet-snappy-memory"


def mysql_client(url: str) -> list[str]:
    parts = urlsplit(url)
    given = ["mysql", f"--host={parts.hostname}", f"--port={parts.port or 3306}", f"--user={unquote(parts.username)}"]
    if parts.password:
        given.append(f"--password={unquote(parts.password)}")
    return [*given, unquote(parts.path.lstrip("/"))]


def command(case: str, out_dir: Path, url: str, table: str, env: dict) -> list[str]:
    if case == "mysql-batch-gzip":
        client = " ".join(shlex.quote(part) for part in mysql_client(env["BENCH_MYSQL_URL"]))
        return [
            "bash",
            "-c",
            f"set -o pipefail; {client} --batch --quick -e 'SELECT * FROM {table}' "
            f"| gzip -1 > '{out_dir / 'out.tsv.gz'}'",
        ]
    if case == "psql-copy-csv":
        return ["psql", url, "-qc", f"\\copy {table} TO '{out_dir / 'copy.csv'}' CSV HEADER"]
    if case == "psql-copy-contract":
        # The very COPY our CSV case runs, written by psql: the server's cost of our forms.
        sql = shlex.quote(env["BENCH_COPY_SQL"].replace("(FORMAT csv", "(FORMAT csv, HEADER", 1))
        return ["bash", "-c", f"set -o pipefail; psql '{url}' -qc {sql} > '{out_dir / 'contract.csv'}'"]
    if case == "psql-copy-gzip":
        return [
            "bash",
            "-c",
            f"set -o pipefail; psql '{url}' -qc '\\copy {table} TO STDOUT CSV HEADER' "
            f"| gzip -1 > '{out_dir / 'copy.csv.gz'}'",
        ]
    if case.startswith("dlt-"):
        return [str(DLT_PYTHON), str(BENCH_DIR / "dlt_case.py"), case.removeprefix("dlt-"), str(out_dir)]
    return [sys.executable, "-m", "bench.cases", case, str(out_dir)]


def run_case(case: str, out_root: Path, url: str, table: str, env: dict) -> dict:
    out_dir = out_root / case
    shutil.rmtree(out_dir, ignore_errors=True)
    out_dir.mkdir(parents=True)
    started = time.perf_counter()
    process = subprocess.Popen(
        command(case, out_dir, url, table, env),
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    # wait4 gives the peak RSS of the case's own process tree (psql and gzip included).
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - started
    stdout, stderr = process.stdout.read(), process.stderr.read()
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"case {case} failed:\n{stderr[-3000:]}")
    files = sorted(str(p) for p in out_dir.rglob("*") if p.is_file() and "/.dlt/" not in str(p))
    result = json.loads(stdout.strip().splitlines()[-1]) if case.startswith(("ours", "bare", "dlt")) else {}
    return {
        "wall": wall,
        "rss": usage.ru_maxrss * 1024,
        "bytes": sum(Path(f).stat().st_size for f in files),
        "files": result.get("files", files),
        "rows": result.get("rows"),
    }


def verify(case: str, files: list[str], url: str, table: str, env: dict) -> str:
    """Read the files back in a separate process: this one must stay small, because a
    child's peak RSS starts at its parent's size when forked (Linux keeps the high-water
    mark across exec), and every case is forked from here."""
    checked = subprocess.run(
        [sys.executable, "-m", "bench.verify", case, CASES[case][1], url, table, *files],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    if checked.returncode != 0:
        raise SystemExit(f"reading back {case} failed:\n{checked.stderr[-3000:]}{checked.stdout[-2000:]}")
    return checked.stdout.strip()


def versions(url: str, mysql_url: str) -> dict[str, str]:
    # Imported only now, after every case ran: a case forked from this process starts
    # its peak RSS at this process's size (see verify()).
    import adbc_driver_postgresql  # noqa: PLC0415
    import django  # noqa: PLC0415
    import pyarrow  # noqa: PLC0415

    found = {
        "Python": platform.python_version(),
        "Django": django.get_version(),
        "pyarrow": pyarrow.__version__,
        "adbc-driver-postgresql": adbc_driver_postgresql.__version__,
        "psql": subprocess.run(["psql", "--version"], capture_output=True, text=True).stdout.strip(),
        "PostgreSQL server": subprocess.run(
            ["psql", url, "-tAc", "SHOW server_version"], capture_output=True, text=True
        ).stdout.strip(),
        "gzip": subprocess.run(["gzip", "--version"], capture_output=True, text=True).stdout.splitlines()[0],
        "connectorx": importlib.metadata.version("connectorx"),
    }
    if mysql_url:  # `--mysql-url ''`: no MariaDB cases
        found["mysql"] = subprocess.run(["mysql", "--version"], capture_output=True, text=True).stdout.strip()
        found["MariaDB server"] = subprocess.run(
            [*mysql_client(mysql_url), "-N", "-e", "SELECT VERSION()"], capture_output=True, text=True
        ).stdout.strip()
    if DLT_PYTHON.exists():
        found["dlt"] = subprocess.run(
            [str(DLT_PYTHON), "-c", "import dlt; print(dlt.__version__)"], capture_output=True, text=True
        ).stdout.strip()
    return found


def machine() -> str:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    memory = int(Path("/proc/meminfo").read_text().split()[1]) * 1024
    return f"{os.cpu_count()} cores ({cpu}), {memory / 2**30:.1f} GiB memory, {platform.platform()}"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument(
        "--url", default=os.environ.get("BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/bench")
    )
    parser.add_argument("--mysql-url", default=os.environ.get("BENCH_MYSQL_URL", "mysql://root@127.0.0.1:3306/bench"))
    parser.add_argument("--rows", type=int, default=5_000_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--cases", default=",".join(CASES), help="comma-separated case names")
    parser.add_argument(
        "--memory-factor", type=int, default=4, help="the memory case's table is this many times larger"
    )
    parser.add_argument("--no-memory", action="store_true")
    parser.add_argument("--work", type=Path, default=BENCH_DIR / "var")
    parser.add_argument("--results", type=Path, default=BENCH_DIR / "RESULTS.md")
    args = parser.parse_args()
    cases = [case for case in args.cases.split(",") if case]
    if any(case.startswith("dlt-") for case in cases) and not DLT_PYTHON.exists():
        raise SystemExit(f"dlt's virtualenv is missing: run `make bench-deps` (expected {DLT_PYTHON})")

    table = "interactions"
    memory_table = f"interactions_x{args.memory_factor}"
    # In a child process, like everything heavy: see verify().
    prepare = [
        sys.executable,
        "-m",
        "bench.data",
        "--url",
        args.url,
        "--rows",
        str(args.rows),
        "--sqlite",
        str(args.work / "interactions.sqlite3"),
        *(["--mysql-url", args.mysql_url] if args.mysql_url else []),
    ]
    if not args.no_memory:
        prepare += ["--memory-table", memory_table, "--memory-rows", str(args.rows * args.memory_factor)]
    subprocess.run(prepare, cwd=ROOT, check=True)

    app_dir = args.work / "app"
    env = dict(
        os.environ,
        BENCH_POSTGRES_URL=args.url,
        BENCH_MYSQL_URL=args.mysql_url,
        BENCH_APP_DIR=str(app_dir),
        BENCH_TABLE=table,
    )
    subprocess.run(
        [sys.executable, "-m", "bench.cases", "setup", str(args.work / "out")], cwd=ROOT, env=env, check=True
    )
    if "psql-copy-contract" in cases:
        env["BENCH_COPY_SQL"] = subprocess.run(
            [sys.executable, "-m", "bench.cases", "copy-sql", str(args.work / "out")],
            cwd=ROOT,
            env=env,
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()

    measured: dict[str, list[dict]] = {case: [] for case in cases}
    out_root = args.work / "out"
    for round_number in range(1, args.rounds + 1):
        for case in cases:
            result = run_case(case, out_root, args.url, table, env)
            measured[case].append(result)
            print(f"round {round_number} {case}: {result['wall']:.2f} s, {result['rss'] / MB:.0f} MB", flush=True)
            if round_number == 1:
                result["verified"] = verify(case, result["files"], args.url, table, env)
                print(f"  read back: {result['verified']}", flush=True)
    memory = []
    if not args.no_memory:
        memory_env = dict(env, BENCH_TABLE=memory_table)
        for _ in range(args.rounds):
            result = run_case(MEMORY_CASE, out_root, args.url, memory_table, memory_env)
            memory.append(result)
            print(f"memory case: {result['wall']:.2f} s, {result['rss'] / MB:.0f} MB", flush=True)
    shutil.rmtree(out_root, ignore_errors=True)
    report = write_results(args, measured, memory, table)
    print(report)


def write_results(args, measured: dict, memory: list[dict], table: str) -> str:
    text = render(
        machine=machine(),
        date=dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        versions=versions(args.url, args.mysql_url),
        rows=args.rows,
        rounds=args.rounds,
        cases=CASES,
        measured=measured,
        memory=memory,
        memory_rows=args.rows * args.memory_factor,
    )
    # bench.incremental's and bench.scale's sections are measured on their own: keep them.
    for kept in (kept_section(args.results), kept_scale_section(args.results)):
        if kept:
            text = text.rstrip("\n") + "\n\n" + kept + "\n"
    args.results.write_text(text)
    return text


if __name__ == "__main__":
    main()
