"""Test connection: connect, then write, list and delete a small probe object under the
connector's path, and say which step failed and why."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from django.utils import timezone

from connectors.errors import DestinationError, HostKeyNotTrusted, Problem
from connectors.models import Connector
from connectors.storage import open_destination

STEPS = ("connect", "write", "list", "delete")


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


def probe(connector: Connector) -> ProbeReport:
    report = ProbeReport()
    name = f"exportsite-probe-{uuid.uuid4().hex}.txt"  # no leading dot: Azure drops it
    current = "connect"
    try:
        with open_destination(connector) as destination:
            destination.call("connecting", destination.check)
            report.steps.append(Step("connect", True, connector.location))
            current = "write"
            destination.call("writing the probe", destination.write_bytes, name, b"exportsite connection test\n")
            report.steps.append(Step("write", True, destination.full_path(name)))
            current = "list"
            listed = destination.call("listing", destination.listdir, "")
            if name not in listed:
                raise DestinationError(Problem.WRITE, "the probe object was written but is not listed")
            report.steps.append(Step("list", True, f"{len(listed)} object(s) at the top of the path"))
            current = "delete"
            destination.call("deleting the probe", destination.delete, name)
            report.steps.append(Step("delete", True, "probe removed"))
    except DestinationError as exc:
        if isinstance(exc, HostKeyNotTrusted):
            report.unconfirmed_host_key = exc.fingerprint
        report.steps.append(Step(current, False, exc.message, exc.label))
    connector.last_tested_at = timezone.now()
    connector.last_test_ok = report.ok
    connector.last_test_message = report.summary()
    connector.save(update_fields=["last_tested_at", "last_test_ok", "last_test_message"])
    return report
