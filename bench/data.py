"""Benchmark data: a PostgreSQL `interactions` table and a SQLite copy, created once and
reused while their row counts match.

About ten columns of realistic types: bigint ids, short texts with few distinct values,
an e-mail, a country code, a timestamp with time zone, a numeric amount and a
~40-character payload. With --mysql-url, the same rows in MariaDB too.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
from pathlib import Path
from urllib.parse import unquote, urlsplit

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


def use_app_database(work: Path, database_url: str = "") -> None:
    """The environment for a bench of the app itself (lists, scheduler), before Django is
    set up: its own data folder, and SQLite there or the PostgreSQL database given
    (created if missing)."""
    os.environ["EXPORTSITE_DATA_DIR"] = str(work)
    os.environ.pop("DATABASE_URL", None)
    if database_url:
        ensure_database(database_url)
        os.environ["DATABASE_URL"] = database_url
    os.environ["DJANGO_SETTINGS_MODULE"] = "exportsite.settings"
    os.environ.setdefault("LOG_LEVEL", "WARNING")


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


# The same rows in MariaDB, made by the server from the same formulas (its SEQUENCE
# engine's seq_1_to_N): bench/verify.py compares the MySQL cases' files with PostgreSQL's table.
MYSQL_CREATE = """
CREATE TABLE interactions (
    id BIGINT PRIMARY KEY,
    profile_id BIGINT NOT NULL,
    channel VARCHAR(32) NOT NULL,
    event_type VARCHAR(32) NOT NULL,
    campaign VARCHAR(64),
    email VARCHAR(255) NOT NULL,
    country_code CHAR(2) NOT NULL,
    occurred_at TIMESTAMP(6) NOT NULL,
    amount DECIMAL(12,2),
    payload TEXT NOT NULL
) CHARACTER SET utf8mb4
"""
MYSQL_FILL = """
INSERT INTO interactions
SELECT seq,
       (seq * 2654435761) % 1000003,
       ELT(1 + seq % 5, 'email', 'web', 'mobile_app', 'sms', 'push'),
       ELT(1 + (seq DIV 7) % 6, 'send', 'open', 'click', 'page_view', 'purchase', 'unsubscribe'),
       CASE WHEN seq % 4 = 0 THEN NULL ELSE ELT(1 + seq % 4, 'spring_sale', 'black_friday', 'welcome', 'winback') END,
       CONCAT('user', (seq * 2654435761) % 1000003, '@example.com'),
       ELT(1 + (seq DIV 3) % 8, 'US', 'FR', 'DE', 'GB', 'ES', 'IT', 'JP', 'BR'),
       TIMESTAMP '2024-01-01 00:00:00' + INTERVAL (seq * 5) SECOND,
       CASE WHEN seq % 3 = 0 THEN NULL ELSE ((seq * 7919) % 100000) / 100.0 END,
       CONCAT(MD5(seq), LOWER(HEX(seq)))
FROM seq_{start}_to_{stop}
"""


def mysql_connect(url: str, database: str | None = None):
    import pymysql  # noqa: PLC0415 - only the MariaDB cases need it

    parts = urlsplit(url)
    return pymysql.connect(
        host=parts.hostname,
        port=parts.port or 3306,
        user=unquote(parts.username or ""),
        password=unquote(parts.password or ""),
        database=database,
        autocommit=True,
        init_command="SET time_zone = '+00:00'",
    )


def ensure_mysql_table(url: str, rows: int) -> None:
    name = unquote(urlsplit(url).path.lstrip("/"))
    with mysql_connect(url) as conn, conn.cursor() as cursor:
        cursor.execute(f"CREATE DATABASE IF NOT EXISTS `{name}`")
        cursor.execute(f"USE `{name}`")
        cursor.execute("SHOW TABLES LIKE 'interactions'")
        if cursor.fetchall():
            cursor.execute("SELECT COUNT(*) FROM interactions")
            if cursor.fetchone()[0] == rows:
                return
            cursor.execute("DROP TABLE interactions")
        print(f"creating the MariaDB copy with {rows:,} rows...", flush=True)
        cursor.execute(MYSQL_CREATE)
        step = 1_000_000
        for start in range(1, rows + 1, step):
            cursor.execute(MYSQL_FILL.format(start=start, stop=min(start + step - 1, rows)))
        cursor.execute("ANALYZE TABLE interactions")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", default=DEFAULT_URL)
    parser.add_argument("--rows", type=int, default=5_000_000)
    parser.add_argument("--sqlite", type=Path, help="also a SQLite copy of the first 1,000,000 rows here")
    parser.add_argument("--mysql-url", help="also a MariaDB copy of the table in this database")
    parser.add_argument("--memory-table")
    parser.add_argument("--memory-rows", type=int)
    args = parser.parse_args()
    ensure_table(args.url, "interactions", args.rows)
    if args.sqlite:
        ensure_sqlite_copy(args.url, "interactions", args.sqlite, min(args.rows, 1_000_000))
    if args.mysql_url:
        ensure_mysql_table(args.mysql_url, args.rows)
    if args.memory_table:
        ensure_table(args.url, args.memory_table, args.memory_rows)


if __name__ == "__main__":
    main()
