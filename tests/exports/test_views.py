"""The minimal UI: create, launch, follow, download; and who may do what."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from exports.actions import queue_run
from exports.models import Export, Run
from orgs.scope import site_reverse
from tests.conftest import PASSWORD
from tests.exports.readback import normalise_rows, read_zip_or_file
from tests.exports.test_runs import source_rows

pytestmark = pytest.mark.django_db(transaction=True)


def login(client, user):
    assert client.login(username=user.username, password=PASSWORD)
    return client


MANAGEMENT = {
    "filters-TOTAL_FORMS": "3",
    "filters-INITIAL_FORMS": "0",
    "filters-MIN_NUM_FORMS": "0",
    "filters-MAX_NUM_FORMS": "50",
}


def source_data(dataset, **overrides):
    return {"name": "Weekly opens", "dataset": str(dataset.id), **MANAGEMENT, **overrides}


def file_data(**overrides):
    data = {
        "file_format": "csv",
        "compression": "gzip",
        "csv_delimiter": ",",
        "csv_header": "on",
        "rows_per_file": "1000000",
        "file_template": "%EXPORT_NAME%_%DATETIME(YYYYMMdd_HHmmss)%",
    }
    data.update(overrides)
    return data


def wizard(export, step):
    return reverse("exports-wizard", args=[export.id, step])


def run_wizard(client, dataset, *, source=None, file=None, finish="launch"):
    """Create an export through every step of the wizard; returns (export, last response)."""
    response = client.post(reverse("exports-new"), source_data(dataset, **(source or {})))
    export = Export.objects.latest("created_at")
    assert response.status_code == 302, response.content[-2000:]
    assert response.url == wizard(export, "file"), response.content[-2000:]
    assert client.post(wizard(export, "file"), file_data(**(file or {}))).url == wizard(export, "destination")
    assert client.post(wizard(export, "destination"), {"folder_template": ""}).url == wizard(export, "schedule")
    assert client.post(wizard(export, "schedule"), {"export_type": "one_shot"}).url == wizard(export, "summary")
    return export, client.post(wizard(export, "summary"), {finish: "1"})


def test_pages_need_a_login(client):
    response = client.get(reverse("exports-list"))
    assert response.status_code == 302
    assert response.url.startswith(site_reverse("login"))  # sign-in is outside sandboxes


def test_it_creates_and_launches_an_export_then_downloads_it(client, users, demo_database, demo_path, worker):
    login(client, users["owner"])
    dataset = demo_database.datasets.get(name="profiles")
    export, response = run_wizard(
        client,
        dataset,
        source={
            "columns": ["id", "email", "country_code"],
            "filters-0-column": "country_code",
            "filters-0-operator": "eq",
            "filters-0-value": "FR",
        },
        file={"rows_per_file": "20"},
    )
    export.refresh_from_db()
    run = export.runs.get()
    assert response.status_code == 302
    assert response.url == reverse("runs-detail", args=[run.id])
    assert export.filters == [{"column": "country_code", "operator": "eq", "value": "FR", "value_to": ""}]

    page = client.get(response.url)
    assert b'hx-trigger="every 1s"' in page.content  # polls while queued

    worker()
    fragment = client.get(response.url, HTTP_HX_REQUEST="true")
    assert fragment.status_code == 200
    assert b"<html" not in fragment.content
    assert b"hx-trigger" not in fragment.content  # stops polling
    assert b"Succeeded" in fragment.content
    assert b"Download" in fragment.content

    run.refresh_from_db()
    assert run.files.count() > 1
    download = client.get(reverse("runs-download", args=[run.id]))
    assert download.status_code == 200
    assert download["Content-Type"] == "application/zip"
    content = b"".join(download.streaming_content)
    assert len(content) == int(download["Content-Length"])
    columns = [dataset.column(n) for n in ["id", "email", "country_code"]]
    rows = read_zip_or_file(content, "x.zip", "csv")
    expected = source_rows(demo_path, "SELECT id, email, country_code FROM profiles WHERE country_code = 'FR'")
    assert normalise_rows(rows, columns) == normalise_rows(expected, columns)
    assert expected


def test_a_single_file_downloads_as_it_is(client, users, demo_database, worker):
    export = Export.objects.create(
        name="orders",
        owner=users["owner"],
        dataset=demo_database.datasets.get(name="orders"),
        file_format="parquet",
        compression="snappy",
    )
    run = queue_run(export, user=users["owner"])
    worker()
    login(client, users["owner"])
    response = client.get(reverse("runs-download", args=[run.id]))
    assert response.status_code == 200
    [run_file] = run.files.all()
    assert run_file.name in response["Content-Disposition"]
    assert b"".join(response.streaming_content)[:4] == b"PAR1"


def test_each_step_names_each_problem(client, users, demo_database):
    login(client, users["owner"])
    dataset = demo_database.datasets.get(name="interactions")
    response = client.post(
        reverse("exports-new"),
        source_data(
            dataset,
            **{
                "filters-0-column": "revenue",
                "filters-0-operator": "gt",
                "filters-0-value": "lots",
                "filters-1-column": "ghost",
                "filters-1-operator": "eq",
                "filters-1-value": "1",
            },
        ),
    )
    text = response.content.decode()
    assert response.status_code == 200
    assert "Filter 1: &#x27;lots&#x27; is not a decimal number" in text
    assert "Filter 2: column &#x27;ghost&#x27; does not exist" in text
    assert Export.objects.count() == 0  # nothing saved until the step is valid

    client.post(reverse("exports-new"), source_data(dataset))
    export = Export.objects.get()
    response = client.post(
        wizard(export, "file"), file_data(compression="snappy", file_template="%NOPE%", rows_per_file="0")
    )
    text = response.content.decode()
    assert "snappy is not available for CSV files" in text
    assert "unknown token %NOPE%" in text
    assert "Ensure this value is greater than or equal to 1" in text
    response = client.post(wizard(export, "destination"), {"folder_template": "../up"})
    assert "&#x27;..&#x27; and &#x27;.&#x27; are not allowed" in response.content.decode()
    assert client.post(wizard(export, "schedule"), {"export_type": "incremental"}).status_code == 200
    export.refresh_from_db()
    assert export.export_type == "one_shot"
    assert export.compression == "gzip"


def test_leaving_the_wizard_keeps_a_draft(client, users, demo_database):
    login(client, users["owner"])
    dataset = demo_database.datasets.get(name="orders")
    client.post(reverse("exports-new"), source_data(dataset, name="Half done"))
    export = Export.objects.get()
    assert export.status == Export.Status.DRAFT
    assert export.owner == users["owner"]
    assert "Half done" in client.get(reverse("exports-list")).content.decode()
    # Coming back opens the wizard on the saved values.
    assert client.get(reverse("exports-edit", args=[export.id])).url == wizard(export, "source")
    assert 'value="Half done"' in client.get(wizard(export, "source")).content.decode()


def test_the_summary_saves_a_draft_or_launches(client, users, demo_database):
    login(client, users["owner"])
    export, response = run_wizard(client, demo_database.datasets.get(name="orders"), finish="save")
    assert response.url == reverse("exports-list") + "?tab=draft"
    export.refresh_from_db()
    assert export.status == Export.Status.DRAFT
    assert not export.runs.exists()


def test_the_folder_preview_resolves_the_template(client, users, demo_database):
    login(client, users["owner"])
    client.post(reverse("exports-new"), source_data(demo_database.datasets.get(name="orders"), name="Q4 orders"))
    export = Export.objects.get()
    url = reverse("exports-folder-preview", args=[export.id])
    # A Desktop download has no folder: the preview names the file.
    text = client.get(url, {"folder_template": "%EXPORT_NAME%/%DATETIME(YYYY)%"}, HTTP_HX_REQUEST="true").content
    assert b"<dt>Download</dt><dd><code>Q4_orders_20" in text
    assert b"-1.csv.gz" in text
    assert b"unknown token" in client.get(url, {"folder_template": "%WHAT%"}).content


def test_a_double_click_on_launch_starts_one_run(client, users, demo_database):
    export = Export.objects.create(name="x", owner=users["owner"], dataset=demo_database.datasets.get(name="orders"))
    login(client, users["owner"])
    first = client.post(reverse("exports-launch", args=[export.id]))
    second = client.post(reverse("exports-launch", args=[export.id]))
    assert first.url == second.url
    assert Run.objects.filter(export=export).count() == 1


def test_only_the_owner_or_an_admin_launches(client, users, demo_database):
    export = Export.objects.create(name="x", owner=users["owner"], dataset=demo_database.datasets.get(name="orders"))
    login(client, users["teammate"])
    assert client.post(reverse("exports-launch", args=[export.id])).status_code == 403
    assert client.get(reverse("exports-launch", args=[export.id])).status_code == 405
    assert not Run.objects.exists()


def test_it_refuses_a_download_to_a_teammate(client, users, demo_database, worker):
    export = Export.objects.create(name="x", owner=users["owner"], dataset=demo_database.datasets.get(name="orders"))
    run = queue_run(export, user=users["owner"])
    worker()
    login(client, users["teammate"])
    assert client.get(reverse("runs-download", args=[run.id])).status_code == 403
    client.logout()
    login(client, users["staff"])
    assert client.get(reverse("runs-download", args=[run.id])).status_code == 200


def test_a_failed_run_offers_no_download(client, users, demo_database, worker):
    export = Export.objects.create(
        name="x",
        owner=users["owner"],
        dataset=demo_database.datasets.get(name="orders"),
        filters=[{"column": "items", "operator": "gt", "value": "many"}],
    )
    run = queue_run(export, user=users["owner"])
    worker()
    login(client, users["owner"])
    page = client.get(reverse("runs-detail", args=[run.id]))
    assert b"SOURCE_QUERY_FAILED" in page.content
    assert b'id="download"' not in page.content
    assert client.get(reverse("runs-download", args=[run.id])).status_code == 404


def test_the_columns_fragment_lists_the_chosen_dataset(client, users, demo_database):
    login(client, users["owner"])
    dataset = demo_database.datasets.get(name="orders")
    response = client.get(reverse("exports-columns"), {"dataset": dataset.id}, HTTP_HX_REQUEST="true")
    assert b'value="total_amount"' in response.content
    assert b"<html" not in response.content


def test_only_admins_refresh_sources(client, users, demo_database):
    login(client, users["owner"])
    url = reverse("sources-refresh", args=[demo_database.id])
    assert client.post(url).status_code == 403
    client.logout()
    login(client, users["admin"])
    assert client.post(url).status_code == 302
    assert client.get(reverse("sources-list")).status_code == 200


def test_bad_query_values_give_a_page_not_an_error(client, users, demo_database):
    login(client, users["owner"])
    assert client.get(reverse("exports-new"), {"dataset": "abc"}).status_code == 200
    response = client.get(reverse("exports-columns"), {"dataset": "999999"}, HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    assert b"Choose a dataset" in response.content
    assert client.get(reverse("runs-detail", args=["8d4f8a52-7a3b-4f7e-9f3e-000000000000"])).status_code == 404


def test_a_dataset_gone_from_its_database_is_not_launched(client, users, demo_database):
    dataset = demo_database.datasets.get(name="orders")
    export = Export.objects.create(name="x", owner=users["owner"], dataset=dataset)
    dataset.missing_since = dataset.refreshed_at
    dataset.save()
    login(client, users["owner"])
    response = client.post(reverse("exports-launch", args=[export.id]), follow=True)
    assert b"no longer exists in its database" in response.content
    assert not Run.objects.exists()


def test_the_list_takes_a_constant_number_of_queries(client, users, demo_database):
    dataset = demo_database.datasets.get(name="orders")
    login(client, users["owner"])

    def queries_for(tab: str) -> int:
        with CaptureQueriesContext(connection) as captured:
            response = client.get(reverse("exports-list"), {"tab": tab})
        assert response.status_code == 200
        return len(captured)

    def add(count: int) -> None:
        for number in range(count):
            export = Export.objects.create(name=f"export {number}", owner=users["owner"], dataset=dataset)
            Run.objects.create(export=export, status=Run.Status.FAILED, error_code="INTERNAL_ERROR")

    add(2)
    few = {tab: queries_for(tab) for tab in ("draft", "finished")}
    add(20)
    many = {tab: queries_for(tab) for tab in ("draft", "finished")}
    assert few == many
    assert max(many.values()) <= 12
    assert client.get(reverse("exports-list"), {"tab": "finished"}).content.count(b'class="badge failed"') == 22


@pytest.mark.parametrize(
    ("who", "create", "launch", "download"),
    [
        ("owner", 200, 302, 200),
        ("teammate", 200, 403, 403),
        ("viewer", 403, 403, 403),
        ("nobody", 403, 403, 403),
        ("staff", 403, 403, 200),
        ("admin", 200, 302, 200),
        ("superuser", 200, 302, 200),
    ],
)
def test_each_role_may_do_what_it_should(client, users, demo_database, worker, who, create, launch, download):
    dataset = demo_database.datasets.get(name="orders")
    finished = Export.objects.create(name="done", owner=users["owner"], dataset=dataset)
    run = queue_run(finished, user=users["owner"])
    worker()
    draft = Export.objects.create(name="draft", owner=users["owner"], dataset=dataset)
    login(client, users[who])
    assert client.get(reverse("exports-list")).status_code == 200  # everyone sees everything
    assert client.get(reverse("exports-detail", args=[draft.id])).status_code == 200
    assert client.get(reverse("exports-new")).status_code == create
    assert client.post(reverse("exports-launch", args=[draft.id])).status_code == launch
    assert client.get(reverse("runs-download", args=[run.id])).status_code == download


def test_adding_a_filter_row_without_javascript_keeps_what_was_typed(client, users, demo_database):
    login(client, users["owner"])
    dataset = demo_database.datasets.get(name="orders")
    response = client.post(reverse("exports-new"), source_data(dataset, name="Kept", add_filter="1"))
    text = response.content.decode()
    assert response.status_code == 200
    assert 'value="Kept"' in text
    assert 'name="filters-3-column"' in text
    broken = client.post(reverse("exports-new"), source_data(dataset, add_filter="1", **{"filters-TOTAL_FORMS": "x"}))
    assert broken.status_code == 200
    assert Export.objects.count() == 0


def test_editing_a_draft_saves_its_changes(client, users, demo_database):
    dataset = demo_database.datasets.get(name="orders")
    export = Export.objects.create(
        name="Old name",
        owner=users["owner"],
        dataset=dataset,
        filters=[{"column": "items", "operator": "gt", "value": "2", "value_to": ""}],
    )
    login(client, users["owner"])
    page = client.get(wizard(export, "source")).content.decode()
    assert 'value="Old name"' in page
    assert 'value="items"' in page
    response = client.post(wizard(export, "source"), source_data(dataset, name="New name"))
    export.refresh_from_db()
    assert response.url == wizard(export, "file")
    assert export.name == "New name"
    assert export.filters == []
    assert export.owner == users["owner"]
    assert Export.objects.count() == 1
