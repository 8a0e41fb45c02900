"""Hosted SFTP zones per sandbox, step 2 of 2 (PostgreSQL won't alter the table in the
migration that filled it): the sandbox is required, one login per person and sandbox."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("connectors", "0007_sftp_logins_per_sandbox")]

    operations = [
        migrations.AlterField(
            model_name="sftplogin",
            name="sandbox",
            field=models.ForeignKey(
                on_delete=django.db.models.deletion.PROTECT, related_name="sftp_logins", to="orgs.sandbox"
            ),
        ),
        migrations.AddConstraint(
            model_name="sftplogin",
            constraint=models.UniqueConstraint(
                fields=("owner", "sandbox"), name="one_sftp_login_per_person_and_sandbox"
            ),
        ),
    ]
