"""One form per connector kind, built from a short field list.

Secret fields are write-only: they render empty, a blank value on an edit keeps the
stored secret, and nothing secret is ever put back into a page.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from django import forms
from django.core.exceptions import ValidationError

from connectors.errors import DestinationError
from connectors.models import Connector, KeyEvent, login_for
from connectors.sshkeys import FINGERPRINT, normalize_fingerprint
from connectors.storage import GOOGLE_TOKEN_HOSTS, _blob_endpoint, _load_private_key
from exports.layout import validate_template
from exportsite import outbound

_S3_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_GCS_BUCKET = re.compile(r"^[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]$")
_AZURE_CONTAINER = re.compile(r"^(?!.*--)[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$")
_HOST = re.compile(r"^[A-Za-z0-9.-]{1,253}$|^\[?[0-9A-Fa-f:]+\]?$")

AZURE_AUTH = [
    ("connection_string", "Connection string"),
    ("account_key", "Account name and key"),
    ("sas_token", "Account name and SAS token"),
]
SFTP_AUTH = [("password", "Password"), ("private_key", "Private key")]

# kind -> (label of base_path, help of base_path, option fields, secret fields)
_TEXT = {"class": "wide"}


def _secret(label: str, *, multiline: bool = False, help_text: str = "") -> forms.CharField:
    widget = forms.Textarea(attrs={"rows": 4, "autocomplete": "off"}) if multiline else forms.PasswordInput()
    return forms.CharField(label=label, required=False, widget=widget, strip=not multiline, help_text=help_text)


def _check_outbound(check, *args, **kwargs):
    """The outbound address policy's verdict as a form error. A name that doesn't resolve
    is let through: Test connection then says the host is unreachable."""
    try:
        return check(*args, **kwargs)
    except outbound.HostNotFound:
        return None
    except outbound.AddressNotAllowed as exc:
        raise ValidationError(exc.message[:1].upper() + exc.message[1:] + ".") from None


def _option_fields(kind: str) -> dict[str, forms.Field]:
    if kind == Connector.Kind.S3:
        return {
            "bucket": forms.CharField(label="Bucket"),
            "region": forms.CharField(label="Region", initial="us-east-1", required=False),
            "access_key_id": forms.CharField(label="Access key ID"),
            "endpoint_url": forms.URLField(
                assume_scheme="https",
                label="Endpoint URL",
                required=False,
                help_text="Only for S3-compatible stores (MinIO, Ceph, Wasabi...). Empty: Amazon S3.",
            ),
        }
    if kind == Connector.Kind.GCS:
        return {
            "bucket": forms.CharField(label="Bucket"),
            "project": forms.CharField(label="Project ID", required=False),
            "endpoint_url": forms.URLField(
                assume_scheme="https",
                label="Endpoint URL",
                required=False,
                help_text="Only for GCS emulators or compatible stores; without a key, requests are anonymous there.",
            ),
        }
    if kind == Connector.Kind.AZURE_BLOB:
        return {
            "container": forms.CharField(label="Container"),
            "auth": forms.ChoiceField(
                label="Sign in with", choices=AZURE_AUTH, initial=AZURE_AUTH[0][0], widget=forms.RadioSelect
            ),
            "account_name": forms.CharField(label="Account name", required=False),
            "endpoint_url": forms.URLField(
                assume_scheme="https",
                label="Blob endpoint URL",
                required=False,
                help_text="Empty: https://<account>.blob.core.windows.net. Not used with a connection string.",
            ),
        }
    if kind == Connector.Kind.SFTP:
        return {
            "host": forms.CharField(label="Host"),
            "port": forms.IntegerField(label="Port", min_value=1, max_value=65535, initial=22),
            "username": forms.CharField(label="User name"),
            "auth": forms.ChoiceField(
                label="Sign in with", choices=SFTP_AUTH, initial=SFTP_AUTH[0][0], widget=forms.RadioSelect
            ),
            "host_key_fingerprint": forms.CharField(
                label="Server host key fingerprint",
                required=False,
                help_text="SHA256:... as `ssh-keygen -lf` prints it. Empty: Test connection fetches it "
                "and asks you to confirm it.",
            ),
        }
    return {}


def _secret_fields(kind: str) -> dict[str, forms.Field]:
    if kind == Connector.Kind.S3:
        return {"secret_access_key": _secret("Secret access key")}
    if kind == Connector.Kind.GCS:
        return {"service_account_json": _secret("Service-account JSON key", multiline=True)}
    if kind == Connector.Kind.AZURE_BLOB:
        return {
            "connection_string": _secret("Connection string"),
            "account_key": _secret("Account key"),
            "sas_token": _secret("SAS token"),
        }
    if kind == Connector.Kind.SFTP:
        return {
            "password": _secret("Password"),
            "private_key": _secret("Private key", multiline=True, help_text="OpenSSH or PEM format."),
            "passphrase": _secret("Private key passphrase", help_text="Only if the key is encrypted."),
        }
    return {}


_PATH_LABELS: dict[str, tuple[str, str]] = {
    Connector.Kind.S3: ("Prefix", "Folder inside the bucket, e.g. exports/crm. Empty: the bucket's root."),
    Connector.Kind.GCS: ("Prefix", "Folder inside the bucket. Empty: the bucket's root."),
    Connector.Kind.AZURE_BLOB: ("Prefix", "Folder inside the container. Empty: the container's root."),
    Connector.Kind.SFTP: ("Remote folder", "Must exist on the server, e.g. /upload. Empty: the login folder."),
    Connector.Kind.HOSTED_SFTP: ("Folder", "Folder in your private SFTP zone; created when needed."),
}
# Which secrets each sign-in method uses; the others are forgotten on save.
_SECRETS_BY_AUTH = {
    "connection_string": {"connection_string"},
    "account_key": {"account_key"},
    "sas_token": {"sas_token"},
    "password": {"password"},
    "private_key": {"private_key", "passphrase"},
}
_REQUIRED_SECRETS: dict[str, set[str]] = {
    Connector.Kind.S3: {"secret_access_key"},
    "connection_string": {"connection_string"},
    "account_key": {"account_key"},
    "sas_token": {"sas_token"},
    "password": {"password"},
    "private_key": {"private_key"},
}


class ConnectorForm(forms.Form):
    name = forms.CharField(max_length=200)
    base_path = forms.CharField(required=False, max_length=1024)

    def __init__(
        self,
        data: Mapping[str, Any] | None = None,
        *,
        kind: str,
        instance: Connector | None = None,
        owner=None,
        sandbox=None,
        initial: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ):
        self.kind = kind
        self.instance = instance
        self.owner = owner
        self.sandbox = sandbox
        initial = dict(initial or {})
        if instance is not None:
            initial = {"name": instance.name, "base_path": instance.base_path, **instance.options, **initial}
        elif kind == Connector.Kind.HOSTED_SFTP:
            initial.setdefault("base_path", "exports")
        super().__init__(data, initial=initial, **kwargs)
        label, help_text = _PATH_LABELS.get(kind, ("Path", ""))
        self.fields["base_path"].label = label
        self.fields["base_path"].help_text = help_text
        self.option_names = list(_option_fields(kind))
        self.secret_names = list(_secret_fields(kind))
        self.fields.update(_option_fields(kind))
        stored = instance.secret_values() if instance else {}
        for name, field in _secret_fields(kind).items():
            if stored.get(name):
                field.help_text = (field.help_text + " " if field.help_text else "") + "Stored; leave blank to keep it."
            self.fields[name] = field

    # Field checks -----------------------------------------------------------

    def clean_base_path(self):
        path = self.cleaned_data["base_path"].strip()
        if self.kind == Connector.Kind.SFTP:
            path = "/" + path.strip("/") if path.startswith("/") else path.strip("/")
            relative = path.lstrip("/")
        else:
            path = relative = path.strip("/")
        if relative:
            try:
                validate_template(relative, allow_slashes=True)
            except ValidationError as exc:
                raise ValidationError(exc.messages[0].replace("the path", "the folder")) from None
            if "%" in relative:
                raise ValidationError("'%' is not allowed in a folder")
        return path

    def clean_bucket(self):
        bucket = self.cleaned_data["bucket"].strip()
        pattern = _S3_BUCKET if self.kind == Connector.Kind.S3 else _GCS_BUCKET
        if not pattern.match(bucket):
            raise ValidationError(
                f"{bucket!r} is not a valid bucket name: 3 to 63 lower-case letters, digits, dots and hyphens"
            )
        return bucket

    def clean_container(self):
        container = self.cleaned_data["container"].strip()
        if not _AZURE_CONTAINER.match(container):
            raise ValidationError(
                f"{container!r} is not a valid container name: 3 to 63 lower-case letters, digits and single hyphens"
            )
        return container

    def clean_host(self):
        host = self.cleaned_data["host"].strip()
        if not _HOST.match(host):
            raise ValidationError(f"{host!r} is not a host name or IP address")
        _check_outbound(outbound.check_host, host)
        return host

    def clean_connection_string(self):
        text = self.cleaned_data["connection_string"].strip()
        if text:
            _check_outbound(outbound.check_url, _blob_endpoint(text), what="its blob endpoint")
        return text

    def clean_endpoint_url(self):
        url = self.cleaned_data["endpoint_url"].strip()
        if url:
            _check_outbound(outbound.check_url, url, what="the endpoint")
        return url

    def clean_host_key_fingerprint(self):
        fingerprint = normalize_fingerprint(self.cleaned_data["host_key_fingerprint"])
        if fingerprint and not FINGERPRINT.match(fingerprint):
            raise ValidationError("a fingerprint looks like SHA256: followed by 43 characters")
        return fingerprint

    def clean_service_account_json(self):
        text = self.cleaned_data["service_account_json"].strip()
        if not text:
            return text
        try:
            info = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValidationError(f"the key is not valid JSON (line {exc.lineno}, column {exc.colno})") from None
        if not isinstance(info, dict) or info.get("type") != "service_account":
            raise ValidationError('this is not a service-account key (its "type" must be "service_account")')
        missing = [key for key in ("client_email", "private_key", "token_uri") if not info.get(key)]
        if missing:
            raise ValidationError(f"the key lacks {', '.join(missing)}")
        token_host = _check_outbound(outbound.check_url, str(info["token_uri"]), what="its token_uri", bare=False)
        if token_host and token_host not in GOOGLE_TOKEN_HOSTS and not outbound.in_allowed_network(token_host):
            raise ValidationError(f"the address is not allowed: its token_uri must be Google's, not {token_host}")
        return text

    def clean(self) -> dict[str, Any]:
        super().clean()
        cleaned = self.cleaned_data
        stored = self.instance.secret_values() if self.instance else {}
        auth = cleaned.get("auth", "")
        needed = _REQUIRED_SECRETS.get(self.kind, set()) | _REQUIRED_SECRETS.get(auth, set())
        for name in needed:
            if name in self.fields and not cleaned.get(name) and not stored.get(name):
                self.add_error(name, f"{self.fields[name].label} is required.")
        if self.kind == Connector.Kind.GCS:
            if not cleaned.get("service_account_json") and not stored.get("service_account_json"):
                if not cleaned.get("endpoint_url"):
                    self.add_error("service_account_json", "A service-account JSON key is required.")
        if self.kind == Connector.Kind.AZURE_BLOB and auth in {"account_key", "sas_token"}:
            if not cleaned.get("account_name"):
                self.add_error("account_name", "The account name is required with an account key or SAS token.")
        if self.kind == Connector.Kind.SFTP and auth == "private_key" and cleaned.get("private_key"):
            try:
                _load_private_key(cleaned["private_key"], cleaned.get("passphrase") or stored.get("passphrase", ""))
            except DestinationError as exc:
                self.add_error("private_key", exc.message[:1].upper() + exc.message[1:] + ".")
        return cleaned

    # Saving ---------------------------------------------------------------

    def save(self) -> Connector:
        connector = self.instance or Connector(kind=self.kind, owner=self.owner, sandbox=self.sandbox)
        data = self.cleaned_data
        previous = dict(connector.options)
        connector.name = data["name"].strip()
        connector.base_path = data["base_path"]
        options = {name: data.get(name) for name in self.option_names}
        options = {name: value for name, value in options.items() if value not in (None, "")}
        if self.kind == Connector.Kind.HOSTED_SFTP:
            options = {**previous, "login": previous.get("login") or login_for(connector.owner, connector.sandbox)}
        connector.options = options
        connector.set_secrets({name: data.get(name, "") for name in self.secret_names})
        auth = data.get("auth")
        if auth:
            unused = set().union(*(names for key, names in _SECRETS_BY_AUTH.items() if key != auth))
            connector.clear_secrets(sorted(unused - _SECRETS_BY_AUTH[auth]))
        creating = connector._state.adding
        if creating and self.kind == Connector.Kind.HOSTED_SFTP:
            connector.new_key_pair()
        connector.save()
        if creating and self.kind == Connector.Kind.HOSTED_SFTP:
            connector.record_key_event(KeyEvent.Action.CREATED, self.owner)
        return connector

    def secret_fields(self):
        return [self[name] for name in self.secret_names]
