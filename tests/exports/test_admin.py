"""The Django admin goes through the same rules as the wizard: the model's checks and
`actions.save_draft`, never around them."""

from __future__ import annotations

from django.urls import reverse

from exports.models import Export, Run
from tests.conftest import PASSWORD


def change_form(export: Export, **changes) -> dict:
    data = {
        "name": export.name,
        "file_format": export.file_format,
        "compression": export.compression,
        "csv_delimiter": export.csv_delimiter,
        "csv_header": "on",
        "spreadsheet_safe": export.spreadsheet_safe,
        "rows_per_file": export.rows_per_file,
        "file_template": export.file_template,
        "folder_template": export.folder_template,
        "report_recipients": export.report_recipients,
    }
    data.update(changes)
    return data


def draft(users, demo_database, **fields) -> Export:
    return Export.objects.create(
        name="Admin edited", owner=users["owner"], dataset=demo_database.datasets.get(name="orders"), **fields
    )


def test_an_admin_save_of_an_unsafe_template_is_refused(client, users, demo_database):
    export = draft(users, demo_database)
    client.login(username="root", password=PASSWORD)
    url = reverse("admin:exports_export_change", args=[export.id])
    for field, value in [
        ("file_template", "../../x"),
        ("file_template", "%NOT_A_TOKEN%"),
        ("folder_template", "/etc/cron.d"),
        ("folder_template", "a/../../b"),
        ("compression", "snappy"),  # not for CSV
    ]:
        response = client.post(url, change_form(export, **{field: value}))
        assert response.status_code == 200, (field, value)  # the form again, with its error
        assert response.context["adminform"].form.errors.get(field), (field, value)
    export.refresh_from_db()
    assert (export.file_template, export.folder_template, export.compression) == (
        Export._meta.get_field("file_template").default,
        "",
        "gzip",
    )
    response = client.post(url, change_form(export, file_template="orders_%DATETIME(YYYYMMdd)%"))
    assert response.status_code == 302
    export.refresh_from_db()
    assert export.file_template == "orders_%DATETIME(YYYYMMdd)%"


def test_the_admin_shows_a_scheduled_export_and_runs_read_only(client, users, demo_database):
    export = draft(users, demo_database, status=Export.Status.SCHEDULED)
    run = Run.objects.create(export=export, status=Run.Status.SUCCEEDED)
    client.login(username="root", password=PASSWORD)
    url = reverse("admin:exports_export_change", args=[export.id])
    client.post(url, change_form(export, file_template="changed", name="Changed"))
    export.refresh_from_db()
    assert (export.name, export.file_template) == ("Admin edited", Export._meta.get_field("file_template").default)
    # Adding is for custom exports only (tests/exports/test_custom_exports.py): no one-shot.
    adding = client.get(reverse("admin:exports_export_add"))
    assert adding.status_code == 200
    assert "one_shot" not in dict(adding.context["adminform"].form.fields["export_type"].choices)
    assert client.post(reverse("admin:exports_export_delete", args=[export.id]), {"post": "yes"}).status_code == 403
    assert client.post(reverse("admin:exports_run_delete", args=[run.id]), {"post": "yes"}).status_code == 403
    assert Export.objects.filter(id=export.id).exists()
    assert Run.objects.filter(id=run.id).exists()
