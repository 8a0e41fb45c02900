"""The operations settings refuse what they can't use, naming the variable."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from exportsite.env import env_json_object

BASE_DIR = Path(__file__).resolve().parent.parent


def test_a_json_object_is_read_and_anything_else_refused(monkeypatch):
    monkeypatch.setenv("SOME_OPTIONS", '{"bucket_name": "b", "location": "downloads"}')
    assert env_json_object("SOME_OPTIONS") == {"bucket_name": "b", "location": "downloads"}
    monkeypatch.setenv("SOME_OPTIONS", "")
    assert env_json_object("SOME_OPTIONS") == {}
    monkeypatch.setenv("SOME_OPTIONS", '["b"]')
    with pytest.raises(ImproperlyConfigured, match="SOME_OPTIONS must be a JSON object, got list"):
        env_json_object("SOME_OPTIONS")
    monkeypatch.setenv("SOME_OPTIONS", "{bucket: b}")
    with pytest.raises(ImproperlyConfigured, match="SOME_OPTIONS must be a JSON object: Expecting property name"):
        env_json_object("SOME_OPTIONS")


def _settings_with(tmp_path, **env) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", "import exportsite.settings as s; print(s.STORAGES['exports'])"],
        cwd=BASE_DIR,
        env={**os.environ, "EXPORTSITE_DATA_DIR": str(tmp_path), **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"EXPORTSITE_DOWNLOADS_STORAGE": "dropbox"}, "EXPORTSITE_DOWNLOADS_STORAGE must be one of local, s3"),
        ({"EXPORTSITE_DOWNLOADS_OPTIONS": "nope"}, "EXPORTSITE_DOWNLOADS_OPTIONS must be a JSON object"),
        ({"LOG_FORMAT": "xml"}, "LOG_FORMAT must be plain or json, got 'xml'"),
        ({"EXPORTSITE_METRICS_NETWORKS": "10.0.0.0/33"}, "EXPORTSITE_METRICS_NETWORKS"),
        ({"EXPORT_WORK_MIN_FREE_BYTES": "-1"}, "EXPORT_WORK_MIN_FREE_BYTES must be at least 0"),
    ],
)
def test_a_bad_operations_setting_stops_the_process_naming_it(tmp_path, env, message):
    result = _settings_with(tmp_path, **env)
    assert result.returncode != 0
    assert message in result.stderr


def test_downloads_go_to_the_named_backend_with_its_options(tmp_path):
    result = _settings_with(
        tmp_path,
        EXPORTSITE_DOWNLOADS_STORAGE="s3",
        EXPORTSITE_DOWNLOADS_OPTIONS='{"bucket_name": "acme", "location": "downloads"}',
    )
    assert result.returncode == 0, result.stderr
    assert "'BACKEND': 'storages.backends.s3.S3Storage'" in result.stdout
    assert "'bucket_name': 'acme'" in result.stdout
    local = _settings_with(tmp_path)
    assert f"'location': '{tmp_path / 'downloads'}'" in local.stdout
