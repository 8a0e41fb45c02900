from django.db import migrations

from exports.migrations import _sandboxes


def into_default(apps, schema_editor):
    """Everything that exists goes to the organisation "Default", sandbox production."""
    sandbox = _sandboxes.default_production(apps)
    for app, model in (
        ("exports", "Database"),
        ("exports", "Export"),
        ("exports", "ApiToken"),
        ("connectors", "Connector"),
    ):
        apps.get_model(app, model).objects.filter(sandbox__isnull=True).update(sandbox=sandbox)


class Migration(migrations.Migration):
    """The column, empty, then filled; 0011 makes it required (connectors: 0005, 0006)."""

    dependencies = [
        ("exports", "0009_spreadsheet_safe_and_error_codes"),
        ("connectors", "0005_sandboxes"),
        ("orgs", "0001_organisations_and_sandboxes"),
    ]

    operations = [
        *(
            migrations.AddField(model_name=model, name="sandbox", field=_sandboxes.field(required=False))
            for model in _sandboxes.MODELS
        ),
        migrations.RunPython(into_default, migrations.RunPython.noop),
    ]
