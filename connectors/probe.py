"""Test connection: connect, then write, list and delete a small probe object under the
connector's path, and say which step failed and why.

Pressing the button never holds a web thread on a store: `start_test` records a
`ConnectionTest` and queues `run_connection_test` on the workers, and the page polls the
test until it is done. The job gives the probe what is left of CONNECTION_TEST_SECONDS
(counted from the press) and answers "timed out" when a store says nothing by then.
"""

from __future__ import annotations

import logging
import math
import threading
import uuid
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from typing import cast

import django_rq
from django.conf import settings
from django.contrib.auth.models import User
from django.db import connection, transaction
from django.utils import timezone

from connectors.errors import DestinationError, HostKeyNotTrusted, Problem
from connectors.models import ConnectionTest, Connector
from connectors.storage import open_destination
from exports.actions import FORBIDDEN, RATE_LIMITED, ActionRefused
from exports.permissions import Actor, can_change_connector
from exportsite import redaction

logger = logging.getLogger(__name__)

STEPS = ("connect", "write", "list", "delete")
TIMED_OUT = "Timed out"
NOT_RUN = "Not run"
PENDING = (ConnectionTest.State.QUEUED, ConnectionTest.State.RUNNING)
# How long past its deadline a test may stay unfinished before the page gives up on it
# (the worker that took it died, or no worker runs at all).
OVERDUE_AFTER = timedelta(seconds=15)


@dataclass
class Step:
    name: str
    ok: bool
    detail: str = ""
    problem: str = ""


@dataclass
class ProbeReport:
    steps: list[Step] = field(default_factory=list)
    # Set when an SFTP server answered with a key nobody has confirmed yet.
    unconfirmed_host_key: str = ""
    # The step under way, for a test stopped at its deadline.
    current: str = "connect"

    @classmethod
    def of(cls, test: ConnectionTest) -> ProbeReport:
        return cls(steps=[Step(**step) for step in test.steps], unconfirmed_host_key=test.unconfirmed_host_key)

    @property
    def ok(self) -> bool:
        return len(self.steps) == len(STEPS) and all(step.ok for step in self.steps)

    @property
    def failure(self) -> Step | None:
        return next((step for step in self.steps if not step.ok), None)

    def summary(self) -> str:
        if self.ok:
            return "Connected; wrote, listed and deleted a probe object."
        failed = self.failure
        return f"{failed.problem}: {failed.detail}" if failed else "not run"


def _run_steps(connector: Connector, report: ProbeReport) -> None:
    """Every step in turn, each recorded in `report` as it ends."""
    name = f"exportsite-probe-{uuid.uuid4().hex}.txt"  # no leading dot: Azure drops it
    try:
        with open_destination(connector) as destination:
            destination.call("connecting", destination.check)
            report.steps.append(Step("connect", True, connector.location))
            report.current = "write"
            destination.call("writing the probe", destination.write_bytes, name, b"exportsite connection test\n")
            report.steps.append(Step("write", True, destination.full_path(name)))
            report.current = "list"
            listed = destination.call("listing", destination.listdir, "")
            if name not in listed:
                raise DestinationError(Problem.WRITE, "the probe object was written but is not listed")
            report.steps.append(Step("list", True, f"{len(listed)} object(s) at the top of the path"))
            report.current = "delete"
            destination.call("deleting the probe", destination.delete, name)
            report.steps.append(Step("delete", True, "probe removed"))
    except DestinationError as exc:
        if isinstance(exc, HostKeyNotTrusted):
            report.unconfirmed_host_key = exc.fingerprint
        report.steps.append(Step(report.current, False, exc.message, exc.label))
    except Exception as exc:
        logger.exception("connection test of %s failed unexpectedly", connector.id)
        report.steps.append(Step(report.current, False, f"unexpected error ({type(exc).__name__})", "Failed"))


def _remember(connector_id, report: ProbeReport) -> None:
    Connector.objects.filter(id=connector_id).update(
        last_tested_at=timezone.now(), last_test_ok=report.ok, last_test_message=report.summary()
    )


def probe(connector: Connector) -> ProbeReport:
    """Run every step here and now, and remember the outcome on the connector."""
    report = ProbeReport()
    with redaction.scope(connector.secret_values().values()):
        _run_steps(connector, report)
    _remember(connector.id, report)
    connector.refresh_from_db(fields=["last_tested_at", "last_test_ok", "last_test_message"])
    return report


# Test connection as a job --------------------------------------------------------------


