"""Destinations an export delivers to. Only the model exists yet; delivery to each kind
comes with the connectors issue. No connector means a Desktop (browser) download."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models

from exportsite.crypto import EncryptedTextField


class Connector(models.Model):
    class Kind(models.TextChoices):
        DESKTOP = "desktop", "Desktop download"
        S3 = "s3", "Amazon S3"
        GCS = "gcs", "Google Cloud Storage"
        AZURE_BLOB = "azure_blob", "Azure Blob Storage"
        SFTP = "sftp", "SFTP"
        HOSTED_SFTP = "hosted_sftp", "Hosted SFTP"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=200)
    kind = models.CharField(max_length=20, choices=Kind.choices)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="connectors")
    base_path = models.CharField(max_length=1024, blank=True)
    options = models.JSONField(default=dict, blank=True)
    secrets = EncryptedTextField(blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return f"{self.name} ({self.get_kind_display()})"
