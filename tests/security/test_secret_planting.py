"""Secret planting: every connector kind and a source database URL hold known secrets,
every kind of failure is triggered (bad credentials, unreachable, not allowed, missing
bucket or folder, unconfirmed host key, a vanished table, a missing database), and the
pages, API answers, run reports, connection tests, e-mails and logs are searched for
the secrets: none is found, in any form it could take."""

from __future__ import annotations

import json
import logging
import uuid
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

import psycopg
import pytest
from django.urls import reverse

from connectors.models import ConnectionTest, Connector, login_for
from exports.actions import queue_run
from exports.models import Database, Export, Run, refresh_datasets
from exportsite.redaction import variants
from tests.conftest import PASSWORD
from tests.security.test_outbound import service_account_key

# Destinations are managed by admins: in these tests of destinations, the owner (and teammate) are.
pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("destination_admins")]

S3_WRONG = "Wr0ng-S3-secret-planted-4b1e"
AZURE_WRONG = "V3JvbmdBenVyZUtleVBsYW50ZWQ="
SFTP_WRONG = "Wr0ng-sftp-planted-77ac"
PG_SECRET = "Pg-s3cret/planted:9f@x"


def with_password(url: str, password: str, *, port: int | None = None, database: str | None = None) -> str:
    parts = urlsplit(url)
    host = f"{parts.hostname}:{port or parts.port or 5432}"
    path = f"/{database}" if database else parts.path
    return urlunsplit((parts.scheme, f"{parts.username}:{quote(password, safe='')}@{host}", path, parts.query, ""))


