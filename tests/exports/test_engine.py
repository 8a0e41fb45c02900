"""The file writers, read back with independent readers (csv, json, gzip, pyarrow)."""

from __future__ import annotations

import csv
import gzip
import hashlib
import json
import os
import random
from datetime import UTC, date, datetime
from decimal import Decimal

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from exports.engine import FileSpec, _format_timestamps, _json_values, write_files
from exports.layout import file_extension

SCHEMA = pa.schema(
    [
        ("id", pa.int64()),
        ("name", pa.string()),
        ("amount", pa.decimal128(12, 2)),
        ("ratio", pa.float64()),
        ("ok", pa.bool_()),
        ("at", pa.timestamp("us", tz="UTC")),
        ("local", pa.timestamp("us")),
        ("day", pa.date32()),
    ]
)
TEXTS = [
    "plain",
    "comma, inside",
    'quote " inside',
    "new\nline",
    "cr\rhere",
    " spaced ",
    "tab\tx",
    "东京 🚀 مرحبا",
    "ctrl\x01\x1f",
    "back\\slash",
    "",
    None,
]


def make_rows(count: int) -> list[dict]:
    return [
        {
            "id": i,
            "name": TEXTS[i % len(TEXTS)],
            "amount": None if i % 5 == 4 else Decimal(i * 37 % 20001 - 10000).scaleb(-2),
            "ratio": None if i % 6 == 5 else i / 7,
            "ok": None if i % 4 == 3 else i % 2 == 0,
            "at": None if i % 9 == 8 else datetime(2026, 1, 1, 12, 0, 0, i * 1001 % 1_000_000, tzinfo=UTC),
            "local": datetime(2025, 6, 1, 8, 30, i % 60),
            "day": date(2020, 2, 29) if i % 2 else None,
        }
        for i in range(count)
    ]


def batches(rows: list[dict], size: int) -> list[pa.RecordBatch]:
    table = pa.Table.from_pylist(rows, schema=SCHEMA)
    return table.to_batches(max_chunksize=size)


def read_back(files, file_format: str, delimiter=",") -> list[dict]:
    out = []
    for written in files:
        opener = gzip.open if written.name.endswith(".gz") else open
        if file_format == "parquet":
            out += pq.read_table(written.path).to_pylist()
            continue
        with opener(written.path, "rt", encoding="utf-8", newline="") as fh:
            if file_format == "ndjson":
                out += [json.loads(line) for line in fh.read().split("\n") if line]
            else:
                out += list(csv.DictReader(fh, delimiter=delimiter))
    return out


def as_text_row(row: dict) -> dict:
    """What the text formats promise for each value (docs/file-contract.md)."""
    at = row["at"]
    return {
        "id": row["id"],
        "name": row["name"],
        "amount": None if row["amount"] is None else f"{row['amount']:.2f}",
        "ratio": row["ratio"],
        "ok": row["ok"],
        "at": None if at is None else at.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "local": row["local"].strftime("%Y-%m-%dT%H:%M:%S.%f"),
        "day": None if row["day"] is None else row["day"].isoformat(),
    }


@pytest.mark.parametrize("compression", ["none", "snappy", "zstd", "gzip"])
def test_parquet_keeps_every_value_and_type(tmp_path, compression):
    rows = make_rows(50)
    files = write_files(batches(rows, 7), SCHEMA, FileSpec("parquet", compression, 20, "p"), tmp_path)
    assert [f.rows for f in files] == [20, 20, 10]
    assert pq.read_schema(files[0].path) == SCHEMA
    assert read_back(files, "parquet") == rows


@pytest.mark.parametrize("compression", ["none", "gzip"])
def test_ndjson_round_trips_through_a_json_parser(tmp_path, compression):
    rows = make_rows(40)
    files = write_files(batches(rows, 9), SCHEMA, FileSpec("ndjson", compression, 1000, "n"), tmp_path)
    parsed = read_back(files, "ndjson")
    expected = [as_text_row(row) for row in rows]
    for row in expected:
        row["amount"] = None if row["amount"] is None else float(row["amount"])
    assert [{**row, "amount": None if row["amount"] is None else float(row["amount"])} for row in parsed] == expected
    assert list(parsed[0]) == SCHEMA.names
    # Decimals are JSON numbers written with their exact text.
    first_line = (gzip.open if compression == "gzip" else open)(files[0].path, "rt").readline()
    assert '"amount":' + f"{rows[0]['amount']:.2f}" in first_line


def test_ndjson_writes_nan_and_infinity_as_null(tmp_path):
    schema = pa.schema([("x", pa.float64())])
    batch = pa.record_batch([pa.array([float("nan"), float("inf"), -float("inf"), 1.5])], schema=schema)
    [written] = write_files([batch], schema, FileSpec("ndjson", "none", 10, "f"), tmp_path)
    assert written.path.read_text() == '{"x":null}\n{"x":null}\n{"x":null}\n{"x":1.5}\n'


@pytest.mark.parametrize("delimiter", [",", ";", "\t", "|"])
def test_csv_quotes_per_rfc_4180_and_reads_back(tmp_path, delimiter):
    rows = make_rows(30)
    spec = FileSpec("csv", "gzip", 1000, "c", csv_delimiter=delimiter)
    files = write_files(batches(rows, 8), SCHEMA, spec, tmp_path)
    parsed = read_back(files, "csv", delimiter=delimiter)
    expected = []
    for row in map(as_text_row, rows):
        expected.append(
            {
                key: "" if value is None else ("true" if value is True else "false" if value is False else str(value))
                for key, value in row.items()
            }
        )
        expected[-1]["ratio"] = "" if row["ratio"] is None else expected[-1]["ratio"]
    assert [{k: v for k, v in row.items() if k != "ratio"} for row in parsed] == [
        {k: v for k, v in row.items() if k != "ratio"} for row in expected
    ]
    assert [float(r["ratio"]) if r["ratio"] else None for r in parsed] == [r["ratio"] for r in rows]


