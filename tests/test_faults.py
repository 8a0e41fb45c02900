"""The short fault suite (`python -m tests.faults --short`): a few runs of every scenario
of `make faults`, on a product of its own, each checked on the stores."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

BASE_DIR = Path(__file__).resolve().parent.parent

pytestmark = [pytest.mark.slow, pytest.mark.emulator]


def test_every_fault_ends_with_each_run_delivered_exactly_once():
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.faults", "--short", "--json"],
        cwd=BASE_DIR,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        output, _ = process.communicate(timeout=900)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)  # with the product it started
            process.wait()
    assert process.returncode == 0, output[-5000:]
    [line] = [line for line in output.splitlines() if line.startswith("JSON ")]
    rows = {row["scenario"].split(" ×")[0].rstrip(","): row for row in json.loads(line[5:])}
    assert len(rows) == 7, rows
    for name, row in rows.items():
        if name.startswith("Scheduler killed"):
            assert row["runs"] == "every slot once", row
            assert row["duplicates"] == 0, row
            continue
        assert row["runs"] > 0, row
        assert row["exactly_once"] == row["runs"], row
        assert (row["duplicates"], row["partial_tnfs"], row["failed"]) == (0, 0, 0), row
    assert "WORKER_LOST" in " ".join(rows["SIGKILL of the work horse at a random moment, Desktop and S3"]["notes"])
    assert rows["SIGTERM of a worker mid-run (a deploy)"]["notes"][0] == "no attempt counted, 1 run in all"
    assert "SOURCE_UNAVAILABLE" in " ".join(rows["Source connection terminated mid-run"]["notes"])
