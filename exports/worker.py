"""The RQ worker class of `manage.py rqworker` (settings.RQ["WORKER_CLASS"]).

Two things RQ knows first, and tells the runs:
- **A work horse died** (SIGKILL, the OOM killer): RQ sees it the moment `waitpid`
  returns, so the run becomes WORKER_LOST at once, and the reconciler's retry follows
  after its back-off. The heartbeat check stays for a worker whose machine vanished.
- **A deploy** (SIGTERM to the worker): RQ's warm shutdown would wait for the run to end,
  which may take hours. The worker passes the signal on to its work horse, which stops the
  run at its next batch, discards what it wrote and puts the run back in the queue without
  counting an attempt (exports/jobs.py, `Interrupted`); then the worker exits. A second
  SIGTERM is RQ's cold shutdown: the horse is killed, and the run is lost and retried.
"""

from __future__ import annotations

import logging
import os
import signal

from django.db import connections
from rq import Worker

# Loaded once in the worker's main process, before it forks a work horse for each job:
# the horses share these pages instead of each importing pyarrow, the ADBC drivers and
# the store SDKs again (the 200 MB export to S3 peaks ~20 MB lower).
import connectors.probe  # noqa: F401
import exports.jobs
import exports.partitions

logger = logging.getLogger(__name__)


class ExportWorker(Worker):
    def setup_work_horse_signals(self) -> None:
        super().setup_work_horse_signals()
        # In the horse: SIGTERM asks the run to stop at its next batch and go back to the queue.
        signal.signal(signal.SIGTERM, exports.jobs.request_interruption)

    def request_stop(self, signum, frame) -> None:
        horse = self.horse_pid
        if horse:
            logger.info("worker %s: stopping; its run goes back to the queue at its next batch", self.name)
            try:
                os.kill(horse, signal.SIGTERM)
            except ProcessLookupError:
                pass
        super().request_stop(signum, frame)

    def handle_work_horse_killed(self, job, retpid, ret_val, rusage) -> None:
        super().handle_work_horse_killed(job, retpid, ret_val, rusage)
        how = f"signal {os.WTERMSIG(ret_val)}" if ret_val and os.WIFSIGNALED(ret_val) else f"exit status {ret_val}"
        # Failing it is all: the reconciler catches the run by its silent heartbeat otherwise.
        if job.func_name == "exports.jobs.run_export":
            _in_main_process(exports.jobs.horse_died, job.id, how)
        elif job.func_name == exports.partitions.JOB:
            _in_main_process(exports.jobs.partition_horse_died, job.id, job.args[0], how)
        # Otherwise a hook call's attempt: the scheduler's tick closes it (exports/hooks.py).

    def monitor_work_horse(self, job, queue, execution) -> None:
        super().monitor_work_horse(job, queue, execution)
        # Now that RQ is done with the job, a run its horse put back may be enqueued
        # again under the same job id (from the horse, RQ would then mark it finished).
        if job.func_name == "exports.jobs.run_export":
            _in_main_process(exports.jobs.after_horse, job.id)
        elif job.func_name == exports.partitions.JOB:
            _in_main_process(exports.jobs.after_partition_horse, job.args[0])


def _in_main_process(function, *args) -> None:
    """Run database work in the worker's main process, then close its connections: the
    next work horse is forked from this process and must not share them."""
    try:
        function(*args)
    except Exception:
        logger.exception("worker: %s failed", function.__name__)
    finally:
        connections.close_all()
