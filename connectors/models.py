"""Destinations an export delivers to. No connector on an export means a Desktop
(browser) download.

Settings that aren't secret live in `options` (JSON); secrets (keys, passwords) live in
`secrets`, a JSON object encrypted at rest, and are never rendered back to anyone.
"""

from __future__ import annotations

import json
import re
import secrets
import uuid
from datetime import timedelta
from pathlib import Path
from typing import ClassVar

from django.conf import settings
from django.db import IntegrityError, models, transaction
from django.urls import reverse
from django.utils import timezone

from connectors.sshkeys import generate_key_pair
from exportsite.crypto import EncryptedTextField
from exportsite.redaction import redact
from orgs.models import InSandbox, default_sandbox

_SAFE_LOGIN = re.compile(r"^[a-z][a-z0-9._-]{0,31}$")


class ConnectorQuerySet(models.QuerySet):
    def usable_in(self, sandbox_id) -> ConnectorQuerySet:
        """The destinations an export of `sandbox_id` may deliver to: that sandbox's own
        connectors (Desktop, no connector, is the other choice). `Connector.usable_in`
        says the same of one connector."""
        return self.filter(sandbox_id=sandbox_id).exclude(kind=Connector.Kind.DESKTOP).order_by("name", "id")


class Connector(InSandbox):
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
    # The prefix inside the bucket or container, or the folder on the SFTP server.
    base_path = models.CharField(max_length=1024, blank=True)
    options = models.JSONField(default=dict, blank=True)
    secrets = EncryptedTextField(blank=True, default="")
    last_tested_at = models.DateTimeField(null=True, blank=True)
    last_test_ok = models.BooleanField(null=True, blank=True)
    last_test_message = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = ConnectorQuerySet.as_manager()

    class Meta:
        ordering: ClassVar[list[str]] = ["name"]

    def __str__(self) -> str:
        return f"{self.name} ({self.get_kind_display()})"

    def usable_in(self, sandbox_id) -> bool:
        """Whether an export of `sandbox_id` may deliver here (`ConnectorQuerySet.usable_in`)."""
        return self.sandbox_id == sandbox_id and self.kind != self.Kind.DESKTOP

    def get_absolute_url(self) -> str:
        return reverse("connectors-detail", args=[self.id])

    # Secrets ---------------------------------------------------------------

    def secret_values(self) -> dict[str, str]:
        return json.loads(self.secrets) if self.secrets else {}

    def secret(self, name: str) -> str:
        return self.secret_values().get(name, "")

    def set_secrets(self, values: dict[str, str]) -> None:
        """Replace the secrets named in `values`; a blank value keeps the stored one."""
        merged = self.secret_values()
        merged.update({key: value for key, value in values.items() if value})
        self.secrets = json.dumps(merged)

    def clear_secrets(self, names: list[str]) -> None:
        kept = {key: value for key, value in self.secret_values().items() if key not in names}
        self.secrets = json.dumps(kept)

    def redact(self, text: str) -> str:
        """Remove any secret of this connector, in any form it can take, from a message
        (SDKs sometimes echo their input): exportsite/redaction.py."""
        return redact(text, self.secret_values().values())

    # Descriptions ----------------------------------------------------------

    @property
    def is_hosted_sftp(self) -> bool:
        return self.kind == self.Kind.HOSTED_SFTP

    @property
    def is_sftp(self) -> bool:
        return self.kind == self.Kind.SFTP

    @property
    def location(self) -> str:
        """Where deliveries land, as a URL-like string users recognise."""
        path = self.base_path.strip("/")
        suffix = f"/{path}" if path else ""
        if self.kind == self.Kind.S3:
            return f"s3://{self.options.get('bucket', '')}{suffix}/"
        if self.kind == self.Kind.GCS:
            return f"gs://{self.options.get('bucket', '')}{suffix}/"
        if self.kind == self.Kind.AZURE_BLOB:
            return f"azure://{self.options.get('container', '')}{suffix}/"
        if self.kind == self.Kind.SFTP:
            port = self.options.get("port", 22)
            return f"sftp://{self.options.get('username', '')}@{self.options.get('host', '')}:{port}/{path}"
        if self.kind == self.Kind.HOSTED_SFTP:
            return f"sftp://{self.sftp_login}@{settings.SFTPD_PUBLIC_HOST}:{settings.SFTPD_PORT}/{path}"
        return "Desktop"

    OPTION_LABELS: ClassVar[dict[str, str]] = {
        "bucket": "Bucket",
        "container": "Container",
        "region": "Region",
        "project": "Project ID",
        "access_key_id": "Access key ID",
        "account_name": "Account name",
        "endpoint_url": "Endpoint URL",
        "host": "Host",
        "port": "Port",
        "username": "User name",
        "auth": "Signs in with",
        "host_key_fingerprint": "Pinned host key",
    }

    def settings_for_display(self) -> list[tuple[str, str]]:
        """The non-secret settings, labelled, for the connector page."""
        return [(label, self.options[key]) for key, label in self.OPTION_LABELS.items() if self.options.get(key)]

    # Hosted SFTP -----------------------------------------------------------

    @property
    def sftp_login(self) -> str:
        return self.options.get("login", "")

    @property
    def public_key(self) -> str:
        return self.options.get("public_key", "")

    @property
    def key_fingerprint(self) -> str:
        return self.options.get("key_fingerprint", "")

    def zone(self) -> Path:
        """The hosted SFTP user's private folder, the root of what they see over SFTP."""
        return zone_path(self.sftp_login)

    def new_key_pair(self) -> None:
        """Give a hosted SFTP connector a fresh key pair; the old key stops working at once."""
        pair = generate_key_pair(comment=f"{self.sftp_login}@exportsite")
        self.options = {
            **self.options,
            "public_key": pair.public_openssh,
            "key_fingerprint": pair.fingerprint,
            "key_created_at": timezone.now().isoformat(),
        }
        self.set_secrets({"private_key": pair.private_openssh})

    @transaction.atomic
    def rotate_key(self, *, by) -> None:
        self.new_key_pair()
        self.save(update_fields=["options", "secrets", "updated_at"])
        self.record_key_event(KeyEvent.Action.ROTATED, by)

    def record_key_event(self, action: str, user, ip_address: str | None = None) -> KeyEvent:
        return KeyEvent.objects.create(
            connector=self, user=user, action=action, fingerprint=self.key_fingerprint, ip_address=ip_address
        )

    def in_use_by(self):
        return self.exports.order_by("name")