def start_test(user: Actor, connector: Connector) -> ConnectionTest:
    """Queue a test of `connector` for `user`, within their tests-per-minute."""
    if not can_change_connector(user, connector):
        raise ActionRefused(FORBIDDEN, "only the organisation's admins test destinations")
    user = cast(User, user)
    limit = settings.CONNECTION_TESTS_PER_MINUTE
    with transaction.atomic():
        if connection.features.has_select_for_update:
            User.objects.select_for_update().filter(pk=user.pk).first()  # one count at a time per user
        pending = ConnectionTest.objects.filter(connector=connector, state__in=PENDING).first()
        if pending is not None:
            return pending  # pressed again while it runs: the same test
        now = timezone.now()
        recent = list(
            ConnectionTest.objects.filter(user=user, created_at__gt=now - timedelta(minutes=1))
            .order_by("-created_at")
            .values_list("created_at", flat=True)[:limit]
        )
        if len(recent) >= limit:
            wait = math.ceil((recent[-1] + timedelta(minutes=1) - now).total_seconds())
            raise ActionRefused(
                RATE_LIMITED,
                f"you started {limit} connection tests in the last minute: try again in {max(wait, 1)} s",
            )
        test = ConnectionTest.objects.create(connector=connector, user=user, created_at=now)
        ConnectionTest.objects.filter(created_at__lt=now - timedelta(days=1)).delete()
        transaction.on_commit(lambda: _enqueue(test))
    return test


def _enqueue(test: ConnectionTest) -> None:
    try:
        django_rq.get_queue(settings.CONNECTION_TEST_QUEUE).enqueue(
            run_connection_test, str(test.id), job_timeout=settings.CONNECTION_TEST_SECONDS + 30, result_ttl=60
        )
    except Exception:
        logger.exception("could not queue connection test %s", test.id)
        message = "the job queue can't be reached: try again in a minute"
        _finish(test, _failed(message, NOT_RUN), states=[test.State.QUEUED])


def _failed(message: str, problem: str = TIMED_OUT) -> ProbeReport:
    return ProbeReport(steps=[Step("connect", False, message, problem)])


def _finish(test: ConnectionTest, report: ProbeReport, *, states) -> bool:
    """Record the outcome, unless the test was finished meanwhile (given up on by a page)."""
    done = ConnectionTest.objects.filter(id=test.id, state__in=states).update(
        state=ConnectionTest.State.DONE,
        finished_at=timezone.now(),
        ok=report.ok,
        steps=[asdict(step) for step in report.steps],
        unconfirmed_host_key=report.unconfirmed_host_key,
    )
    if done and test.connector_id is not None:
        _remember(test.connector_id, report)
    return bool(done)


def _within(connector: Connector, seconds: float) -> ProbeReport:
    """The probe's report, or what it had done when `seconds` ran out. A probe still
    waiting on a store is left behind: its thread ends with the work horse."""
    report = ProbeReport()

    def work() -> None:
        # Its own scope: a probe left behind at the deadline keeps its secrets out of logs.
        try:
            with redaction.scope(connector.secret_values().values()):
                _run_steps(connector, report)
        finally:
            connection.close()

    thread = threading.Thread(target=work, name=f"probe-{connector.id}", daemon=True)
    thread.start()
    thread.join(seconds)
    if not thread.is_alive():
        return report
    done = list(report.steps)
    if any(not step.ok for step in done):
        return ProbeReport(steps=done, unconfirmed_host_key=report.unconfirmed_host_key)
    logger.info("connection test of %s: no answer during %r within %.1f s", connector.id, report.current, seconds)
    limit = settings.CONNECTION_TEST_SECONDS
    return ProbeReport(
        steps=[*done, Step(report.current, False, f"the store gave no answer within {limit} s", TIMED_OUT)]
    )


def run_connection_test(test_id: str) -> str:
    """RQ entry point: run the test if it is still waiting, within its deadline."""
    test = ConnectionTest.objects.select_related("connector").filter(id=test_id).first()
    if test is None or test.connector is None:
        return "gone"
    now = timezone.now()
    claimed = ConnectionTest.objects.filter(id=test.id, state=ConnectionTest.State.QUEUED).update(
        state=ConnectionTest.State.RUNNING, started_at=now
    )
    if not claimed:
        return "skipped"
    remaining = (test.deadline - now).total_seconds()
    if remaining <= 0:
        report = _failed(
            f"no worker was free to start the test within {settings.CONNECTION_TEST_SECONDS} s: try again in a minute",
            NOT_RUN,
        )
    else:
        report = _within(test.connector, remaining)  # the probe's thread holds the secrets' scope
    _finish(test, report, states=[ConnectionTest.State.RUNNING])
    return "ok" if report.ok else "failed"


def current(test: ConnectionTest) -> ConnectionTest:
    """The test as it stands; one left unfinished well past its deadline ends here, so
    a page never polls forever."""
    if test.pending and timezone.now() > test.deadline + OVERDUE_AFTER:
        message = "no worker finished the test in time: check that the workers are running, then try again"
        _finish(test, _failed(message, NOT_RUN), states=list(PENDING))
        test.refresh_from_db()  # finished here, or by its worker meanwhile
    return test
