"""Signed, expiring download URLs for a run's files: they work without a session or a
token, like a pre-signed S3 URL, until they expire or the run does.

The URL names the run, the part and the expiry time; an HMAC of the three (keyed with
SECRET_KEY) proves we issued it, so changing any of them breaks the signature."""

from __future__ import annotations

import time
from uuid import UUID

from django.conf import settings
from django.core.signing import Signer
from django.utils.crypto import constant_time_compare

from orgs.scope import site_reverse

_signer = Signer(salt="exports.api.file-url", algorithm="sha256")


def _value(run_id: UUID, part: int, expires: int) -> str:
    return f"{run_id}:{part}:{expires}"


def signed_file_url(run_id: UUID, part: int, *, now: float | None = None) -> str:
    expires = int((now or time.time()) + settings.API_DOWNLOAD_URL_SECONDS)
    signature = _signer.signature(_value(run_id, part, expires))
    path = site_reverse("api-1:api-file", kwargs={"run_id": run_id, "part": part})
    # From EXPORTSITE_SITE_URL, not the request: behind a TLS proxy the request says http://,
    # and a signed URL is a credential that must not travel in the clear.
    return f"{settings.SITE_URL}{path}?expires={expires}&signature={signature}"


def check_signature(run_id: UUID, part: int, expires: int, signature: str) -> str | None:
    """None when the URL is good, else why not: 'INVALID_SIGNATURE' or 'URL_EXPIRED'."""
    expected = _signer.signature(_value(run_id, part, expires))
    if not constant_time_compare(expected, signature):
        return "INVALID_SIGNATURE"
    if expires < time.time():
        return "URL_EXPIRED"
    return None
