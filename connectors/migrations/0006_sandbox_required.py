import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("connectors", "0005_sandboxes"),
        ("exports", "0011_sandbox_required"),
    ]

    operations = [
        migrations.AlterField(
            model_name="connector",
            name="sandbox",
            field=models.ForeignKey(
                blank=True, on_delete=django.db.models.deletion.PROTECT, related_name="%(class)ss", to="orgs.sandbox"
            ),
        ),
    ]
