"""Strict readers for environment variables.

Every setting comes from the environment with a default that makes the embedded setup
work. A value that can't be parsed stops the process with a message naming the variable,
rather than running with a silent fallback.
"""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def env_str(name: str, default: str = "") -> str:
    return os.environ.get(name, default)


def env_bool(name: str, default: bool = False) -> bool:
    raw = os.environ.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name} must be a boolean (true/false, 1/0, yes/no), got {raw!r}")


def env_int(name: str, default: int, *, minimum: int | None = None) -> int:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw.strip())
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be an integer, got {raw!r}") from None
    if minimum is not None and value < minimum:
        raise ImproperlyConfigured(f"{name} must be at least {minimum}, got {value}")
    return value


def env_list(name: str, default: list[str]) -> list[str]:
    raw = os.environ.get(name)
    if raw is None:
        return default
    return [item.strip() for item in raw.split(",") if item.strip()]


def env_json_object(name: str) -> dict:
    """A JSON object (the options of a storage backend, say); {} when unset."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return {}
    try:
        value = json.loads(raw)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name} must be a JSON object: {exc}") from None
    if not isinstance(value, dict):
        raise ImproperlyConfigured(f"{name} must be a JSON object, got {type(value).__name__}")
    return value


def create_owner_only(path: Path, content) -> bool:
    """Create `path` readable by its owner only, with `content()` (str or bytes); False
    when it exists already (another process may have made it first)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return False
    data = content()
    with os.fdopen(fd, "wb") as fh:
        fh.write(data.encode() if isinstance(data, str) else data)
    return True


def env_secret(name: str, *, fallback_file: Path | None = None, generate=None, optional: bool = False) -> str:
    """Read a secret from NAME, or from the file named by NAME_FILE.

    When neither is set and `fallback_file` is given, the secret is read from that file,
    which is created first (owner-only) with `generate()` when missing: the embedded
    setup gets a stable secret without anyone choosing one.
    """
    value = os.environ.get(name)
    if value:
        return value
    path = os.environ.get(f"{name}_FILE")
    if path:
        try:
            return Path(path).read_text().strip()
        except OSError as exc:
            raise ImproperlyConfigured(f"{name}_FILE: cannot read {path}: {exc}") from None
    if fallback_file is None:
        if optional:
            return ""
        raise ImproperlyConfigured(f"{name} (or {name}_FILE) must be set")
    if not fallback_file.exists():
        create_owner_only(fallback_file, generate or (lambda: secrets.token_urlsafe(50)))
    return fallback_file.read_text().strip()
