"""The sandbox field of exports' models, as the two migrations that add it need it."""

import django.db.models.deletion
from django.db import models

MODELS = ("database", "export", "apitoken")


def field(*, required: bool) -> models.ForeignKey:
    """orgs.models.InSandbox's field: empty at first, then required."""
    return models.ForeignKey(
        blank=True,
        null=not required,
        on_delete=django.db.models.deletion.PROTECT,
        related_name="%(class)ss",
        to="orgs.sandbox",
    )


def default_production(apps):
    """Default's production sandbox, where whatever existed before organisations goes;
    made if it doesn't exist yet (historical models: no Organisation.save here)."""
    Organisation = apps.get_model("orgs", "Organisation")
    Sandbox = apps.get_model("orgs", "Sandbox")
    organisation, _ = Organisation.objects.get_or_create(slug="default", defaults={"name": "Default"})
    sandbox, _ = Sandbox.objects.get_or_create(
        organisation=organisation, slug="production", defaults={"name": "Production", "kind": "production"}
    )
    return sandbox
