"""Roles per organisation: every user becomes a member of Default in the role their
Django group gave them (superusers and admins: admin; marketers: marketer; anyone
else: viewer, as before)."""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

from exports.migrations import _sandboxes

GROUP_ROLES = (("admins", "admin"), ("marketers", "marketer"))


def into_default(apps, schema_editor):
    User = apps.get_model("auth", "User")
    if not User.objects.exists():
        return
    Membership = apps.get_model("orgs", "Membership")
    default = _sandboxes.default_production(apps).organisation
    for user in User.objects.prefetch_related("groups"):
        groups = {group.name for group in user.groups.all()}
        role = "admin" if user.is_superuser else next((r for g, r in GROUP_ROLES if g in groups), "viewer")
        Membership.objects.get_or_create(user=user, organisation=default, defaults={"role": role})


class Migration(migrations.Migration):
    dependencies = [
        ("orgs", "0001_organisations_and_sandboxes"),
        ("exports", "0002_roles"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name="Membership",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                (
                    "role",
                    models.CharField(
                        choices=[("viewer", "Viewer"), ("marketer", "Marketer"), ("admin", "Admin")],
                        default="viewer",
                        max_length=20,
                    ),
                ),
                ("created_at", models.DateTimeField(auto_now_add=True)),
                (
                    "organisation",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE, related_name="memberships", to="orgs.organisation"
                    ),
                ),
                (
                    "user",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="memberships",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
            ],
            options={"ordering": ["organisation__name", "user__username"]},
        ),
        migrations.AddConstraint(
            model_name="membership",
            constraint=models.UniqueConstraint(fields=("user", "organisation"), name="one_membership_per_organisation"),
        ),
        migrations.CreateModel(
            name="AuditEntry",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("at", models.DateTimeField(auto_now_add=True, db_index=True)),
                ("username", models.CharField(max_length=150)),
                ("action", models.CharField(choices=[("entered", "Entered the organisation")], max_length=20)),
                ("path", models.CharField(blank=True, max_length=500)),
                (
                    "organisation",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="audit_entries",
                        to="orgs.organisation",
                    ),
                ),
                (
                    "sandbox",
                    models.ForeignKey(
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="+",
                        to="orgs.sandbox",
                    ),
                ),
                (
                    "user",
                    models.ForeignKey(
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="+",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
            ],
            options={"ordering": ["-at"], "verbose_name_plural": "audit entries"},
        ),
        migrations.RunPython(into_default, migrations.RunPython.noop),
    ]
