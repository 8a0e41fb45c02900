"""The Sources page manages sources: add, edit, test, delete; admins only, files only
from the folder of source files, passwords kept and never shown."""

from __future__ import annotations

import shutil

import pytest
from django.test import override_settings
from django.urls import reverse

from exports.models import Database, Export
from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db


@pytest.fixture
def files_dir(tmp_path, settings, demo_path):
    """The folder of source files, with Default/production's own (and another sandbox's)."""
    root = tmp_path / "source-files"
    folder = root / "default" / "production"
    folder.mkdir(parents=True)
    shutil.copy(demo_path, folder / "crm.sqlite3")
    (root / "acme" / "production").mkdir(parents=True)
    shutil.copy(demo_path, root / "acme" / "production" / "theirs.sqlite3")
    settings.SOURCE_FILES_DIR = root.resolve()
    return folder


def login(client, user):
    assert client.login(username=user.username, password=PASSWORD)
    return client


def server(**fields) -> dict:
    return {"name": "Warehouse", "engine": "postgresql", "host": "127.0.0.1", "port": "5432", "database": "test",
            "user": "postgres", "password": "", "sslmode": "", **fields}  # fmt: skip


def test_an_admin_adds_a_sqlite_file_from_the_folder_of_source_files(client, users, files_dir):
    login(client, users["admin"])
    response = client.post(
        reverse("sources-new"), {"name": "CRM", "engine": "sqlite", "path": "crm.sqlite3", "save": "1"}
    )
    assert response.status_code == 302
    database = Database.objects.get(name="CRM")
    assert database.url == f"sqlite:///{files_dir.resolve() / 'crm.sqlite3'}"
    assert database.datasets.filter(name="profiles").exists()  # read at once
    page = client.get(reverse("sources-list")).content.decode()
    assert "Add source" in page
    assert reverse("sources-edit", args=[database.id]) in page


@pytest.mark.parametrize(
    "path",
    ["../crm.sqlite3", "/etc/passwd", "", "missing.sqlite3", ".", "../../acme/production/theirs.sqlite3", "link"],
)
def test_a_file_outside_the_folder_of_source_files_is_refused(client, users, files_dir, path):
    (files_dir / "link").symlink_to("/etc/hostname")
    login(client, users["admin"])
    response = client.post(reverse("sources-new"), {"name": "X", "engine": "sqlite", "path": path, "save": "1"})
    assert response.status_code == 200
    assert 'id="error-path"' in response.content.decode()
    assert not Database.objects.filter(name="X").exists()


def test_only_admins_manage_sources(client, users, files_dir):
    for who in ("owner", "viewer"):
        login(client, users[who])
        assert client.get(reverse("sources-new")).status_code == 403
        assert (
            client.post(reverse("sources-new"), {"name": "X", "engine": "sqlite", "path": "crm.sqlite3"}).status_code
            == 403
        )
    assert not Database.objects.filter(name="X").exists()


def test_test_connection_says_which_step_failed_and_why(client, users, pg_source_url, pg_table):
    import psycopg  # noqa: PLC0415

    with psycopg.connect(pg_source_url, autocommit=True) as conn:
        conn.execute(f"CREATE TABLE {pg_table} (id int)")
        conn.execute(f"INSERT INTO {pg_table} VALUES (1)")
    login(client, users["admin"])

    def probe(**fields) -> str:
        response = client.post(reverse("sources-new"), {**server(**fields), "test": "1"})
        assert response.status_code == 200
        return response.content.decode()

    page = probe()
    assert "Connected: connected; " in page
    assert "read a row of" in page
    assert "Connect failed: missing database" in probe(database="no_such_database_here")
    assert "Connect failed: unreachable" in probe(port="1")
    with override_settings(EXPORTSITE_ALLOWED_NETWORKS=""):
        assert "the address is not allowed: 127.0.0.1 is loopback" in probe()
    assert not Database.objects.exists()  # testing saves nothing


def test_bad_credentials_are_named_so(client, users, pg_with_passwords):
    login(client, users["admin"])
    fields = server(port=str(pg_with_passwords.port), database="crm", test="1")
    wrong = client.post(reverse("sources-new"), {**fields, "password": "not-it"}).content.decode()
    assert "Connect failed: bad credentials" in wrong
    right = client.post(reverse("sources-new"), {**fields, "password": pg_with_passwords.password}).content.decode()
    assert "Connected:" in right
    assert pg_with_passwords.password not in right  # what was typed is not sent back


def test_an_edit_keeps_the_password_when_left_blank_and_never_shows_it(client, users, demo_database):
    database = Database.objects.create(name="Warehouse", url="postgresql://reader:s%40fe%2Fpw@127.0.0.1:5432/test")
    login(client, users["admin"])
    page = client.get(reverse("sources-edit", args=[database.id])).content.decode()
    assert "s%40fe" not in page
    assert "s@fe/pw" not in page
    assert 'value="reader"' in page
    client.post(reverse("sources-edit", args=[database.id]), {**server(user="reader"), "save": "1"})
    database.refresh_from_db()
    assert database.url == "postgresql://reader:s%40fe%2Fpw@127.0.0.1:5432/test"
    client.post(reverse("sources-edit", args=[database.id]), {**server(user="reader", password="n:ew"), "save": "1"})
    database.refresh_from_db()
    assert database.url == "postgresql://reader:n%3Aew@127.0.0.1:5432/test"
    # The saved password never goes to another server: a new host asks for it again.
    elsewhere = {**server(user="reader", host="127.0.0.2"), "test": "1"}
    page = client.post(reverse("sources-edit", args=[database.id]), elsewhere).content.decode()
    assert "type the password again" in page
    assert 'id="probe-result"' not in page


def test_the_demo_source_outside_the_folder_keeps_its_file_when_edited(client, users, demo_database, files_dir):
    login(client, users["admin"])
    url = reverse("sources-edit", args=[demo_database.id])
    form = client.get(url).context["form"]
    fields = {**form.initial, "name": "Demo CRM (renamed)", "save": "1"}
    assert client.post(url, fields).status_code == 302
    renamed = Database.objects.get(id=demo_database.id)
    assert (renamed.name, renamed.url) == ("Demo CRM (renamed)", demo_database.url)


def test_a_source_used_by_exports_is_not_deleted_and_the_page_lists_them(client, users, demo_database):
    profiles = demo_database.datasets.get(name="profiles")
    Export.objects.create(owner=users["owner"], dataset=profiles, name="Weekly profiles")
    login(client, users["admin"])
    url = reverse("sources-delete", args=[demo_database.id])
    page = client.get(url).content.decode()
    assert "can't be deleted" in page
    assert "Weekly profiles" in page
    response = client.post(url)
    assert response.status_code == 302
    assert Database.objects.filter(id=demo_database.id).exists()
    Export.objects.all().delete()
    assert "Delete the source" in client.get(url).content.decode()
    client.post(url)
    assert not Database.objects.filter(id=demo_database.id).exists()


def test_a_name_already_in_the_sandbox_is_refused(client, users, demo_database, files_dir):
    login(client, users["admin"])
    response = client.post(
        reverse("sources-new"), {"name": demo_database.name, "engine": "sqlite", "path": "crm.sqlite3", "save": "1"}
    )
    assert response.status_code == 200
    assert "a source of that name already" in response.content.decode()
