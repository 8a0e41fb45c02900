"""Every page passes axe-core (no serious or critical violation), at 1400 px and at
390 px; the Finished tab shows at least 12 exports on one screen; and the screens the
README shows are written here, at both widths (var/screens/, the notable ones copied
to docs/screens/ by hand after looking at them)."""

from __future__ import annotations

import random
from datetime import timedelta
from pathlib import Path

import pytest
from django.urls import reverse
from django.utils import timezone

from connectors.models import Connector
from exports.models import Export, Run
from tests.e2e.conftest import log_in

pytestmark = pytest.mark.django_db(transaction=True)

ROOT = Path(__file__).resolve().parents[2]
AXE = ROOT / ".node" / "node_modules" / "axe-core" / "axe.min.js"
SCREENS = ROOT / "var" / "screens"
WIDTHS = {"desktop": {"width": 1400, "height": 900}, "phone": {"width": 390, "height": 844}}
FAILURES = ["SOURCE_QUERY_FAILED", "DESTINATION_UNREACHABLE", "TIMEOUT"]


@pytest.fixture
def axe_page(chromium):
    """A page whose Content Security Policy lets the test add axe-core's script."""
    if not AXE.exists():
        pytest.fail("axe-core is missing: `make install-test` installs it from npm")
    context = chromium.new_context(bypass_csp=True)
    yield context.new_page()
    context.close()


@pytest.fixture
def history(users, demo_database):
    """30 finished one-shot exports, one run each (a few failed), and a daily export
    with 30 days of runs (some failed, one cancelled), plus a draft and a connector."""
    rng = random.Random(7)
    orders = demo_database.datasets.get(name="orders")
    interactions = demo_database.datasets.get(name="interactions")
    now = timezone.now()
    owner = users["owner"]
    for number in range(30):
        export = Export.objects.create(
            name=f"{rng.choice(['Weekly', 'Monthly', 'Spring', 'CRM', 'BI'])} orders {number:02d}",
            owner=owner,
            dataset=orders if number % 2 else interactions,
            status=Export.Status.FINISHED,
            file_format=rng.choice(Export.Format.values),
        )
        failed = number % 7 == 3
        Run.objects.create(
            export=export,
            status=Run.Status.FAILED if failed else Run.Status.SUCCEEDED,
            error_code=FAILURES[number % 3] if failed else "",
            error_message="the source refused the query: canceling statement due to statement timeout"
            if failed
            else "",
            queued_at=now - timedelta(hours=number * 5),
            started_at=now - timedelta(hours=number * 5),
            finished_at=now - timedelta(hours=number * 5) + timedelta(seconds=rng.randint(5, 400)),
            row_count=None if failed else rng.randint(1_000, 2_500_000),
        )
    daily = Export.objects.create(
        name="Daily interactions to the lake",
        owner=owner,
        dataset=interactions,
        export_type=Export.Type.PERIODIC_FULL,
        status=Export.Status.SCHEDULED,
        schedule_unit="day",
        schedule_interval=1,
        schedule_start=now - timedelta(days=31),
        next_run_at=now + timedelta(hours=3),
        rows_per_file=5_000_000,
    )
    for day in range(30, 0, -1):
        moment = now - timedelta(days=day)
        failed, cancelled = day in {4, 17, 18}, day == 9
        Run.objects.create(
            export=daily,
            status=Run.Status.FAILED if failed else Run.Status.CANCELLED if cancelled else Run.Status.SUCCEEDED,
            error_code=FAILURES[day % 3] if failed else "CANCELLED" if cancelled else "",
            queued_at=moment,
            started_at=moment,
            finished_at=moment + timedelta(seconds=60 + rng.randint(0, 90) + day * 3),
            row_count=None if failed or cancelled else 4_000_000 + rng.randint(0, 900_000) + (30 - day) * 20_000,
        )
    draft = Export.objects.create(name="Profiles for the CRM", owner=owner, dataset=interactions)
    Connector.objects.create(name="Lake", kind="s3", owner=owner, options={"bucket": "lake"})
    return {"daily": daily, "draft": draft, "run": daily.runs.order_by("-queued_at").first()}


def pages(history) -> dict[str, str]:
    draft, daily = history["draft"], history["daily"]
    return {
        "draft-tab": reverse("exports-list") + "?tab=draft",
        "scheduled-tab": reverse("exports-list") + "?tab=scheduled",
        "in-progress-tab": reverse("exports-list") + "?tab=in_progress",
        "finished-tab": reverse("exports-list") + "?tab=finished",
        "wizard-new": reverse("exports-new"),
        **{
            f"wizard-{step}": reverse("exports-wizard", args=[draft.id, step])
            for step in ("source", "file", "destination", "schedule", "summary")
        },
        "run-report": reverse("runs-detail", args=[history["run"].id]),
        "export-page": reverse("exports-detail", args=[daily.id]),
        "connectors": reverse("connectors-list"),
        "new-connector": reverse("connectors-new"),
        "sources": reverse("sources-list"),
        "profile": reverse("profile"),
        "api-docs": "/api/v1/docs",
    }


