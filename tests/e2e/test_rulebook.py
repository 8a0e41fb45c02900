"""The rulebook in a browser: a double click does nothing twice and shows no error page,
a draft whose run is going says why it can't be deleted, and a launch on a busy dataset
offers to queue anyway. Screenshots go to the test's output folder."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from exports import actions
from exports.models import Export, Run
from tests.e2e.conftest import log_in, open_menu

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_rules_read_the_same_in_the_browser(page, live_server, users, demo_database, tmp_path):
    owner = users["owner"]
    dataset = demo_database.datasets.get(name="interactions")
    start = timezone.now() + timedelta(days=1)
    feed = Export.objects.create(
        name="Hourly feed",
        owner=owner,
        dataset=dataset,
        export_type=Export.Type.INCREMENTAL,
        cursor_column="id",
        schedule_unit="hour",
        schedule_interval=3,
        schedule_start=start,
        schedule_end=start + timedelta(days=30),
    )
    actions.schedule(owner, feed)
    log_in(page, live_server.url, owner.username)

    # Two clicks on Unschedule: the second says it is a draft already, quietly.
    page.goto(f"{live_server.url}/exports/?tab=scheduled")
    unschedule = page.locator("#results tr", has_text="Hourly feed").locator("form:has(button:has-text('Unschedule'))")
    action = unschedule.get_attribute("action")
    page.evaluate(
        """action => {
            const form = document.querySelector(`form[action='${action}']`);
            const token = form.querySelector('[name=csrfmiddlewaretoken]').value;
            const body = new URLSearchParams({csrfmiddlewaretoken: token});
            return fetch(action, {method: 'POST', body}).then(() => form.submit());
        }""",
        action,
    )
    page.wait_for_selector(".message.info")
    assert "'Hourly feed' is a draft already" in page.locator(".message.info").inner_text()
    assert page.locator("h1").first.inner_text() != "Forbidden"
    feed.refresh_from_db()
    assert feed.status == Export.Status.DRAFT
    page.screenshot(path=str(tmp_path / "second-unschedule.png"), full_page=True)

    # A draft whose run is going: Delete is disabled and says why.
    Run.objects.create(export=feed, status=Run.Status.RUNNING, started_at=timezone.now())
    page.goto(f"{live_server.url}/exports/?tab=draft")
    row = page.locator("#results tr", has_text="Hourly feed")
    assert open_menu(row).locator("button:has-text('Delete')").is_disabled()
    assert "queued or running" in row.inner_text()
    page.screenshot(path=str(tmp_path / "delete-disabled.png"), full_page=True)

    # A one-shot on the same dataset: refused as busy, then queued anyway.
    one_shot = Export.objects.create(name="Opens once", owner=owner, dataset=dataset)
    page.goto(f"{live_server.url}{one_shot.get_absolute_url()}")
    page.click("button:has-text('Launch')")
    page.wait_for_selector("text=Queue anyway")
    assert "queued or running" in page.locator(".message.error").inner_text()
    page.screenshot(path=str(tmp_path / "dataset-busy.png"), full_page=True)
    page.click("button:has-text('Queue anyway')")
    page.wait_for_url(f"**{one_shot.runs.get().get_absolute_url()}")