def test_no_planted_secret_reaches_a_page_an_answer_a_report_a_mail_or_a_log(
    client, users, settings, monkeypatch, tmp_path, caplog, api_as, worker, s3, gcs, azure, external_sftp,
    pg_source_url, pg_table,
):  # fmt: skip
    if urlsplit(pg_source_url).password:
        pytest.skip("the PostgreSQL source already has a password: this test plants its own")
    caplog.set_level(logging.DEBUG)
    mail_dir = tmp_path / "mail"
    monkeypatch.setenv("EMAIL_FILE_PATH", str(mail_dir))
    settings.EMAIL_FILE_PATH = str(mail_dir)
    settings.CONNECTION_TESTS_PER_MINUTE = 1000
    owner = users["owner"]

    # Connectors: one that works and some that fail, for every kind.
    gcs_key = service_account_key("http://127.0.0.1:9/token")
    good_azure = azure.connection_string
    azure_key = good_azure.split("AccountKey=")[1].split(";")[0]
    connectors = {
        "s3 ok": s3.connector(owner),
        "s3 bad key": s3.connector(owner),
        "s3 no bucket": s3.connector(owner, bucket=f"no-such-bucket-{uuid.uuid4().hex[:8]}"),
        "s3 not allowed": s3.connector(owner, endpoint_url="http://169.254.169.254"),
        "gcs key unreachable": gcs.connector(owner),
        "azure ok": azure.connector(owner),
        "azure bad key": azure.connector(owner, connection_string=good_azure.replace(azure_key, AZURE_WRONG)),
        "azure no container": azure.connector(owner, container="no-such-container"),
        "sftp ok": external_sftp.connector(owner),
        "sftp bad password": external_sftp.connector(owner),
        "sftp unpinned": external_sftp.connector(owner, pin=False),
        "sftp no folder": external_sftp.connector(owner, base_path="/nowhere"),
        "sftp refused": external_sftp.connector(owner, port=9),
    }
    connectors["s3 bad key"].set_secrets({"secret_access_key": S3_WRONG})
    connectors["s3 not allowed"].set_secrets({"secret_access_key": S3_WRONG})
    connectors["gcs key unreachable"].set_secrets({"service_account_json": gcs_key})
    connectors["sftp bad password"].set_secrets({"password": SFTP_WRONG})
    for name, connector in connectors.items():
        connector.name = name
        connector.save()
    hosted = Connector(name="hosted", kind=Connector.Kind.HOSTED_SFTP, owner=owner, base_path="exports")
    hosted.options = {"login": login_for(owner)}
    hosted.new_key_pair()
    hosted.save()
    connectors["hosted"] = hosted

    # Sources: one that works (its table then dropped), one refused, one missing database.
    with psycopg.connect(pg_source_url, autocommit=True) as conn:
        conn.execute(f'CREATE TABLE "{pg_table}" (id int PRIMARY KEY, email text)')
        conn.execute(f"INSERT INTO \"{pg_table}\" SELECT i, 'u' || i || '@example.com' FROM generate_series(1, 50) i")
    good = Database.objects.create(name="PG", url=with_password(pg_source_url, PG_SECRET))
    refresh_datasets(good)
    table = good.datasets.get(name=pg_table)
    sources = {
        "refused": Database.objects.create(name="PG refused", url=with_password(pg_source_url, PG_SECRET, port=9)),
        "no database": Database.objects.create(
            name="PG missing", url=with_password(pg_source_url, PG_SECRET, database=f"nope_{uuid.uuid4().hex[:6]}")
        ),
    }
    # A URL libpq can't parse, which it quotes whole in its error.
    malformed = with_password(pg_source_url, PG_SECRET).replace("@", "@[", 1)
    sources["malformed"] = Database.objects.create(name="PG malformed", url=malformed)
    for source in sources.values():
        source.datasets.create(
            name=pg_table, schema_name=table.schema_name, columns=table.columns, primary_key=table.primary_key
        )

    secrets = {
        "s3": s3.secret_access_key,
        "s3 wrong": S3_WRONG,
        "gcs key": json.loads(gcs_key)["private_key"].splitlines()[5],
        "azure": azure_key,
        "azure wrong": AZURE_WRONG,
        "sftp": external_sftp_password(connectors["sftp ok"]),
        "sftp wrong": SFTP_WRONG,
        "hosted key": hosted.secret("private_key").splitlines()[2],
        "pg": PG_SECRET,
    }

    # Every connection test, through the page, with and without htmx.
    client.login(username=owner.username, password=PASSWORD)
    pages = []
    for connector in connectors.values():
        for headers in ({"HTTP_HX_REQUEST": "true"}, {}):
            pages.append(client.post(reverse("connectors-test", args=[connector.id]), **headers))
    logs = [worker().stderr]
    for test in ConnectionTest.objects.all():
        pages += [client.get(test.get_absolute_url()), client.get(test.get_absolute_url(), HTTP_HX_REQUEST="true")]
    outcomes = {test.connector.name: test for test in ConnectionTest.objects.select_related("connector")}
    assert all(outcomes[name].ok for name in ("s3 ok", "azure ok", "sftp ok", "hosted"))
    problems = {name: test.steps[-1]["problem"] for name, test in outcomes.items() if not test.ok}
    assert problems == {
        "s3 bad key": "Bad credentials",
        "s3 no bucket": "Missing bucket, container or folder",
        "s3 not allowed": "Address not allowed",
        "gcs key unreachable": "Unreachable host",
        "azure bad key": "Bad credentials",
        "azure no container": "Missing bucket, container or folder",
        "sftp bad password": "Bad credentials",
        "sftp unpinned": "Host key mismatch",
        "sftp no folder": "Missing bucket, container or folder",
        "sftp refused": "Unreachable host",
    }

    # A run to every connector from the good source, and from each broken source; the
    # good table vanishes before the last run, and every failure is e-mailed.
    exports = [
        Export.objects.create(
            owner=owner, dataset=table, connector=connector, name=f"to {name}", report_recipients="ops@example.com"
        )
        for name, connector in connectors.items()
    ]
    exports += [
        Export.objects.create(
            owner=owner, dataset=source.datasets.get(), name=f"from {name}", report_recipients="ops@example.com"
        )
        for name, source in sources.items()
    ]
    runs = [queue_run(export, user=owner) for export in exports]
    logs.append(worker().stderr)
    with psycopg.connect(pg_source_url, autocommit=True) as conn:
        conn.execute(f'DROP TABLE "{pg_table}"')
    vanished = Export.objects.create(owner=owner, dataset=table, name="vanished", report_recipients="ops@example.com")
    runs.append(queue_run(vanished, user=owner))
    logs.append(worker().stderr)
    codes = {run.export.name: Run.objects.get(id=run.id).error_code for run in runs}
    assert codes["to s3 ok"] == codes["to azure ok"] == codes["to sftp ok"] == codes["to hosted"] == ""
    assert codes["to s3 bad key"] == Run.ErrorCode.DESTINATION_AUTH_FAILED
    assert codes["to s3 not allowed"] == Run.ErrorCode.DESTINATION_NOT_ALLOWED
    assert all(codes[name] for name in ("from refused", "from no database", "from malformed", "vanished"))

    api = api_as(owner)
    answers = [api.get("runs", page_size=200), api.get("connectors"), api.get("exports", page_size=200)]
    for run in runs:
        answers += [api.get(f"runs/{run.id}"), api.get(f"exports/{run.export_id}")]
        pages += [client.get(run.get_absolute_url()), client.get(reverse("exports-detail", args=[run.export_id]))]
    for tab in ("finished", "scheduled", "drafts"):
        pages.append(client.get(reverse("exports-list") + f"?tab={tab}"))
    pages += [client.get(reverse("connectors-list")), client.get(reverse("sources-list"))]
    for connector in connectors.values():
        pages += [client.get(connector.get_absolute_url()), client.get(reverse("connectors-edit", args=[connector.id]))]
    mails = [path.read_text() for path in Path(mail_dir).glob("*")]
    assert len(mails) >= 10, "every failed run is e-mailed"

    texts = {
        "page": [page.content.decode() for page in pages],
        "api": [answer.content.decode() for answer in answers],
        "run": [f"{run.error_message} {run.warning}" for run in Run.objects.all()],
        "test": [json.dumps(test.steps) for test in ConnectionTest.objects.all()],
        "connector": [connector.last_test_message for connector in Connector.objects.all()],
        "mail": mails,
        "log": [*logs, caplog.text],
    }
    assert all(page.status_code in {200, 302} for page in pages)
    for label, secret in secrets.items():
        forms = variants(secret)
        for where, found in texts.items():
            for text in found:
                leaked = [form for form in forms if form in text]
                assert not leaked, f"the {label} secret is in a {where}: {leaked[0]!r}"


def external_sftp_password(connector: Connector) -> str:
    return connector.secret("password")
