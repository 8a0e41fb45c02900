"""Hosted SFTP zones per sandbox, step 1 of 2: a login belongs to a person *and* a
sandbox. The logins that exist are Default/production's, where their connectors went."""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

from exports.migrations import _sandboxes


def into_default(apps, schema_editor):
    SftpLogin = apps.get_model("connectors", "SftpLogin")
    if not SftpLogin.objects.exists():
        return
    production = _sandboxes.default_production(apps)
    SftpLogin.objects.filter(sandbox__isnull=True).update(sandbox=production)


class Migration(migrations.Migration):
    dependencies = [
        ("connectors", "0006_sandbox_required"),
        ("orgs", "0002_memberships"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AlterField(
            model_name="sftplogin",
            name="owner",
            field=models.ForeignKey(
                blank=True,
                null=True,
                on_delete=django.db.models.deletion.SET_NULL,
                related_name="sftp_logins",
                to=settings.AUTH_USER_MODEL,
            ),
        ),
        migrations.AddField(
            model_name="sftplogin",
            name="sandbox",
            field=models.ForeignKey(
                null=True, on_delete=django.db.models.deletion.PROTECT, related_name="sftp_logins", to="orgs.sandbox"
            ),
        ),
        migrations.RunPython(into_default, migrations.RunPython.noop),
    ]
