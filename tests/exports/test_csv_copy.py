"""PostgreSQL's COPY writes our CSV itself, where the column types allow the file
contract byte for byte: the same bytes as the Arrow path, for every edge value."""

from __future__ import annotations

import gzip

import psycopg
import pytest

from exports.engine import FileSpec, write_copied_csv, write_files
from exports.filters import validate_filters
from exports.jobs import _copied
from exports.models import Database, refresh_datasets
from exports.sources import open_reader

EDGE_TEXTS = [
    "plain",
    "",
    "comma, inside",
    'quote " inside',
    "line\nbreak",
    "crlf\r\nend",
    "tab\tx; semi",
    "ünïcødé ✓",
    " lead",
    "=HYPERLINK(1)",  # the formula starts a spreadsheet-safe CSV defuses
    "-12",
    "+x",
    "@here",
    "\tfirst",
    "\rfirst",
]


@pytest.fixture
def pg_edges(pg_source_url, pg_table, db):
    with psycopg.connect(pg_source_url, autocommit=True) as conn:
        conn.execute(
            f"""CREATE TABLE "{pg_table}" (
                id bigint PRIMARY KEY, small smallint, label text, code varchar(10), letter char(3), uid uuid,
                doc jsonb, amount numeric(12,2), big numeric(30,10), flag boolean, day date,
                moment timestamptz, local_moment timestamp, "odd ""name"" col" text
            )"""
        )
        conn.execute(
            f"""INSERT INTO "{pg_table}"
            SELECT g, (g %% 300) - 150, (%(texts)s::text[])[1 + g %% {len(EDGE_TEXTS)}],
                   CASE WHEN g %% 7 = 0 THEN NULL ELSE 'c' || g END, 'ab', md5(g::text)::uuid,
                   CASE WHEN g %% 11 = 0 THEN '-5'::jsonb ELSE jsonb_build_object('n', g, 'q', 'a"b') END,
                   CASE WHEN g %% 5 = 0 THEN NULL ELSE (g - 500) / 3.0 END,
                   g * 1234567.0123456789, CASE WHEN g %% 3 = 0 THEN NULL ELSE g %% 2 = 0 END,
                   date '1969-12-30' + g, timestamptz '1969-12-31 23:59:59.5+00' + g * interval '1 hour 0.000123 s',
                   CASE WHEN g %% 4 = 0 THEN NULL ELSE timestamp '2026-03-29 01:30' + g * interval '17 minutes' END,
                   CASE WHEN g %% 6 = 0 THEN NULL ELSE 'x' END
            FROM generate_series(1, 3000) AS g""",
            {"texts": EDGE_TEXTS},
        )
        conn.execute(f"""INSERT INTO "{pg_table}" (id) VALUES (0)""")  # every other column NULL
    database = Database.objects.create(name="PG edges", url=pg_source_url)
    refresh_datasets(database)
    return database.datasets.get(name=pg_table)


def _both(dataset, tmp_path, *, compression="none", delimiter=",", header=True, safe=False, filters=()):
    spec = FileSpec(
        "csv", compression, 1_000_000, "edges", csv_delimiter=delimiter, csv_header=header, spreadsheet_safe=safe
    )
    checked = validate_filters(list(filters), dataset.columns)
    with open_reader(dataset, [], checked) as reader:
        chunks = reader.csv_copy(delimiter, spreadsheet_safe=safe)
        assert chunks is not None, "every column here has an exact COPY form"
        copied = write_copied_csv(
            chunks, dataset.column_names, spec, tmp_path / "copy", rows=lambda: reader.copied_rows
        )
    with open_reader(dataset, [], checked) as reader:
        [arrow] = write_files(reader.batches(), reader.schema, spec, tmp_path / "arrow")
    return copied, arrow


