"""Secrets come back from SDKs and drivers in other forms than the one stored: each form
is removed before a message is stored in a run, shown or e-mailed."""

from __future__ import annotations

import io
import json
import logging
from urllib.parse import quote

import pytest

from connectors.models import Connector
from exports.models import Database, refresh_datasets
from exportsite.redaction import MASK, RedactingFilter, redact, scope, url_secrets

SAS = "?sv=2022-11-02&ss=b&srt=co&sp=rwdlac&se=2027-01-01T00:00:00Z&sig=AbCdEf%2BGhIjKlMnOp%3D"


@pytest.mark.parametrize(
    "echo",
    [
        SAS,
        SAS.lstrip("?"),  # the SDK drops the ?
        "AbCdEf%2BGhIjKlMnOp%3D",  # only the signature
        "AbCdEf+GhIjKlMnOp=",  # the signature, decoded
    ],
)
def test_an_azure_sas_is_removed_in_every_form(echo):
    text = redact(f"request to https://a.blob.core.windows.net/c?{echo} failed", [SAS])
    assert "AbCdEf" not in text
    assert MASK in text


def test_a_connection_strings_account_key_is_removed_but_not_its_endpoint():
    connection = (
        "DefaultEndpointsProtocol=https;AccountName=lake;AccountKey=c2VjcmV0LWtleS1ieXRlcw==;"
        "EndpointSuffix=core.windows.net"
    )
    text = redact("auth failed with key c2VjcmV0LWtleS1ieXRlcw== for lake.blob.core.windows.net", [connection])
    assert "c2VjcmV0LWtleS1ieXRlcw" not in text
    assert "lake.blob.core.windows.net" in text


def test_a_service_account_keys_private_key_lines_are_removed():
    pem = (
        "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n"
        "BKcwggSjAgEAAoIBAQC7VJTUt9Us8cKj\n-----END PRIVATE KEY-----\n"
    )
    key = json.dumps({"type": "service_account", "private_key": pem, "private_key_id": "0123456789abcdef"})
    text = redact("could not parse BKcwggSjAgEAAoIBAQC7VJTUt9Us8cKj (key 0123456789abcdef)", [key])
    assert "BKcwggSj" not in text
    assert "0123456789abcdef" not in text


def test_a_source_urls_password_is_removed_raw_and_encoded():
    password = "p@ss:w0rd/sécret"
    url = f"postgresql://exporter:{quote(password, safe='')}@db.internal:5432/crm?sslpassword=hunter22x"
    secrets = url_secrets(url)
    text = redact(f"connection to {url} failed: password {password} refused; sslpassword hunter22x", secrets)
    assert quote(password, safe="") not in text
    assert password not in text
    assert "hunter22x" not in text
    assert "db.internal:5432" in text


@pytest.mark.django_db
def test_a_connector_redacts_its_secrets_in_every_form(users):
    connector = Connector(name="Blob", kind=Connector.Kind.AZURE_BLOB, owner=users["owner"], options={"container": "c"})
    connector.set_secrets({"sas_token": SAS})
    assert "AbCdEf" not in connector.redact(f"GET /c?{SAS.lstrip('?')} -> 403")


@pytest.mark.django_db
def test_a_failed_refresh_never_stores_or_raises_the_sources_password(monkeypatch):
    from exports import sources  # noqa: PLC0415 - the module whose driver error is staged

    url = "postgresql://exporter:Planted-Secret-9931@127.0.0.1:1/crm"

    def echoing(url_given):
        raise sources.SourceUnavailable(f"cannot connect to {url_given}: refused")

    monkeypatch.setattr(sources, "discover", echoing)
    database = Database.objects.create(name="CRM", url=url)
    with pytest.raises(sources.SourceUnavailable) as raised:
        refresh_datasets(database)
    assert "Planted-Secret-9931" not in str(raised.value)
    database.refresh_from_db()
    assert "Planted-Secret-9931" not in database.refresh_error
    assert "127.0.0.1:1" in database.refresh_error


def test_a_log_record_and_its_traceback_lose_the_secrets_in_scope():
    """What a library logs, tracebacks included, passes the handler's filter redacted."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RedactingFilter())
    logger = logging.getLogger("tests.redaction")
    logger.addHandler(handler)
    logger.propagate = False
    secret = "Pl4nted-log-secret"
    try:
        with scope([secret]):
            try:
                raise RuntimeError(f"could not sign in with {quote(secret)}")
            except RuntimeError:
                logger.exception("upload for %s failed", secret)
        logger.warning("outside any scope: %s", "plain-text")
    finally:
        logger.removeHandler(handler)
    text = stream.getvalue()
    assert secret not in text
    assert "upload for [secret] failed" in text
    assert "RuntimeError: could not sign in with [secret]" in text
    assert "outside any scope: plain-text" in text
