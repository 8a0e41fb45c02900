"""The hosted SFTP server: every user with a hosted SFTP connector logs in with a key
the platform generated, and sees only their own zone (a chroot under SFTP_ROOT).

Keys are read from the database at each login, so a rotated key stops working at once.
Only public-key authentication is offered. The server holds what the zones may take:
- a client address that offers SFTPD_AUTH_FAILURE_LIMIT wrong keys within
  SFTPD_AUTH_FAILURE_WINDOW seconds is turned away until the window has passed;
- a login has at most SFTPD_MAX_SESSIONS_PER_LOGIN connections at a time;
- an upload that would take its zone over SFTP_ZONE_QUOTA_BYTES, or the disk below
  SFTP_MIN_FREE_BYTES, fails with the SFTP "quota exceeded" or "no space" error.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import signal
import time
from collections import Counter, defaultdict, deque
from pathlib import Path

import asyncssh
from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import close_old_connections

from connectors.models import Connector, SftpLogin, zone_path
from connectors.sshkeys import load_or_create_host_key
from connectors.storage import zone_usage

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


class _Failures:
    """Failed key logins per client address, in a sliding window."""

    def __init__(self):
        self.times: defaultdict[str, deque[float]] = defaultdict(deque)

    def _recent(self, address: str) -> deque[float]:
        times = self.times[address]
        horizon = time.monotonic() - settings.SFTPD_AUTH_FAILURE_WINDOW
        while times and times[0] < horizon:
            times.popleft()
        if not times:
            del self.times[address]
            return deque()
        return times

    def locked(self, address: str) -> bool:
        return len(self._recent(address)) >= settings.SFTPD_AUTH_FAILURE_LIMIT

    def add(self, address: str) -> None:
        self._recent(address)
        self.times[address].append(time.monotonic())


# The sftpd process's state: one event loop serves every connection.
_failures = _Failures()
_sessions: Counter[str] = Counter()


def _turned_away() -> asyncssh.DisconnectError:
    return asyncssh.DisconnectError(
        asyncssh.DISC_NO_MORE_AUTH_METHODS_AVAILABLE, "too many failed logins from this address: try again later"
    )


class _Server(asyncssh.SSHServer):
    def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
        self._conn = conn
        self._peer = conn.get_extra_info("peername")
        self._address = self._peer[0] if self._peer else ""
        self._login = ""

    def connection_lost(self, exc: Exception | None) -> None:
        if self._login:
            _sessions[self._login] -= 1
            if _sessions[self._login] <= 0:
                del _sessions[self._login]

    def password_auth_supported(self) -> bool:
        return False

    def kbdint_auth_supported(self) -> bool:
        return False

    async def begin_auth(self, username: str) -> bool:
        if _failures.locked(self._address):
            logger.warning("sftpd: %s is turned away after too many failed logins", self._address)
            raise _turned_away()
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

    def public_key_auth_supported(self) -> bool:
        return True

    def validate_public_key(self, username: str, key: asyncssh.SSHKey) -> bool:
        # asyncssh asks only about a key that is not among the login's authorized keys.
        _failures.add(self._address)
        logger.info("sftpd: a wrong key for %r from %s", username, self._peer)
        if _failures.locked(self._address):
            raise _turned_away()
        return False

    def auth_completed(self) -> None:
        login = self._conn.get_extra_info("username")
        if _sessions[login] >= settings.SFTPD_MAX_SESSIONS_PER_LOGIN:
            logger.warning("sftpd: %s refused: %s connections already", login, _sessions[login])
            self._conn.disconnect(
                asyncssh.DISC_TOO_MANY_CONNECTIONS,
                f"{login} has {settings.SFTPD_MAX_SESSIONS_PER_LOGIN} connections already: close one first",
            )
            return
        _sessions[login] += 1
        self._login = login
        logger.info("sftpd: %s logged in from %s", login, self._peer)


class _ZoneServer(asyncssh.SFTPServer):
    """SFTP inside one zone, held to the zone's quota and the disk's floor. Links are
    refused outright: asyncssh keeps their targets in the chroot, and a delivery folder
    has no use for them anyway."""

    def __init__(self, chan: asyncssh.SSHServerChannel, zone: Path):
        super().__init__(chan, chroot=str(zone).encode())
        self.zone = zone
        self.used: int | None = None  # the zone's bytes, counted again at each open for writing

    def open(self, path: bytes, pflags: int, attrs: asyncssh.SFTPAttrs) -> object:
        if pflags & (asyncssh.FXF_WRITE | asyncssh.FXF_APPEND):
            self.used = zone_usage(self.zone)
        return super().open(path, pflags, attrs)

    def write(self, file_obj: object, offset: int, data: bytes) -> int:
        size = os.fstat(file_obj.fileno()).st_size  # type: ignore[attr-defined]
        growth = max(0, offset + len(data) - size)
        if growth:
            used = zone_usage(self.zone) if self.used is None else self.used
            quota = settings.SFTP_ZONE_QUOTA_BYTES
            if quota and used + growth > quota:
                raise asyncssh.SFTPQuotaExceeded(f"this zone is full: {used:,} of its {quota:,} bytes are used")
            if shutil.disk_usage(self.zone).free - growth < settings.SFTP_MIN_FREE_BYTES:
                raise asyncssh.SFTPNoSpaceOnFilesystem("the server's disk is almost full")
            self.used = used + growth
        return super().write(file_obj, offset, data)  # type: ignore[return-value]

    def symlink(self, oldpath: bytes, newpath: bytes) -> None:
        raise asyncssh.SFTPPermissionDenied("links are not allowed here")

    def link(self, oldpath: bytes, newpath: bytes) -> None:
        raise asyncssh.SFTPPermissionDenied("links are not allowed here")


def _sftp_factory(chan: asyncssh.SSHServerChannel) -> asyncssh.SFTPServer:
    login = chan.get_extra_info("username")
    zone = zone_path(login)
    zone.mkdir(parents=True, exist_ok=True)
    return _ZoneServer(chan, zone)


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
