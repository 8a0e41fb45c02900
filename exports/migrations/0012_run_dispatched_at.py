"""Runs are handed to RQ by the dispatcher (exports/dispatch.py). The runs queued before
it are in RQ already: they count as dispatched when they were queued."""

from django.db import migrations, models
from django.db.models import F


def dispatched_when_queued(apps, schema_editor):
    Run = apps.get_model("exports", "Run")
    Run.objects.filter(status__in=("queued", "running")).update(dispatched_at=F("queued_at"))


class Migration(migrations.Migration):
    dependencies = [("exports", "0011_sandbox_required")]

    operations = [
        migrations.AddField(model_name="run", name="dispatched_at", field=models.DateTimeField(blank=True, null=True)),
        migrations.RunPython(dispatched_when_queued, migrations.RunPython.noop),
    ]
