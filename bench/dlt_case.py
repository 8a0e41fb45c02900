"""dlt's sql_database source (pyarrow backend) to its filesystem destination.

Runs in bench's own dlt virtualenv: `python bench/dlt_case.py parquet|jsonl OUT_DIR`.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import dlt
from dlt.sources.sql_database import sql_table


def main() -> None:
    file_format, out_dir = sys.argv[1], Path(sys.argv[2]).resolve()
    url = os.environ["BENCH_POSTGRES_URL"].replace("postgresql://", "postgresql+psycopg2://", 1)
    table = os.environ.get("BENCH_TABLE", "interactions")
    out_dir.mkdir(parents=True, exist_ok=True)
    source = sql_table(credentials=url, table=table, backend="pyarrow")
    pipeline = dlt.pipeline(
        pipeline_name=f"bench_{file_format}",
        pipelines_dir=str(out_dir / ".dlt"),
        destination=dlt.destinations.filesystem(bucket_url=out_dir.as_uri()),
        dataset_name="bench",
    )
    info = pipeline.run(source, loader_file_format=file_format)
    info.raise_on_failed_jobs()
    files = sorted(str(path) for path in (out_dir / "bench" / table).rglob("*") if path.is_file())
    rows = pipeline.last_trace.last_normalize_info.row_counts.get(table)
    print(json.dumps({"rows": rows, "bytes": sum(Path(f).stat().st_size for f in files), "files": files}))


if __name__ == "__main__":
    main()
