"""The RQ worker class of `manage.py rqworker` (settings.RQ["WORKER_CLASS"])."""

from __future__ import annotations

from rq import Worker

# Loaded once in the worker's main process, before it forks a work horse for each job:
# the horses share these pages instead of each importing pyarrow, the ADBC drivers and
# the store SDKs again (the 200 MB export to S3 peaks ~20 MB lower).
import connectors.probe  # noqa: F401
import exports.jobs  # noqa: F401


class ExportWorker(Worker):
    pass
