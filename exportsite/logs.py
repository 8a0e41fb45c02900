"""Log lines: plain text by default, one JSON object per line with LOG_FORMAT=json.

Every line a job writes carries its run's id (`run_id`): `run_context` sets it for the
job's process (a work horse runs one job), and `RunIdFilter` puts it on each record,
including those of the libraries the job calls.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

_run_id: str | None = None


@contextmanager
def run_context(run_id: object) -> Iterator[None]:
    global _run_id
    previous, _run_id = _run_id, str(run_id)
    try:
        yield
    finally:
        _run_id = previous


class RunIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if _run_id is not None and not hasattr(record, "run_id"):
            record.run_id = _run_id
        return True