def serious_violations(page) -> list[str]:
    page.add_script_tag(path=str(AXE))
    result = page.evaluate("() => axe.run(document, {resultTypes: ['violations']})")
    return [
        f"{violation['id']} ({violation['impact']}): {violation['help']} at "
        + ", ".join(node["target"][0] for node in violation["nodes"][:3])
        for violation in result["violations"]
        if violation["impact"] in {"serious", "critical"}
    ]


@pytest.mark.parametrize("width", list(WIDTHS))
def test_every_page_passes_axe_with_no_serious_violation(axe_page, live_server, users, history, width):
    page = axe_page
    page.set_viewport_size(WIDTHS[width])
    log_in(page, live_server.url, users["admin"].username)
    found = {}
    for name, path in pages(history).items():
        response = page.goto(live_server.url + path)
        assert response.status == 200, name
        page.wait_for_load_state("networkidle")
        if violations := serious_violations(page):
            found[name] = violations
    assert found == {}, "\n".join(
        f"{name}: {violation}" for name, violations in found.items() for violation in violations
    )


def test_the_finished_tab_shows_twelve_exports_on_one_screen_and_the_screens_are_written(
    page, live_server, users, history
):
    SCREENS.mkdir(parents=True, exist_ok=True)
    log_in(page, live_server.url, users["owner"].username)
    shots = {
        "finished-tab": reverse("exports-list") + "?tab=finished",
        "export-page": reverse("exports-detail", args=[history["daily"].id]),
        "wizard-filters": reverse("exports-wizard", args=[history["draft"].id, "source"]),
    }
    for width, size in WIDTHS.items():
        page.set_viewport_size(size)
        for name, path in shots.items():
            page.goto(live_server.url + path)
            if name == "wizard-filters":
                page.select_option("#id_filters-0-column", "occurred_at")
                page.wait_for_selector("#filter-row-0[data-column=occurred_at]")
                page.select_option("#id_filters-0-operator", "between")
                page.wait_for_selector("#filter-row-0[data-operator=between]")
                page.select_option("#id_filters-1-column", "country_code")
                page.wait_for_selector("#filter-row-1[data-column=country_code]")
                page.select_option("#id_filters-1-operator", "in")
                page.wait_for_selector("#filter-row-1[data-operator=in]")
                page.fill("#id_filters-1-value", "DE\nFR")
            page.screenshot(path=str(SCREENS / f"{name}-{size['width']}.png"), full_page=True)
        if width == "desktop":
            page.goto(live_server.url + shots["finished-tab"])
            rows = page.locator("#results tbody tr")
            assert rows.count() == 25
            on_screen = [
                box for box in (rows.nth(i).bounding_box() for i in range(25)) if box["y"] + box["height"] <= 900
            ]
            assert len(on_screen) >= 12, f"only {len(on_screen)} rows fit at 1400x900"
            assert {box["height"] for box in on_screen} == {on_screen[0]["height"]}  # one line each
        else:  # nothing sticks out sideways at 390 px
            page.goto(live_server.url + shots["finished-tab"])
            assert page.evaluate("() => document.documentElement.scrollWidth") <= 390
            assert page.locator("details.filters-panel").get_attribute("open") is None  # folded away


def test_a_rows_menu_works_with_the_keyboard_and_shows_where_the_focus_is(page, live_server, users, history):
    page.set_viewport_size(WIDTHS["desktop"])
    log_in(page, live_server.url, users["owner"].username)
    page.goto(live_server.url + reverse("exports-list") + "?tab=finished")
    row = page.locator("#results tbody tr").first
    row.get_by_role("link", name="Download").focus()
    page.keyboard.press("Tab")  # to the row's More menu
    summary = row.locator("details.menu > summary")
    assert summary.evaluate("element => element === document.activeElement")
    assert summary.evaluate("element => getComputedStyle(element).outlineStyle") == "solid"  # a visible focus
    page.keyboard.press("Enter")
    assert row.locator("details.menu").get_attribute("open") is not None
    page.keyboard.press("Tab")
    assert page.evaluate("() => document.activeElement.textContent") == "View report"
    page.keyboard.press("Enter")
    page.wait_for_url("**/runs/**")
    assert page.locator("#run-status").inner_text() == "Succeeded"
