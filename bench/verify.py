"""Read a case's files back with pyarrow and compare them with the source, row for row.

Our files must hold exactly the source rows (sorted by id, every column equal); the
competitors' files are counted (their text formats print values their own way).
"""

from __future__ import annotations

import gzip
from functools import cache

import adbc_driver_postgresql.dbapi as pg
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.json as pa_json
import pyarrow.parquet as pq


@cache
def source_table(url: str, table: str) -> pa.Table:
    with pg.connect(url) as connection, connection.cursor() as cursor:
        cursor.execute(f'SELECT * FROM "{table}" ORDER BY id')
        result = cursor.fetch_arrow_table()
    amount = result.column("amount")
    storage = pa.chunked_array([chunk.storage for chunk in amount.chunks], pa.string())
    return result.set_column(result.schema.get_field_index("amount"), "amount", pc.cast(storage, pa.decimal128(12, 2)))


def _read(kind: str, files: list[str], schema: pa.Schema) -> pa.Table:
    tables = []
    for name in sorted(files):
        if kind == "parquet":
            tables.append(pq.read_table(name))
        elif kind == "csv":
            types = {field.name: (pa.string() if pa.types.is_timestamp(field.type) else field.type) for field in schema}
            options = pa_csv.ConvertOptions(
                column_types=types, strings_can_be_null=True, quoted_strings_can_be_null=False
            )
            tables.append(pa_csv.read_csv(name, convert_options=options))
        else:
            explicit = pa.schema(
                [
                    pa.field(
                        f.name,
                        pa.float64()
                        if pa.types.is_decimal(f.type)
                        else pa.string()
                        if pa.types.is_timestamp(f.type)
                        else f.type,
                    )
                    for f in schema
                ]
            )
            stream = pa.input_stream(name, compression="gzip" if name.endswith(".gz") else None)
            tables.append(pa_json.read_json(stream, parse_options=pa_json.ParseOptions(explicit_schema=explicit)))
    return pa.concat_tables(tables, promote_options="permissive")


def _count_lines(files: list[str]) -> int:
    total = 0
    for name in files:
        opener = gzip.open if name.endswith(".gz") else open
        with opener(name, "rb") as fh:
            total += sum(chunk.count(b"\n") for chunk in iter(lambda fh=fh: fh.read(1 << 20), b""))
    return total


def check(case: str, kind: str, files: list[str], url: str, table: str) -> str:
    source = source_table(url, table)
    if case.endswith("-sqlite"):
        source = source.slice(0, min(source.num_rows, 1_000_000))
    if not case.startswith("ours"):
        if kind == "parquet":
            rows = sum(pq.ParquetFile(name).metadata.num_rows for name in files if name.endswith(".parquet"))
        else:
            rows = _count_lines(files) - (1 if kind in {"csv", "tsv"} else 0)  # a header line
        if rows != source.num_rows:
            raise SystemExit(f"{case}: {rows} rows read back, the source has {source.num_rows}")
        return f"{rows:,} rows (counted)"
    exported = _read(kind, files, source.schema).sort_by("id")
    if exported.num_rows != source.num_rows:
        raise SystemExit(f"{case}: {exported.num_rows} rows read back, the source has {source.num_rows}")
    for field in source.schema:
        expected, actual = source.column(field.name), exported.column(field.name)
        if pa.types.is_timestamp(field.type) and not pa.types.is_timestamp(actual.type):
            actual = pc.cast(pc.replace_substring(actual, "Z", "+00:00"), field.type)
        if kind == "ndjson" and pa.types.is_decimal(field.type):
            # Through text: Arrow's decimal-to-float cast isn't correctly rounded, a JSON parser is.
            expected = pc.cast(pc.cast(expected, pa.string()), pa.float64())
        if actual.type != expected.type:
            actual = pc.cast(actual, expected.type)
        if not actual.equals(expected):
            raise SystemExit(f"{case}: column {field.name} differs from the source")
    return f"{exported.num_rows:,} rows, every column equal to the source"


if __name__ == "__main__":
    import sys

    print(check(sys.argv[1], sys.argv[2], sys.argv[5:], sys.argv[3], sys.argv[4]))
