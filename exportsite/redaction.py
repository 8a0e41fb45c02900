"""Removing secrets from text before it is stored in a run, shown, logged or e-mailed.

A secret rarely comes back in the exact form it was stored in: an SDK quotes an Azure
SAS without its `?`, URL-encodes a password, prints one line of a PEM key, or libpq
repeats the connection URL it was given. `variants` lists the forms a secret can take,
and `redact` removes them all, longest first.

Messages we write are redacted where they are made. For what others write (a library's
log line, a traceback), `scope` names the secrets a piece of work holds, and
`RedactingFilter`, on every log handler, removes them from each record while any scope
is open.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from urllib.parse import parse_qsl, quote, quote_plus, unquote, urlsplit

MASK = "[secret]"
SHORTEST = 4  # shorter fragments would mask ordinary words


def _parts(value: str) -> list[str]:
    """The secret pieces inside a composite secret."""
    pieces = []
    # An Azure connection string's or SAS's secret values (AccountKey=..., sig=...).
    if "=" in value:
        separator = ";" if ";" in value else "&"
        for part in value.lstrip("?").split(separator):
            name, _, inner = part.partition("=")
            if re.fullmatch(r"sig|\w*(key|signature|secret|password|token)\w*", name.strip(), re.I):
                pieces.append(inner)
    # A service-account key: its private key and key id, and each line of the PEM.
    if value.lstrip().startswith("{"):
        try:
            info = json.loads(value)
        except ValueError:
            info = None
        if isinstance(info, dict):
            pieces += [str(info.get(key, "")) for key in ("private_key", "private_key_id")]
    if "-----BEGIN" in value:
        pieces += [line.strip() for line in value.replace("\\n", "\n").splitlines() if "-----" not in line]
    return pieces


def variants(secret: str) -> set[str]:
    """The forms a secret can appear in, as text: itself and its pieces, each as given,
    without a leading ?, URL-decoded and URL-encoded (one level each, never compounded)."""
    pieces = {secret, secret.strip()}
    for _ in range(2):  # pieces of pieces: a PEM inside a JSON key
        pieces |= {piece for value in list(pieces) for piece in _parts(value)}
    forms = set()
    for piece in pieces:
        for base in {piece, piece.lstrip("?"), unquote(piece)}:
            forms |= {base, quote(base, safe=""), quote_plus(base)}
    return {form for form in forms if len(form) >= SHORTEST}


def url_secrets(url: str) -> list[str]:
    """The password of a database URL, and any secret-looking query parameter."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return []
    secrets = [parts.password] if parts.password else []
    secrets += [value for key, value in parse_qsl(parts.query) if re.search(r"pass|secret|key|token", key, re.I)]
    return secrets


def redact(text: str, secrets: Iterable[str]) -> str:
    forms = sorted({form for secret in secrets if secret for form in variants(secret)}, key=len, reverse=True)
    for form in forms:
        text = text.replace(form, MASK)
    return text


# The secrets the work in this process holds now, with how many scopes hold each.
_in_scope: Counter[str] = Counter()
_lock = threading.Lock()


@contextmanager
def scope(secrets: Iterable[str]) -> Iterator[None]:
    """While inside, no log record of this process shows `secrets` (in any form)."""
    held = [secret for secret in secrets if secret]
    with _lock:
        _in_scope.update(held)
    try:
        yield
    finally:
        with _lock:
            _in_scope.subtract(held)
            for secret in held:
                if _in_scope[secret] <= 0:
                    del _in_scope[secret]


def secrets_in_scope() -> list[str]:
    with _lock:
        return list(_in_scope)


class RedactingFilter(logging.Filter):
    """Rewrites a log record without the secrets in scope: its message, arguments and
    traceback are rendered here, redacted, and nothing unredacted is left on it."""

    _formatter = logging.Formatter()

    def filter(self, record: logging.LogRecord) -> bool:
        secrets = secrets_in_scope()
        if not secrets:
            return True
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a library's malformed log call must not raise into it
            message = f"{record.msg} {record.args!r}"
        record.msg = redact(message, secrets)
        record.args = None
        if record.exc_info:
            record.exc_text = self._formatter.formatException(record.exc_info)
            record.exc_info = None
        if record.exc_text:
            record.exc_text = redact(record.exc_text, secrets)
        if record.stack_info:
            record.stack_info = redact(record.stack_info, secrets)
        return True
