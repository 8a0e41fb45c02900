"""Fairness between organisations, with real workers: one organisation's pile of runs
never holds back another's, and EXPORT_MAX_RUNS_PER_ORG holds (exports/dispatch.py)."""

from __future__ import annotations

import itertools
import time

import pytest

from exports import actions
from exports.models import Export, Run
from tests.conftest import start_worker_in_background

pytestmark = pytest.mark.django_db(transaction=True)


def one_shots(tenant, count: int) -> list[Export]:
    dataset = tenant.database.datasets.get(name="profiles")
    return [
        Export.objects.create(
            name=f"{tenant.organisation.name} {number}",
            owner=tenant.marketer,
            dataset=dataset,
            sandbox=tenant.production,
        )
        for number in range(count)
    ]


def launch_all(tenant, exports: list[Export]) -> list[Run]:
    return [actions.launch(tenant.marketer, export, queue_anyway=True) for export in exports]


def run_to_the_end(runs: list[Run], *, workers: int, env: dict[str, str], timeout: float = 180) -> None:
    """Real workers, waiting for jobs, until every run is over."""
    processes = [start_worker_in_background(burst=False, env=env) for _ in range(workers)]
    try:
        deadline = time.monotonic() + timeout
        ids = [run.id for run in runs]
        while Run.objects.filter(id__in=ids, status__in=Run.ACTIVE).exists():
            assert time.monotonic() < deadline, list(Run.objects.filter(id__in=ids).values_list("status", flat=True))
            time.sleep(0.2)
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(timeout=30)
    for run in runs:
        run.refresh_from_db()
        assert run.status == Run.Status.SUCCEEDED, (run.error_code, run.error_message)


def test_one_organisations_pile_of_runs_does_not_hold_back_anothers(tenants, settings):
    settings.EXPORT_MAX_RUNS_PER_ORG = 2
    acme, bravo = tenants
    acme_runs = launch_all(acme, one_shots(acme, 20))
    # Only Acme's first two went to the workers; the rest wait their turn in the database.
    assert Run.objects.filter(id__in=[r.id for r in acme_runs], dispatched_at__isnull=False).count() == 2
    (bravo_run,) = launch_all(bravo, one_shots(bravo, 1))
    run_to_the_end([*acme_runs, bravo_run], workers=2, env={"EXPORT_MAX_RUNS_PER_ORG": "2"})

    third = sorted(acme_runs, key=lambda run: run.started_at)[2]
    assert bravo_run.started_at < third.started_at
    # Acme's runs went to the workers in the order they were created (two at a time: which
    # of two workers forks its work horse first is a race, so the start order is not).
    assert [run.id for run in sorted(acme_runs, key=lambda run: run.dispatched_at)] == [run.id for run in acme_runs]


def test_with_a_limit_of_one_an_organisations_runs_never_overlap_and_keep_their_order(tenants, settings):
    settings.EXPORT_MAX_RUNS_PER_ORG = 1
    acme, bravo = tenants
    acme_runs = launch_all(acme, one_shots(acme, 6))
    bravo_runs = launch_all(bravo, one_shots(bravo, 2))
    run_to_the_end([*acme_runs, *bravo_runs], workers=3, env={"EXPORT_MAX_RUNS_PER_ORG": "1"})

    for runs in (acme_runs, bravo_runs):
        assert [run.id for run in sorted(runs, key=lambda run: run.started_at)] == [run.id for run in runs]
        for earlier, later in itertools.pairwise(runs):
            assert earlier.finished_at <= later.started_at, "two runs of one organisation overlapped"
    # Bravo was not kept waiting behind Acme's queue: its first run started before Acme's second.
    assert bravo_runs[0].started_at < acme_runs[1].started_at
