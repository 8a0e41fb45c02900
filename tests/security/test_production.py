"""Production defaults: `check --deploy` is clean with the environment the README
documents, logins lock after repeated failures, the data folder and files are the
owner's alone, the queue dashboard is for superusers, pages carry a Content Security
Policy with no inline script, and signed URLs are built from the site's address."""

from __future__ import annotations

import os
import re
import stat
import subprocess
import sys

import pytest
from django.core.files.storage import storages
from django.urls import reverse

from exports.actions import queue_run
from exports.models import Export, Run
from tests.conftest import BASE_DIR, PASSWORD

PRODUCTION = {
    "DEBUG": "false",
    "SECRET_KEY": "k7#-0Zq3m!vP9s@Lr2&yT6uW1xE8cB4nD5fG0hJ3kM7pQ2sV9wY6zA1bC4dE7gH0",
    "ALLOWED_HOSTS": "exports.example.com",
    "CSRF_TRUSTED_ORIGINS": "https://exports.example.com",
    "EXPORTSITE_SITE_URL": "https://exports.example.com",
    "EXPORTSITE_HTTPS": "true",
    "EXPORTSITE_TRUSTED_PROXIES": "1",
}


def test_check_deploy_is_clean_with_the_documented_production_environment(tmp_path):
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("EXPORTSITE_", "DJANGO_", "LOGIN_")) and key not in {"DEBUG", "SECURE_COOKIES"}
    }
    env |= PRODUCTION | {"EXPORTSITE_DATA_DIR": str(tmp_path / "data"), "DJANGO_SETTINGS_MODULE": "exportsite.settings"}
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout
    assert stat.S_IMODE((tmp_path / "data").stat().st_mode) == 0o700


@pytest.mark.django_db
def test_logins_lock_after_repeated_failures(client, users, settings):
    settings.AXES_ENABLED = True
    settings.AXES_FAILURE_LIMIT = 3
    login = reverse("login")
    for _ in range(3):
        response = client.post(login, {"username": "alice", "password": "wrong password"})
    assert response.status_code == 429
    # The right password is refused too while the lock lasts.
    response = client.post(login, {"username": "alice", "password": PASSWORD})
    assert response.status_code == 429
    assert "Too many failed logins" in response.content.decode()
    # Another user from the same address is not locked out.
    response = client.post(login, {"username": "bob", "password": PASSWORD})
    assert response.status_code == 302


@pytest.mark.django_db
def test_behind_a_proxy_logins_lock_the_client_not_the_proxy(client, users, settings):
    settings.AXES_ENABLED = True
    settings.AXES_FAILURE_LIMIT = 3
    settings.TRUSTED_PROXIES = 1
    login = reverse("login")
    proxy = {"REMOTE_ADDR": "10.0.0.2"}
    # An attacker behind the proxy, making up addresses to the left of the proxy's entry.
    for made_up in ("1.1.1.1", "2.2.2.2", "3.3.3.3"):
        attempt = {"username": "alice", "password": "wrong password"}
        response = client.post(login, attempt, HTTP_X_FORWARDED_FOR=f"{made_up}, 198.51.100.66", **proxy)
    assert response.status_code == 429
    # Alice, from her own address through the same proxy, still logs in.
    response = client.post(
        login, {"username": "alice", "password": PASSWORD}, HTTP_X_FORWARDED_FOR="203.0.113.9", **proxy
    )
    assert response.status_code == 302


@pytest.mark.django_db
def test_passwords_are_validated(users):
    from django.contrib.auth.password_validation import validate_password  # noqa: PLC0415 - reads the settings under test
    from django.core.exceptions import ValidationError  # noqa: PLC0415

    with pytest.raises(ValidationError):
        validate_password("password1")
    with pytest.raises(ValidationError):
        validate_password("alice2026", users["owner"])
    validate_password("correct horse battery staple")


@pytest.mark.django_db
@pytest.mark.parametrize(("who", "status"), [("staff", 403), ("admin", 403), ("superuser", 200)])
def test_the_queue_dashboard_is_for_superusers_only(client, users, who, status):
    client.force_login(users[who])
    assert client.get("/django-rq/").status_code == status
    client.logout()
    assert client.get("/django-rq/").status_code == 302  # to the login page


@pytest.mark.django_db
def test_pages_carry_a_content_security_policy_with_no_inline_script(client, users, demo_database):
    client.force_login(users["owner"])
    for url in [reverse("exports-list"), reverse("profile"), reverse("exports-new"), "/api/v1/docs"]:
        response = client.get(url)
        assert response.status_code == 200, url
        policy = response["Content-Security-Policy"]
        script_src = re.search(r"script-src ([^;]*)", policy).group(1)
        assert script_src.split() == ["'self'"], policy
        assert "frame-ancestors 'none'" in policy
        page = response.content.decode()
        inline = [tag for tag in re.findall(r"<script(?![^>]*\bsrc=)[^>]*>", page) if "application/json" not in tag]
        assert inline == [], url
        assert not re.search(r"\son[a-z]+=", page), url


@pytest.mark.django_db(transaction=True)
def test_the_data_folder_and_a_download_are_the_owners_alone(users, demo_database, worker, settings):
    assert stat.S_IMODE(settings.DATA_DIR.stat().st_mode) == 0o700
    export = Export.objects.create(
        name="Modes", owner=users["owner"], dataset=demo_database.datasets.get(name="profiles")
    )
    run = queue_run(export, user=users["owner"])
    worker()
    run.refresh_from_db()
    assert run.status == Run.Status.SUCCEEDED, run.error_message
    path = storages["exports"].path(run.files.get().path)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(os.path.dirname(path)).st_mode) == 0o700


def test_signed_urls_are_built_from_the_site_url(settings):
    from exports.api.signing import signed_file_url  # noqa: PLC0415 - after the settings change

    settings.SITE_URL = "https://exports.example.com"
    url = signed_file_url("5f0c8a52-7a3b-4f7e-9f3e-000000000001", 1, now=0)
    assert url.startswith("https://exports.example.com/api/v1/files/")
