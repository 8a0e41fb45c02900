"""The rules of a delivery, on a destination that records what it is asked to do: the
TNF is written after every file, connection failures are retried with growing waits, and
other failures are not retried and leave nothing behind."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from connectors.errors import DestinationError, Problem
from connectors.models import Connector
from connectors.storage import Destination
from exports import delivery
from exports.engine import WrittenFile
from exports.layout import LayoutContext, delivery_folder, tnf_name
from exports.models import Export, Run


class Recorder(Destination):
    """Keeps objects in a dict; `failures` lists the errors the next uploads raise."""

    def __init__(self, connector, failures=()):
        super().__init__(connector)
        self.calls: list[tuple[str, str]] = []
        self.objects: dict[str, bytes] = {}
        self.failures = list(failures)

    def check(self):
        self.calls.append(("check", ""))

    def upload(self, local_path, name):
        self.calls.append(("upload", name))
        if self.failures:
            raise self.failures.pop(0)
        with open(local_path, "rb") as fh:
            self.objects[name] = fh.read()

    def write_bytes(self, name, data):
        self.calls.append(("write", name))
        self.objects[name] = data

    def listdir(self, folder):
        prefix = folder.rstrip("/") + "/"
        return [
            name[len(prefix) :] for name in self.objects if name.startswith(prefix) and "/" not in name[len(prefix) :]
        ]

    def delete(self, name):
        self.calls.append(("delete", name))
        self.objects.pop(name, None)


@pytest.fixture
def setup(users, demo_database, tmp_path, monkeypatch):
    owner = users["owner"]
    connector = Connector.objects.create(name="Rec", kind=Connector.Kind.S3, owner=owner, options={"bucket": "b"})
    export = Export.objects.create(
        name="Rules", owner=owner, dataset=demo_database.datasets.get(name="profiles"), connector=connector
    )
    run = Run.objects.create(export=export, status=Run.Status.RUNNING, started_at=datetime.now(UTC))
    files = []
    for part in (1, 2):
        path = tmp_path / f"rules-{part}.csv"
        path.write_bytes(b"id\n%d\n" % part)
        files.append(WrittenFile(part=part, name=path.name, path=path, size_bytes=5, rows=1, sha256="0" * 64))
    sleeps = []
    monkeypatch.setattr(delivery.time, "sleep", sleeps.append)
    return run, files, sleeps


def use(monkeypatch, recorder):
    monkeypatch.setattr(delivery, "open_destination", lambda connector: recorder)


@pytest.mark.django_db
def test_the_tnf_is_written_after_every_file(setup, monkeypatch):
    run, files, _ = setup
    recorder = Recorder(run.export.connector)
    use(monkeypatch, recorder)
    folder, delivered, tnf = delivery.deliver(run, files)
    assert folder == f"{run.export_id}/unscheduled"
    assert [call for call in recorder.calls if call[0] != "check"] == [
        ("upload", f"{folder}/rules-1.csv"),
        ("upload", f"{folder}/rules-2.csv"),
        ("write", tnf),
    ]
    assert tnf.startswith(f"{run.export_id}/tnfs/")
    assert tnf.endswith("Z.tnf")
    assert [f.path for f in delivered] == [f"{folder}/rules-1.csv", f"{folder}/rules-2.csv"]


@pytest.mark.django_db
def test_connection_failures_are_retried_with_growing_waits(setup, monkeypatch, settings):
    settings.EXPORT_DELIVERY_ATTEMPTS = 3
    settings.EXPORT_DELIVERY_BACKOFF = 2
    run, files, sleeps = setup
    down = DestinationError(Problem.UNREACHABLE, "connection reset")
    recorder = Recorder(run.export.connector, failures=[down, down])
    use(monkeypatch, recorder)
    delivery.deliver(run, files)
    assert sleeps == [2, 4]
    assert [name for kind, name in recorder.calls if kind == "upload"].count(
        f"{run.export_id}/unscheduled/rules-1.csv"
    ) == 3


@pytest.mark.django_db
def test_a_failure_that_persists_fails_the_delivery_and_removes_what_was_written(setup, monkeypatch, settings):
    settings.EXPORT_DELIVERY_ATTEMPTS = 2
    run, files, sleeps = setup
    denied = DestinationError(Problem.PERMISSION, "may not write")
    recorder = Recorder(run.export.connector)
    use(monkeypatch, recorder)
    original = recorder.upload

    def second_fails(local_path, name):
        if name.endswith("-2.csv"):
            raise denied
        original(local_path, name)

    recorder.upload = second_fails
    with pytest.raises(delivery.DeliveryFailed) as failure:
        delivery.deliver(run, files)
    assert failure.value.code == Run.ErrorCode.DESTINATION_PERMISSION_DENIED
    assert "Rec: may not write" in str(failure.value)
    assert sleeps == []  # not a connection problem: no retry
    assert recorder.objects == {}  # the first part was removed again, and no TNF was written


def test_layout_names_follow_the_documented_contract():
    moment = datetime(2026, 11, 23, 9, 5, 7, 123456, tzinfo=UTC)
    export = Export(name="Feed", export_type=Export.Type.INCREMENTAL, folder_template="%EXPORT_TIME%/%DELIVERY_ID%")
    context = LayoutContext(
        delivery_id="d-1",
        export_id=str(export.id),
        export_name="Feed",
        dataset_id="7",
        dataset_name="events",
        destination="Amazon S3",
        destination_instance_name="Bucket",
        destination_instance_id="c-1",
        moment=moment,
    )
    assert delivery_folder(export, context) == f"{export.id}/exportTime=202611230905/d-1"
    export.folder_template = ""
    assert delivery_folder(export, context) == f"{export.id}/d-1"
    export.export_type = Export.Type.ONE_SHOT
    assert delivery_folder(export, context) == f"{export.id}/unscheduled"
    assert tnf_name(export, moment) == f"{export.id}/tnfs/20261123T090507123Z.tnf"
