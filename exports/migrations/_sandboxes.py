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