def _text(path) -> bytes:
    data = path.read_bytes()
    return gzip.decompress(data) if path.name.endswith(".gz") else data


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("compression", "delimiter", "header", "safe"),
    [("none", ",", True, False), ("gzip", ";", True, False), ("none", "\t", False, False), ("none", ",", True, True)],
)
def test_copy_writes_the_same_bytes_as_the_arrow_path(pg_edges, tmp_path, compression, delimiter, header, safe):
    copied, arrow = _both(pg_edges, tmp_path, compression=compression, delimiter=delimiter, header=header, safe=safe)
    assert _text(copied.path) == _text(arrow.path)
    assert (b'"\'=HYPERLINK(1)"' in _text(copied.path)) is safe
    assert (b'"\'-5"' in _text(copied.path)) is safe  # a jsonb number is text too
    assert copied.rows == arrow.rows == 3001
    assert copied.name == arrow.name
    assert (len(copied.sha256), copied.size_bytes) == (64, copied.path.stat().st_size)


@pytest.mark.django_db
def test_copy_applies_the_filters(pg_edges, tmp_path):
    filters = [
        {"column": "label", "operator": "contains", "value": "inside"},
        {"column": "moment", "operator": "gte", "value": "1970-02-01T00:00:00Z"},
    ]
    copied, arrow = _both(pg_edges, tmp_path, filters=filters)
    assert _text(copied.path) == _text(arrow.path)
    assert 0 < copied.rows < 3001


@pytest.mark.django_db
def test_floats_keep_the_arrow_path(pg_source_url, pg_table, db):
    with psycopg.connect(pg_source_url, autocommit=True) as conn:
        conn.execute(f'CREATE TABLE "{pg_table}" (id bigint PRIMARY KEY, ratio double precision)')
    database = Database.objects.create(name="PG floats", url=pg_source_url)
    refresh_datasets(database)
    with open_reader(database.datasets.get(name=pg_table), [], []) as reader:
        assert reader.csv_copy(",") is None


@pytest.mark.django_db
def test_a_run_copies_when_the_rows_fit_one_file_and_falls_back_when_they_did_not(pg_edges, tmp_path):
    progress = []
    spec = FileSpec("csv", "none", 5_000, "edges", spreadsheet_safe=True)
    with open_reader(pg_edges, [], []) as reader:
        files = _copied(reader, spec, reader.estimate_rows(), pg_edges.column_names, tmp_path / "a", progress.append)
    assert files is not None
    assert [f.rows for f in files] == [3001]
    assert progress[-1] >= 3001  # lines: a text's own line breaks count too
    # More rows than a file holds, though the estimate said fewer: nothing copied, the Arrow path writes them.
    small = FileSpec("csv", "none", 2_000, "edges")
    with open_reader(pg_edges, [], []) as reader:
        assert _copied(reader, small, 1_000, pg_edges.column_names, tmp_path / "b", progress.append) is None
    assert not (tmp_path / "b").exists()
    # An estimate above a file's rows: not tried.
    with open_reader(pg_edges, [], []) as reader:
        assert _copied(reader, small, 3_001, pg_edges.column_names, tmp_path / "c", progress.append) is None


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("moment timestamptz", "'infinity'"),
        ("moment timestamptz", "'0044-03-15 12:00:00+00 BC'"),
        ("day date", "'-infinity'"),
        ("amount numeric(12,2)", "'NaN'"),
    ],
    ids=["infinite timestamp", "BC timestamp", "infinite date", "NaN"],
)
def test_a_value_without_an_exact_copy_form_sends_the_run_down_the_arrow_path(
    pg_source_url, pg_table, db, tmp_path, column, value
):
    """COPY would write these as text of its own (or nothing): never silently. The run
    takes the Arrow path, which writes them by the contract or fails saying why."""
    with psycopg.connect(pg_source_url, autocommit=True) as conn:
        conn.execute(f'CREATE TABLE "{pg_table}" (id bigint PRIMARY KEY, {column})')
        conn.execute(f'INSERT INTO "{pg_table}" VALUES (1, NULL), (2, {value})')
    database = Database.objects.create(name="PG odd", url=pg_source_url)
    refresh_datasets(database)
    dataset = database.datasets.get(name=pg_table)
    with open_reader(dataset, [], []) as reader:
        spec = FileSpec("csv", "none", 1_000, "odd")
        assert _copied(reader, spec, 2, dataset.column_names, tmp_path / "odd", lambda rows: None) is None
    assert not (tmp_path / "odd").exists()
