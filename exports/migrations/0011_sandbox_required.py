from django.db import migrations

from exports.migrations import _sandboxes


class Migration(migrations.Migration):
    """In a migration of its own: PostgreSQL alters no table with the data migration's
    updates still pending in the same transaction."""

    dependencies = [("exports", "0010_sandboxes")]

    operations = [
        migrations.AlterField(model_name=model, name="sandbox", field=_sandboxes.field(required=True))
        for model in _sandboxes.MODELS
    ]
