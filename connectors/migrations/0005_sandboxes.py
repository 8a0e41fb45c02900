import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    """Step 1 of 3: the column, empty. exports/0010 fills it; 0006 makes it required."""

    dependencies = [
        ("connectors", "0004_connection_tests"),
        ("orgs", "0001_organisations_and_sandboxes"),
    ]

    operations = [
        migrations.AddField(
            model_name="connector",
            name="sandbox",
            field=models.ForeignKey(
                null=True,
                blank=True,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="%(class)ss",
                to="orgs.sandbox",
            ),
        ),
    ]
