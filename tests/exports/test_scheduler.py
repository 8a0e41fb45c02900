"""The scheduler's tick under a controlled clock: one run per due slot, catch-up after
downtime, skips while a run is still going, the end of a schedule, Run now, unschedule
and schedule again, download expiry, lost jobs, report e-mails, and the schedule step."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path
from zoneinfo import ZoneInfo

import django_rq
import pytest
import time_machine
from django.conf import settings
from django.db import IntegrityError, transaction
from django.urls import reverse

from exports import actions
from exports.actions import queue_run
from exports.delivery import desktop_storage
from exports.models import Export, Profile, Run, RunFile, SkippedSlot
from exports.scheduler import DUE_BATCH, expire_downloads, tick
from tests.conftest import PASSWORD

START = datetime(2026, 6, 1, 6, 0, tzinfo=UTC)


def repeating(users, demo_database, **fields) -> Export:
    fields.setdefault("export_type", Export.Type.PERIODIC_FULL)
    fields.setdefault("schedule_unit", "day")
    fields.setdefault("schedule_interval", 1)
    fields.setdefault("schedule_start", START)
    fields.setdefault("schedule_end", START + timedelta(days=30))
    return Export.objects.create(
        name="Daily profiles", owner=users["owner"], dataset=demo_database.datasets.get(name="profiles"), **fields
    )


def finish(run: Run) -> None:
    Run.objects.filter(id=run.id).update(status=Run.Status.SUCCEEDED, finished_at=run.queued_at)


@pytest.mark.django_db
def test_a_due_slot_becomes_exactly_one_run(users, demo_database, django_capture_on_commit_callbacks):
    export = repeating(users, demo_database)
    with time_machine.travel(START - timedelta(hours=1), tick=False):
        export = actions.schedule(export.owner, export)
    assert export.next_run_at == START
    assert tick(START - timedelta(minutes=1)).created == []

    with django_capture_on_commit_callbacks(execute=True):
        report = tick(START + timedelta(seconds=5))
    [run] = report.created
    assert run.scheduled_for == START
    assert run.trigger == Run.Trigger.SCHEDULE
    assert tick(START + timedelta(seconds=10)).created == []  # not due any more
    export.refresh_from_db()
    assert export.next_run_at == START + timedelta(days=1)
    assert export.last_scheduled_for == START
    assert django_rq.get_queue(settings.EXPORTS_QUEUE).fetch_job(str(run.id)) is not None


@pytest.mark.django_db
def test_missed_slots_collapse_into_one_catch_up_run(users, demo_database):
    export = repeating(users, demo_database, schedule_unit="hour", schedule_interval=3)
    with time_machine.travel(START - timedelta(hours=1), tick=False):
        export = actions.schedule(export.owner, export)
    first = tick(START).created[0]
    finish(first)
    # The scheduler was down for a day and a half.
    report = tick(START + timedelta(hours=37))
    [catch_up] = report.created
    assert catch_up.scheduled_for == START + timedelta(hours=36)
    export.refresh_from_db()
    assert export.next_run_at == START + timedelta(hours=39)


@pytest.mark.django_db
def test_a_slot_is_skipped_and_recorded_while_the_previous_run_is_going(users, demo_database):
    export = repeating(users, demo_database)
    with time_machine.travel(START - timedelta(hours=1), tick=False):
        export = actions.schedule(export.owner, export)
    still_running = tick(START).created[0]
    Run.objects.filter(id=still_running.id).update(status=Run.Status.RUNNING)
    report = tick(START + timedelta(days=1))
    assert report.created == []
    [skip] = report.skipped
    assert skip.scheduled_for == START + timedelta(days=1)
    assert "still in progress" in skip.reason
    assert export.runs.count() == 1
    export.refresh_from_db()
    assert export.next_run_at == START + timedelta(days=2)


@pytest.mark.django_db
def test_the_schedule_ends_and_the_export_is_finished(users, demo_database):
    export = repeating(users, demo_database, schedule_end=START + timedelta(days=1, hours=1))
    with time_machine.travel(START - timedelta(hours=1), tick=False):
        export = actions.schedule(export.owner, export)
    finish(tick(START).created[0])
    tick(START + timedelta(days=1))
    export.refresh_from_db()
    assert export.status == Export.Status.FINISHED
    assert export.next_run_at is None
    assert export.runs.count() == 2


@pytest.mark.django_db
def test_run_now_starts_the_run_at_once_and_keeps_the_next_slot(client, users, demo_database):
    export = repeating(users, demo_database)
    with time_machine.travel(START - timedelta(hours=5), tick=False):
        export = actions.schedule(export.owner, export)
        client.login(username="alice", password=PASSWORD)
        response = client.post(reverse("exports-run-now", args=[export.id]))
        [run] = export.runs.all()
        assert response.status_code == 302
        assert response["Location"] == run.get_absolute_url()
        assert tick().created == []  # the scheduler doesn't start it a second time
    assert (run.trigger, run.launched_by) == (Run.Trigger.MANUAL, users["owner"])
    assert run.scheduled_for == START - timedelta(hours=5)
    export.refresh_from_db()
    assert export.next_run_at == START  # the regular slots go on


@pytest.mark.django_db
def test_unschedule_stops_future_runs_and_scheduling_again_continues_from_the_watermark(client, users, demo_database):
    export = repeating(
        users, demo_database, export_type=Export.Type.INCREMENTAL, cursor_column="id", watermark={"value": "250"}
    )
    with time_machine.travel(START - timedelta(hours=1), tick=False):
        export = actions.schedule(export.owner, export)
    running = tick(START).created[0]
    Run.objects.filter(id=running.id).update(status=Run.Status.RUNNING)
    client.login(username="alice", password=PASSWORD)
    with time_machine.travel(START + timedelta(hours=1), tick=False):
        client.post(reverse("exports-unschedule", args=[export.id]))
    export.refresh_from_db()
    assert export.status == Export.Status.DRAFT
    assert export.next_run_at is None
    assert Run.objects.get(id=running.id).status == Run.Status.RUNNING  # it finishes
    assert tick(START + timedelta(days=3)).created == []

    finish(running)
    with time_machine.travel(START + timedelta(days=3, hours=2), tick=False):
        client.post(reverse("exports-schedule", args=[export.id]))
    export.refresh_from_db()
    assert export.status == Export.Status.SCHEDULED
    assert export.next_run_at == START + timedelta(days=4)  # no catch-up of the draft days
    assert export.watermark == {"value": "250"}
    client.get(reverse("exports-reset-watermark", args=[export.id]))
    client.post(reverse("exports-reset-watermark", args=[export.id]))
    export.refresh_from_db()
    assert export.watermark is None


@pytest.mark.django_db
def test_expired_downloads_are_deleted_and_shown_expired(users, demo_database, tmp_path):
    export = Export.objects.create(name="x", owner=users["owner"], dataset=demo_database.datasets.get(name="profiles"))
    storage = desktop_storage()
    path = storage.save(f"{export.id}/old/file-1.csv", __import__("io").BytesIO(b"id\n1\n"))
    run = Run.objects.create(
        export=export, status=Run.Status.SUCCEEDED, expires_at=START - timedelta(seconds=1), finished_at=START
    )
    RunFile.objects.create(run=run, part=1, name="file-1.csv", path=path, size_bytes=5, rows=1, sha256="0" * 64)
    expire_downloads(START)
    run.refresh_from_db()
    assert run.status == Run.Status.EXPIRED
    assert not run.is_downloadable
    assert not storage.exists(path)


@pytest.mark.django_db
def test_the_schedule_step_refuses_bad_combinations_and_previews_five_runs(client, users, demo_database):
    owner = users["owner"]
    Profile.objects.create(user=owner, time_zone="Europe/Brussels")
    export = Export.objects.create(name="Feed", owner=owner, dataset=demo_database.datasets.get(name="interactions"))
    client.login(username="alice", password=PASSWORD)
    url = reverse("exports-wizard", args=[export.id, "schedule"])
    with time_machine.travel(datetime(2026, 3, 20, 12, 0, tzinfo=UTC), tick=False):
        cases = [
            ({"export_type": "one_shot", "schedule_start": "2026-03-19T10:00"}, "schedule_start", "in the past"),
            ({"export_type": "periodic_full", "cadence": "day"}, "schedule_start", "needs a start"),
            (
                {"export_type": "periodic_full", "schedule_start": "2026-03-21T06:00", "cadence": "3h"},
                "cadence",
                "once a day",
            ),
            (
                {"export_type": "incremental", "schedule_start": "2026-03-21T06:00", "cadence": "5h"},
                "cadence",
                "Select a valid",
            ),
            (
                {
                    "export_type": "incremental",
                    "schedule_start": "2026-03-21T06:00",
                    "schedule_end": "2026-03-20T06:00",
                },
                "schedule_end",
                "after the start",
            ),
            (
                {"export_type": "incremental", "schedule_start": "2026-03-21T06:00", "cadence": "3h"},
                "cursor_column",
                "cursor",
            ),
            (
                {"export_type": "incremental", "schedule_start": "2026-03-21T06:00", "cursor_column": "channel"},
                "cursor_column",
                "Select a valid",
            ),
        ]
        for data, field, message in cases:
            response = client.post(url, data)
            assert response.status_code == 200, data
            errors = response.context["form"].errors
            assert field in errors, (data, errors)
            assert message in " ".join(errors[field]), (data, errors)

        preview = client.get(
            reverse("exports-schedule-preview", args=[export.id]),
            {"export_type": "periodic_full", "schedule_start": "2026-03-27T06:00", "cadence": "day"},
            HTTP_HX_REQUEST="true",
        ).content.decode()
        # across the DST change
        assert preview.count("06:00") == 5
        assert "CET" in preview
        assert "CEST" in preview

        response = client.post(
            url,
            {
                "export_type": "incremental",
                "schedule_start": "2026-03-21T06:00",
                "cadence": "6h",
                "cursor_column": "id",
            },
        )
        assert response.status_code == 302
    export.refresh_from_db()
    assert export.schedule_start == datetime(2026, 3, 21, 5, 0, tzinfo=UTC)  # 06:00 Brussels, stored in UTC
    assert export.schedule_end == datetime(2026, 9, 21, 4, 0, tzinfo=UTC)  # six months later, 06:00 summer time
    assert (export.schedule_unit, export.schedule_interval, export.schedule_timezone) == ("hour", 6, "Europe/Brussels")
    page = client.get(url).content.decode()
    assert 'value="2026-09-21T06:00"' in page  # the end is shown, editable, in the user's zone


@pytest.mark.django_db
def test_the_scheduled_tab_warns_when_the_end_is_near(client, users, demo_database):
    export = repeating(users, demo_database, schedule_end=START + timedelta(days=10))
    with time_machine.travel(START - timedelta(hours=1), tick=False):
        export = actions.schedule(export.owner, export)
        client.login(username="alice", password=PASSWORD)
        page = client.get(reverse("exports-list") + "?tab=scheduled").content.decode()
    assert "ends in 1\xa0week, 3\xa0days" in page
    assert "Run now" in page


@pytest.mark.django_db(transaction=True)
def test_a_failed_run_mails_its_report_to_the_recipients(users, demo_database, worker):
    mail_dir = Path(settings.EMAIL_FILE_PATH)
    before = set(mail_dir.glob("*")) if mail_dir.exists() else set()
    database = demo_database
    export = Export.objects.create(
        name="Broken feed",
        owner=users["owner"],
        dataset=database.datasets.get(name="profiles"),
        filters=[{"column": "nope", "operator": "eq", "value": "1"}],
        report_recipients="ops@example.com, bi@example.com",
    )
    run = queue_run(export, user=users["owner"])
    worker()
    run.refresh_from_db()
    assert run.status == Run.Status.FAILED
    [mail] = [path for path in mail_dir.glob("*") if path not in before]
    text = mail.read_text()
    assert "To: ops@example.com, bi@example.com" in text
    assert "Broken feed: run failed (SOURCE_QUERY_FAILED)" in text
    assert f"http://127.0.0.1:8000/o/default/production/runs/{run.id}/" in text


@pytest.mark.django_db
def test_two_schedulers_in_one_database_never_share_a_slot(users, demo_database):
    """The constraint that backs the row lock: a second run for a slot is refused."""
    export = repeating(users, demo_database)
    Run.objects.create(export=export, scheduled_for=START, status=Run.Status.SUCCEEDED)
    with pytest.raises(IntegrityError), transaction.atomic():
        Run.objects.create(export=export, scheduled_for=START, status=Run.Status.SUCCEEDED)
    assert not SkippedSlot.objects.exists()


BRUSSELS = "Europe/Brussels"
CADENCES = [
    (Export.Type.ONE_SHOT, "", None),
    (Export.Type.PERIODIC_FULL, "day", 1),
    (Export.Type.INCREMENTAL, "day", 1),
    (Export.Type.INCREMENTAL, "hour", 3),
    (Export.Type.INCREMENTAL, "hour", 6),
    (Export.Type.INCREMENTAL, "hour", 9),
    (Export.Type.INCREMENTAL, "hour", 12),
]


@pytest.mark.django_db
@pytest.mark.parametrize(("export_type", "unit", "interval"), CADENCES)
@pytest.mark.parametrize("change", ["2026-03-29", "2026-10-25"])  # spring forward, fall back
def test_the_clock_runs_through_a_dst_change_and_every_slot_runs_once_on_time(
    users, demo_database, export_type, unit, interval, change
):
    zone = ZoneInfo(BRUSSELS)
    start = datetime.fromisoformat(f"{change}T06:00").replace(tzinfo=zone) - timedelta(days=2)
    export = repeating(
        users,
        demo_database,
        export_type=export_type,
        schedule_unit=unit,
        schedule_interval=interval,
        schedule_start=start,
        schedule_end=None if export_type == Export.Type.ONE_SHOT else start + timedelta(days=10),
        schedule_timezone=BRUSSELS,
        cursor_column="id",
    )
    with time_machine.travel(start - timedelta(hours=1), tick=False) as clock:
        export = actions.schedule(export.owner, export)
        for _ in range(4 * 24 * 4 - 1):  # four days less 15 minutes, in 15-minute ticks
            clock.shift(timedelta(minutes=15))
            for run in tick().created:
                finish(run)
    slots = sorted(export.runs.values_list("scheduled_for", flat=True))
    assert not SkippedSlot.objects.filter(export=export).exists()
    if export_type == Export.Type.ONE_SHOT:
        assert slots == [start]
    elif unit == "day":
        assert [slot.astimezone(zone).strftime("%d %H:%M") for slot in slots] == [
            (start + timedelta(days=n)).strftime("%d 06:00") for n in range(4)
        ]
    else:
        assert {later - earlier for earlier, later in pairwise(slots)} == {timedelta(hours=interval)}
        assert slots[0] == start
        assert len(slots) == 4 * 24 // interval + (1 if (4 * 24) % interval else 0)


@pytest.mark.django_db
def test_many_due_exports_start_in_batches_by_the_same_rules(users, demo_database):
    """More due exports than a batch: each gets exactly one run for its slot; a busy one
    and one whose dataset is gone are skipped and say why; a slot whose run another
    scheduler already made sends its batch through the one-by-one path, which loses nothing."""
    exports = [
        repeating(users, demo_database, status=Export.Status.SCHEDULED, next_run_at=START)
        for _ in range(DUE_BATCH * 2 + 17)
    ]
    busy, gone, taken = exports[0], exports[1], exports[2]
    Run.objects.create(export=busy, status=Run.Status.RUNNING)
    gone_dataset = demo_database.datasets.get(name="orders")
    gone_dataset.missing_since = START
    gone_dataset.save()
    Export.objects.filter(id=gone.id).update(dataset=gone_dataset)
    # Another scheduler made this slot's run and it ended, but this export's row still says it is due.
    Run.objects.create(export=taken, status=Run.Status.SUCCEEDED, scheduled_for=START, trigger=Run.Trigger.SCHEDULE)

    report = tick(START + timedelta(seconds=5))

    assert len(report.created) == len(exports) - 3
    assert {skip.export_id: skip.reason for skip in report.skipped} == {
        busy.id: "the previous run was still in progress",
        gone.id: "the dataset no longer exists",
    }
    runs = Run.objects.filter(scheduled_for=START)
    assert runs.count() == len(exports) - 2  # the one made earlier included
    assert set(runs.values_list("destination_kind", flat=True)) == {"desktop"}
    assert set(runs.values_list("trigger", flat=True)) == {Run.Trigger.SCHEDULE}
    assert not Export.objects.filter(id__in=[e.id for e in exports], next_run_at__lte=START).exists()
    assert set(Export.objects.filter(id__in=[e.id for e in exports]).values_list("last_scheduled_for", flat=True)) == {
        START
    }
    assert tick(START + timedelta(seconds=10)).created == []
