"""SSH keys: the pairs we generate for hosted SFTP users, our server's host key, and
fingerprints in the form OpenSSH prints them (`SHA256:<base64 without padding>`)."""

from __future__ import annotations

import base64
import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

import asyncssh
from django.conf import settings

from exportsite.env import create_owner_only

FINGERPRINT = re.compile(r"^SHA256:[A-Za-z0-9+/]{43}$")


@dataclass(frozen=True)
class KeyPair:
    private_openssh: str  # unencrypted OpenSSH private key, what `sftp -i` reads
    public_openssh: str  # "ssh-ed25519 AAAA... comment"
    fingerprint: str


def generate_key_pair(comment: str) -> KeyPair:
    key = asyncssh.generate_private_key("ssh-ed25519", comment=comment)
    return KeyPair(
        private_openssh=key.export_private_key("openssh").decode(),
        public_openssh=key.export_public_key("openssh").decode().strip(),
        fingerprint=key.get_fingerprint("sha256"),
    )


def fingerprint_of_blob(key_blob: bytes) -> str:
    """The SHA256 fingerprint of a public key in SSH wire format (paramiko's `asbytes()`)."""
    digest = base64.b64encode(hashlib.sha256(key_blob).digest()).decode().rstrip("=")
    return f"SHA256:{digest}"


def fingerprint_of_public_key(public_openssh: str) -> str:
    return asyncssh.import_public_key(public_openssh).get_fingerprint("sha256")


def normalize_fingerprint(text: str) -> str:
    """Accept what `ssh-keygen -lf` prints (`256 SHA256:... host (ED25519)`) or the bare form."""
    for word in text.split():
        if word.startswith("SHA256:"):
            return word.rstrip("=")
    return text.strip()


def host_key_path() -> Path:
    return Path(settings.SFTPD_HOST_KEY_FILE)


def load_or_create_host_key() -> asyncssh.SSHKey:
    """Our SFTP server's host key, created (owner-only) on first use and kept in the data folder."""
    path = host_key_path()
    if not path.exists():
        create_owner_only(
            path,
            lambda: asyncssh.generate_private_key("ssh-ed25519", comment="exportsite sftpd").export_private_key(),
        )
    return asyncssh.read_private_key(str(path))


def host_key_fingerprint() -> str:
    return load_or_create_host_key().get_fingerprint("sha256")