def zone_path(login: str) -> Path:
    if not _SAFE_LOGIN.match(login):
        raise ValueError(f"not a hosted SFTP login: {login!r}")
    return Path(settings.SFTP_ROOT) / login


class SftpLogin(models.Model):
    """A hosted SFTP login, the person it belongs to and the sandbox its zone is in: one
    per person and sandbox, so production and test files never mix. Unique, and never
    deleted nor given to anyone else, so a zone (and the files left in it) can't pass to
    another user. A user's deletion leaves the login reserved, its zone listed for admins."""

    login = models.CharField(max_length=32, unique=True)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="sftp_logins"
    )
    sandbox = models.ForeignKey("orgs.Sandbox", on_delete=models.PROTECT, related_name="sftp_logins")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = "hosted SFTP login"
        constraints: ClassVar[list[models.BaseConstraint]] = [
            models.UniqueConstraint(fields=["owner", "sandbox"], name="one_sftp_login_per_person_and_sandbox"),
        ]

    def __str__(self) -> str:
        return self.login

    def zone(self) -> Path:
        return zone_path(self.login)


def login_for(user, sandbox=None) -> str:
    """The SSH user name of someone's hosted SFTP zone in `sandbox` (None: Default's
    production). In the first sandbox they have one: their user name when it is a plain
    one nobody has had; else one made from their id and the sandbox. One zone per person
    and sandbox, for good."""
    sandbox_id = sandbox.pk if sandbox is not None else default_sandbox()
    mine = SftpLogin.objects.filter(owner=user, sandbox_id=sandbox_id)
    existing = mine.first()
    if existing is not None:
        return existing.login
    name = user.username.lower()
    candidates = [name] if _SAFE_LOGIN.match(name) else []
    candidates += [f"user{user.pk}-s{sandbox_id}", *(f"user{user.pk}-{secrets.token_hex(3)}" for _ in range(5))]
    for candidate in candidates:
        if SftpLogin.objects.filter(login=candidate).exists():
            continue
        try:
            with transaction.atomic():
                return SftpLogin.objects.create(login=candidate, owner=user, sandbox_id=sandbox_id).login
        except IntegrityError:
            # Taken meanwhile: the login by someone else, or this user's row by a twin request.
            existing = mine.first()
            if existing is not None:
                return existing.login
    raise RuntimeError(f"no free hosted SFTP login for {user.username!r}")


class KeyEvent(models.Model):
    """Every creation, download and rotation of a hosted SFTP private key: who and when."""

    class Action(models.TextChoices):
        CREATED = "created", "Created"
        DOWNLOADED = "downloaded", "Downloaded"
        ROTATED = "rotated", "Rotated"

    connector = models.ForeignKey(Connector, on_delete=models.CASCADE, related_name="key_events")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    action = models.CharField(max_length=20, choices=Action.choices)
    fingerprint = models.CharField(max_length=100, blank=True)
    ip_address = models.GenericIPAddressField(null=True, blank=True)
    at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering: ClassVar[list[str]] = ["-at"]

    def __str__(self) -> str:
        return f"{self.get_action_display()} by {self.user} at {self.at:%Y-%m-%d %H:%M}"


class ConnectionTest(models.Model):
    """One press of Test connection: queued in the web request, run by a worker within
    CONNECTION_TEST_SECONDS of the press, its steps read back by the page that polls it."""

    class State(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        DONE = "done", "Done"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    # Kept when the connector goes: the tests a user started still count against their rate.
    connector = models.ForeignKey(Connector, null=True, on_delete=models.SET_NULL, related_name="tests")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    state = models.CharField(max_length=10, choices=State.choices, default=State.QUEUED)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    ok = models.BooleanField(null=True, blank=True)
    # [{"name": "connect", "ok": true, "detail": "...", "problem": ""}, ...]
    steps = models.JSONField(default=list, blank=True)
    unconfirmed_host_key = models.CharField(max_length=100, blank=True)

    class Meta:
        ordering: ClassVar[list[str]] = ["-created_at"]

    def __str__(self) -> str:
        return f"test of {self.connector_id} at {self.created_at:%Y-%m-%d %H:%M:%S}"

    def get_absolute_url(self) -> str:
        return reverse("connectors-test-result", args=[self.connector_id, self.id])

    @property
    def deadline(self):
        return self.created_at + timedelta(seconds=settings.CONNECTION_TEST_SECONDS)

    @property
    def pending(self) -> bool:
        return self.state != self.State.DONE
