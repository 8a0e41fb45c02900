"""Tenancy: Organisation → Sandbox → everything else (docs/tenancy.md).

Each client company is an organisation; each organisation has a `production` sandbox
and may add development sandboxes. Source databases, exports (and their runs),
connectors and API tokens each belong to exactly one sandbox.

This is the first step of issue 14: every object has its sandbox, and whatever existed
before is in the organisation "Default", sandbox `production`. Until pages and the API
choose where new objects go, an object saved without a sandbox goes there too
(`InSandbox.save`).
"""

from __future__ import annotations

from typing import ClassVar

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
