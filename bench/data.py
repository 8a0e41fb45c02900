"""Benchmark data: a PostgreSQL `interactions` table and a SQLite copy, created once and
reused while their row counts match.

About ten columns of realistic types: bigint ids, short texts with few distinct values,
an e-mail, a country code, a timestamp with time zone, a numeric amount and a
~40-character payload.
"""

from __future__ import annotations

import argparse
import sqlite3
from pathlib import Path

import psycopg
from psycopg import sql

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/bench"
COLUMNS = [
    "id",
    "profile_id",
    "channel",
    "event_type",
    "campaign",
    "email",
    "country_code",
    "occurred_at",
    "amount",
    "payload",
]

CREATE = """
CREATE TABLE {table} (
    id bigint PRIMARY KEY,
    profile_id bigint NOT NULL,
    channel text NOT NULL,
    event_type text NOT NULL,
    campaign text,
    email text NOT NULL,
    country_code text NOT NULL,
    occurred_at timestamptz NOT NULL,
    amount numeric(12,2),
    payload text NOT NULL
)
"""
FILL = """
INSERT INTO {table}
SELECT g,
       (g * 2654435761) %% 1000003,
       (ARRAY['email','web','mobile_app','sms','push'])[1 + g %% 5],
       (ARRAY['send','open','click','page_view','purchase','unsubscribe'])[1 + (g / 7) %% 6],
       CASE WHEN g %% 4 = 0 THEN NULL ELSE (ARRAY['spring_sale','black_friday','welcome','winback'])[1 + g %% 4] END,
       'user' || ((g * 2654435761) %% 1000003) || '@example.com',
       (ARRAY['US','FR','DE','GB','ES','IT','JP','BR'])[1 + (g / 3) %% 8],
       timestamptz '2024-01-01 00:00:00+00' + g * interval '5 seconds',
       CASE WHEN g %% 3 = 0 THEN NULL ELSE ((g * 7919) %% 100000) / 100.0 END,
       md5(g::text) || to_hex(g)
FROM generate_series(%(start)s::bigint, %(stop)s::bigint) AS g
"""


def server_url(url: str) -> str:
    return url.rsplit("/", 1)[0] + "/postgres"


def ensure_database(url: str) -> None:
    name = url.rsplit("/", 1)[1]
    with psycopg.connect(server_url(url), autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def ensure_table(url: str, table: str, rows: int) -> None:
    ensure_database(url)
    with psycopg.connect(url, autocommit=True) as conn:
        exists = conn.execute("SELECT to_regclass(%s)", [table]).fetchone()[0]
        if exists:
            count = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table))).fetchone()[0]
            if count == rows:
                return
            conn.execute(sql.SQL("DROP TABLE {}").format(sql.Identifier(table)))
        print(f"creating {table} with {rows:,} rows...", flush=True)
        conn.execute(sql.SQL(CREATE).format(table=sql.Identifier(table)))
        step = 1_000_000
        for start in range(1, rows + 1, step):
            conn.execute(
                sql.SQL(FILL).format(table=sql.Identifier(table)), {"start": start, "stop": min(start + step - 1, rows)}
            )
        conn.execute(sql.SQL("VACUUM ANALYZE {}").format(sql.Identifier(table)))


def ensure_sqlite_copy(url: str, table: str, path: Path, rows: int) -> None:
    """A SQLite copy of the first `rows` rows, with the types SQLite sources declare."""
    if path.exists():
        with sqlite3.connect(path) as conn:
            try:
                if conn.execute("SELECT count(*) FROM interactions").fetchone()[0] == rows:
                    return
            except sqlite3.Error:
                pass
        path.unlink()
    print(f"creating the SQLite copy with {rows:,} rows...", flush=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    building = path.with_suffix(".building")
    building.unlink(missing_ok=True)
    with sqlite3.connect(building) as lite, psycopg.connect(url) as pg:
        lite.execute(
            "CREATE TABLE interactions (id INTEGER PRIMARY KEY, profile_id INTEGER, channel TEXT, event_type TEXT, "
            "campaign TEXT, email TEXT, country_code TEXT, occurred_at TIMESTAMP, amount DECIMAL(12,2), payload TEXT)"
        )
        with pg.cursor(name="copy") as cursor:
            cursor.execute(
                sql.SQL(
                    "SELECT id, profile_id, channel, event_type, campaign, email, country_code, "
                    "to_char(occurred_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS+00:00'), amount::float8, "
                    "payload FROM {} ORDER BY id LIMIT %s"
                ).format(sql.Identifier(table)),
                [rows],
            )
            while chunk := cursor.fetchmany(100_000):
                lite.executemany("INSERT INTO interactions VALUES (?,?,?,?,?,?,?,?,?,?)", chunk)
    building.rename(path)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", default=DEFAULT_URL)
    parser.add_argument("--rows", type=int, default=5_000_000)
    parser.add_argument("--sqlite", type=Path, help="also a SQLite copy of the first 1,000,000 rows here")
    parser.add_argument("--memory-table")
    parser.add_argument("--memory-rows", type=int)
    args = parser.parse_args()
    ensure_table(args.url, "interactions", args.rows)
    if args.sqlite:
        ensure_sqlite_copy(args.url, "interactions", args.sqlite, min(args.rows, 1_000_000))
    if args.memory_table:
        ensure_table(args.url, args.memory_table, args.memory_rows)


if __name__ == "__main__":
    main()
