"""The hosted SFTP server: every user with a hosted SFTP connector logs in with a key
the platform generated, and sees only their own zone (a chroot under SFTP_ROOT).

Keys are read from the database at each login, so a rotated key stops working at once.
Only public-key authentication is offered.
"""

from __future__ import annotations

import asyncio
import logging
import signal

import asyncssh
from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import close_old_connections

from connectors.models import Connector, SftpLogin, zone_path
from connectors.sshkeys import load_or_create_host_key

logger = logging.getLogger(__name__)


def authorized_keys_for(login: str) -> list[str]:
    """The keys of the login's owner's hosted connectors: nobody else's, whatever their
    connector says."""
    close_old_connections()
    owner = SftpLogin.objects.filter(login=login, owner__isnull=False).values_list("owner", flat=True).first()
    if owner is None:
        return []
    connectors = Connector.objects.filter(kind=Connector.Kind.HOSTED_SFTP, options__login=login, owner=owner)
    return [connector.public_key for connector in connectors if connector.public_key]


class _Server(asyncssh.SSHServer):
    def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
        self._conn = conn
        self._peer = conn.get_extra_info("peername")

    def password_auth_supported(self) -> bool:
        return False

    def kbdint_auth_supported(self) -> bool:
        return False

    async def begin_auth(self, username: str) -> bool:
        try:
            zone_path(username)
        except ValueError:
            keys = []
        else:
            keys = await sync_to_async(authorized_keys_for, thread_sensitive=False)(username)
        # An unknown user gets an empty key list: the same refusal as a wrong key.
        self._conn.set_authorized_keys(asyncssh.import_authorized_keys("\n".join(keys)) if keys else None)
        if not keys:
            logger.info("sftpd: no key on file for %r from %s", username, self._peer)
        return True

    def auth_completed(self) -> None:
        logger.info("sftpd: %s logged in from %s", self._conn.get_extra_info("username"), self._peer)


class _ZoneServer(asyncssh.SFTPServer):
    """SFTP inside one zone. Links are refused outright: asyncssh keeps their targets in
    the chroot, and a delivery folder has no use for them anyway."""

    def symlink(self, oldpath: bytes, newpath: bytes) -> None:
        raise asyncssh.SFTPPermissionDenied("links are not allowed here")

    def link(self, oldpath: bytes, newpath: bytes) -> None:
        raise asyncssh.SFTPPermissionDenied("links are not allowed here")


def _sftp_factory(chan: asyncssh.SSHServerChannel) -> asyncssh.SFTPServer:
    login = chan.get_extra_info("username")
    zone = zone_path(login)
    zone.mkdir(parents=True, exist_ok=True)
    return _ZoneServer(chan, chroot=str(zone).encode())


async def serve(host: str, port: int, *, ready=None) -> None:
    settings.SFTP_ROOT.mkdir(parents=True, exist_ok=True)
    server = await asyncssh.create_server(
        _Server,
        host,
        port,
        server_host_keys=[load_or_create_host_key()],
        sftp_factory=_sftp_factory,
        allow_scp=False,
        agent_forwarding=False,
        x11_forwarding=False,
        line_editor=False,
    )
    logger.info("sftpd listening on %s:%s, zones in %s", host, port, settings.SFTP_ROOT)
    if ready is not None:
        ready()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
    server.close()
    await server.wait_closed()
    logger.info("sftpd stopped")
