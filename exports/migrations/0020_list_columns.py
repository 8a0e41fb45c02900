"""Manage Exports at scale: a run's sandbox and an export's latest run time are kept
on the rows (filled here from what exists), with the indexes its tabs and sorts use."""

import django.db.models.deletion
from django.db import migrations, models
from django.db.models import OuterRef, Subquery


def fill(apps, schema_editor):
    Export = apps.get_model("exports", "Export")
    Run = apps.get_model("exports", "Run")
    Run.objects.update(sandbox_id=Subquery(Export.objects.filter(id=OuterRef("export_id")).values("sandbox_id")[:1]))
    latest = Run.objects.filter(export_id=OuterRef("id")).order_by("-queued_at").values("queued_at")[:1]
    Export.objects.update(last_run_at=Subquery(latest))


class Migration(migrations.Migration):
    dependencies = [
        ("exports", "0019_partitioned_runs"),
        ("orgs", "0001_organisations_and_sandboxes"),
    ]

    operations = [
        migrations.AddField(
            model_name="run",
            name="sandbox",
            field=models.ForeignKey(
                editable=False,
                null=True,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="+",
                to="orgs.sandbox",
            ),
        ),
        migrations.AddField(
            model_name="export",
            name="last_run_at",
            field=models.DateTimeField(blank=True, editable=False, null=True),
        ),
        migrations.RunPython(fill, migrations.RunPython.noop),
        migrations.AlterField(
            model_name="run",
            name="sandbox",
            field=models.ForeignKey(
                editable=False, on_delete=django.db.models.deletion.PROTECT, related_name="+", to="orgs.sandbox"
            ),
        ),
        migrations.AddIndex(
            model_name="export",
            index=models.Index(fields=["sandbox", "name", "id"], name="export_sandbox_name"),
        ),
        migrations.AddIndex(
            model_name="export",
            index=models.Index(fields=["sandbox", "last_run_at", "id"], name="export_sandbox_last_run"),
        ),
        migrations.AddIndex(
            model_name="export",
            index=models.Index(fields=["sandbox", "next_run_at", "id"], name="export_sandbox_next_run"),
        ),
        migrations.AddIndex(
            model_name="run",
            index=models.Index(fields=["sandbox", "status"], name="run_sandbox_status"),
        ),
        migrations.AddIndex(
            model_name="run",
            index=models.Index(fields=["sandbox", "-queued_at", "id"], name="run_sandbox_queued"),
        ),
        migrations.AddIndex(
            model_name="run",
            index=models.Index(fields=["export", "queued_at", "id"], name="run_export_queued"),
        ),
    ]