def test_csv_tells_an_empty_text_from_a_missing_one_and_can_drop_the_header(tmp_path):
    schema = pa.schema([("a", pa.string()), ("b", pa.int64())])
    batch = pa.record_batch([pa.array(["", None]), pa.array([1, None])], schema=schema)
    [written] = write_files([batch], schema, FileSpec("csv", "none", 10, "h", csv_header=False), tmp_path)
    assert written.path.read_bytes() == b'"",1\n,\n'


@pytest.mark.parametrize(
    ("rows_per_file", "parts"), [(10, [10, 10, 10]), (7, [7, 7, 7, 7, 2]), (100, [30]), (1, [1] * 30)]
)
def test_it_splits_files_at_rows_per_file(tmp_path, rows_per_file, parts):
    rows = make_rows(30)
    files = write_files(batches(rows, 10), SCHEMA, FileSpec("csv", "none", rows_per_file, "s"), tmp_path)
    assert [f.rows for f in files] == parts
    assert [f.name for f in files] == [f"s-{i}.csv" for i in range(1, len(parts) + 1)]
    assert [int(r["id"]) for r in read_back(files, "csv")] == list(range(30))


def test_size_and_sha256_describe_the_bytes_on_disk(tmp_path):
    files = write_files(batches(make_rows(25), 10), SCHEMA, FileSpec("ndjson", "gzip", 10, "h"), tmp_path)
    for written in files:
        data = written.path.read_bytes()
        assert written.size_bytes == len(data)
        assert written.sha256 == hashlib.sha256(data).hexdigest()


def test_the_same_rows_give_the_same_bytes(tmp_path):
    for file_format, compression in [("csv", "gzip"), ("ndjson", "gzip"), ("parquet", "zstd")]:
        first = write_files(
            batches(make_rows(20), 6), SCHEMA, FileSpec(file_format, compression, 50, "d"), tmp_path / "a" / file_format
        )
        second = write_files(
            batches(make_rows(20), 6), SCHEMA, FileSpec(file_format, compression, 50, "d"), tmp_path / "b" / file_format
        )
        assert [f.sha256 for f in first] == [f.sha256 for f in second]


@pytest.mark.parametrize("file_format", ["csv", "ndjson", "parquet"])
def test_no_rows_still_gives_one_valid_file(tmp_path, file_format):
    compression = "gzip" if file_format != "parquet" else "snappy"
    [written] = write_files([], SCHEMA, FileSpec(file_format, compression, 10, "e"), tmp_path)
    assert written.rows == 0
    assert written.part == 1
    if file_format == "parquet":
        assert pq.read_table(written.path).schema == SCHEMA
    elif file_format == "csv":
        assert gzip.open(written.path).read() == b'"id","name","amount","ratio","ok","at","local","day"\n'
    else:
        assert gzip.open(written.path).read() == b""


def test_it_refuses_a_codec_a_format_does_not_have():
    assert file_extension("parquet", "gzip") == "gz.parquet"
    with pytest.raises(ValueError, match="csv files can't be compressed with snappy"):
        file_extension("csv", "snappy")


def test_an_error_from_progress_stops_the_work_and_closes_the_file(tmp_path):
    class Stop(Exception):
        pass

    def progress(rows):
        if rows >= 20:
            raise Stop

    with pytest.raises(Stop):
        write_files(
            batches(make_rows(50), 10), SCHEMA, FileSpec("csv", "gzip", 15, "x"), tmp_path, on_progress=progress
        )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x-1.csv.gz", "x-2.csv.gz"]
    open_here = [fd for fd in os.listdir("/proc/self/fd") if _points_into(f"/proc/self/fd/{fd}", tmp_path)]
    assert open_here == []  # the half-written part was closed


def _points_into(link: str, folder) -> bool:
    try:
        return os.readlink(link).startswith(str(folder))
    except OSError:
        return False


def test_timestamps_print_like_strftime_across_the_epoch_and_centuries():
    rng = random.Random(7)
    micros = [rng.randint(-(10**17), 10**17) for _ in range(20_000)] + [None, -1, 0, 1, -86_400_000_000]
    for zone in ("UTC", None):
        array = pa.array(micros, pa.int64()).cast(pa.timestamp("us", tz=zone))
        expected = pc.strftime(array, format="%Y-%m-%dT%H:%M:%SZ" if zone else "%Y-%m-%dT%H:%M:%S")
        assert _format_timestamps(array).equals(expected)
    seconds = pa.array([1_700_000_000], pa.int64()).cast(pa.timestamp("s", tz="UTC"))
    assert _format_timestamps(seconds).to_pylist() == ["2023-11-14T22:13:20.000000Z"]


@pytest.mark.parametrize(
    "texts",
    [
        ["plain", "ünïcødé ✓", "", "\u2028 kept", "\x7f"],  # nothing to escape: one scan, then quotes
        ['a"b', "back\\slash", "line\nbreak", "".join(chr(code) for code in range(0x20)), "plain"],
    ],
    ids=["nothing to escape", "escapes"],
)
def test_ndjson_strings_are_escaped_as_json_dumps_escapes_them(texts):
    written = _json_values(pa.array([*texts, None], pa.string())).to_pylist()
    assert written == [json.dumps(text, ensure_ascii=False) for text in texts] + ["null"]
