"""Tenancy: Organisation → Sandbox → everything else (docs/tenancy.md).

Each client company is an organisation; each organisation has a `production` sandbox
and may add development sandboxes. Source databases, exports (and their runs),
connectors and API tokens each belong to exactly one sandbox.

People belong to organisations through a `Membership` with a role (viewer, marketer,
admin); `exports/permissions.py` decides what each role may do. Pages act in the sandbox
their URL names (`orgs.scope`), the API in its token's. Whatever existed before
organisations is in the organisation "Default", sandbox `production`, and an object
saved without a sandbox still goes there (`InSandbox.save`), as the admin's do.
"""

from __future__ import annotations

from typing import ClassVar

from django.conf import settings
from django.db import models

DEFAULT_ORGANISATION = "default"
PRODUCTION = "production"


class Organisation(models.Model):
    name = models.CharField(max_length=200, unique=True)
    slug = models.SlugField(max_length=50, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering: ClassVar[list[str]] = ["name"]

    def __str__(self) -> str:
        return self.name

    def save(self, *args, **kwargs):
        """A new organisation starts with its production sandbox."""
        created = self._state.adding
        super().save(*args, **kwargs)
        if created:
            Sandbox.objects.get_or_create(
                organisation=self, slug=PRODUCTION, defaults={"name": "Production", "kind": Sandbox.Kind.PRODUCTION}
            )


class Sandbox(models.Model):
    class Kind(models.TextChoices):
        PRODUCTION = "production", "Production"
        DEVELOPMENT = "development", "Development"

    organisation = models.ForeignKey(Organisation, on_delete=models.PROTECT, related_name="sandboxes")
    name = models.CharField(max_length=100)
    slug = models.SlugField(max_length=50)
    kind = models.CharField(max_length=20, choices=Kind.choices, default=Kind.DEVELOPMENT)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering: ClassVar[list[str]] = ["organisation__name", "-kind", "name"]
        constraints: ClassVar[list[models.BaseConstraint]] = [
            models.UniqueConstraint(fields=["organisation", "slug"], name="sandbox_unique_slug"),
            models.UniqueConstraint(
                fields=["organisation"], condition=models.Q(kind="production"), name="one_production_sandbox"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.organisation.name} / {self.name}"


class Membership(models.Model):
    """A user's role in an organisation. A user may belong to several organisations;
    superusers (platform staff) may enter any organisation without one."""

    class Role(models.TextChoices):
        VIEWER = "viewer", "Viewer"
        MARKETER = "marketer", "Marketer"
        ADMIN = "admin", "Admin"

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    organisation = models.ForeignKey(Organisation, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=20, choices=Role.choices, default=Role.VIEWER)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering: ClassVar[list[str]] = ["organisation__name", "user__username"]
        constraints: ClassVar[list[models.BaseConstraint]] = [
            models.UniqueConstraint(fields=["user", "organisation"], name="one_membership_per_organisation"),
        ]

    def __str__(self) -> str:
        return f"{self.user} in {self.organisation.name} ({self.get_role_display()})"


class AuditEntry(models.Model):
    """Something platform staff did that an organisation should be able to see: today,
    entering an organisation they are not a member of."""

    class Action(models.TextChoices):
        ENTERED = "entered", "Entered the organisation"

    at = models.DateTimeField(auto_now_add=True, db_index=True)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    username = models.CharField(max_length=150)  # kept when the user is deleted
    organisation = models.ForeignKey(Organisation, on_delete=models.CASCADE, related_name="audit_entries")
    sandbox = models.ForeignKey(Sandbox, null=True, on_delete=models.SET_NULL, related_name="+")
    action = models.CharField(max_length=20, choices=Action.choices)
    path = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering: ClassVar[list[str]] = ["-at"]
        verbose_name_plural = "audit entries"

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M} {self.username} {self.get_action_display().lower()} {self.organisation}"


def default_sandbox() -> int:
    """Where an object goes when nobody said: the Default organisation's production
    sandbox, made if it doesn't exist yet."""
    organisation, _ = Organisation.objects.get_or_create(slug=DEFAULT_ORGANISATION, defaults={"name": "Default"})
    sandbox, _ = Sandbox.objects.get_or_create(
        organisation=organisation, slug=PRODUCTION, defaults={"name": "Production", "kind": Sandbox.Kind.PRODUCTION}
    )
    return sandbox.pk


class InSandbox(models.Model):
    """What belongs to exactly one sandbox: source databases, exports, connectors, API
    tokens (`sandbox.databases`, `.exports`, `.connectors`, `.apitokens`)."""

    # blank: a form or `full_clean` may leave it for `save` to fill.
    sandbox = models.ForeignKey(Sandbox, on_delete=models.PROTECT, blank=True, related_name="%(class)ss")

    class Meta:
        abstract = True

    def save(self, *args, **kwargs):
        if self.sandbox_id is None:
            self.sandbox_id = default_sandbox()
        super().save(*args, **kwargs)
