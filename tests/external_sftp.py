"""A stand-in for a customer's own SFTP server in the tests: asyncssh, password or
public-key login for one user, everything chrooted to one folder. Its host key is a file the test controls,
so a test can change it and see the pinned connector refuse the server."""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets

import asyncssh


class _Server(asyncssh.SSHServer):
    def __init__(self, user: str, password: str):
        self.user = user
        self.password = password

    def begin_auth(self, username: str) -> bool:
        return True

    def password_auth_supported(self) -> bool:
        return True

    def validate_password(self, username: str, password: str) -> bool:
        return secrets.compare_digest(username, self.user) and secrets.compare_digest(password, self.password)


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--root", required=True)
    parser.add_argument("--host-key", required=True)
    parser.add_argument("--user", required=True)
    args = parser.parse_args()
    password = os.environ["EXTERNAL_SFTP_PASSWORD"]
    authorized = os.environ.get("EXTERNAL_SFTP_AUTHORIZED_KEYS", "")
    os.makedirs(args.root, exist_ok=True)
    await asyncssh.create_server(
        lambda: _Server(args.user, password),
        "127.0.0.1",
        args.port,
        server_host_keys=[args.host_key],
        authorized_client_keys=asyncssh.import_authorized_keys(authorized) if authorized else None,
        sftp_factory=lambda chan: asyncssh.SFTPServer(chan, chroot=args.root.encode()),
    )
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main())
