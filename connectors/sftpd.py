"""The hosted SFTP server: every user with a hosted SFTP connector logs in with a key
the platform generated, and sees only their own zone (a chroot under SFTP_ROOT).

Keys are read from the database at each login, so a rotated key stops working at once.
Only public-key authentication is offered. The server holds what the zones may take:
- a client address (an IPv6 /64) with SFTPD_AUTH_FAILURE_LIMIT failed logins within
  SFTPD_AUTH_FAILURE_WINDOW seconds is turned away until the window has passed;
- a login has at most SFTPD_MAX_SESSIONS_PER_LOGIN connections at a time;
- an upload that would take its zone over SFTP_ZONE_QUOTA_BYTES, or the disk below
  SFTP_MIN_FREE_BYTES, fails with the SFTP "quota exceeded" or "no space" error.
"""

from __future__ import annotations

import asyncio
import fcntl
import ipaddress
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
from django.contrib.auth import get_user_model
from django.db import close_old_connections

from connectors.models import Connector, SftpLogin, zone_path
from connectors.sshkeys import load_or_create_host_key
from connectors.storage import bump_zone_generation, zone_generation, zone_usage
from orgs.models import Membership

logger = logging.getLogger(__name__)


def authorized_keys_for(login: str) -> list[str]:
    """The keys of the login's owner's hosted connectors in the login's sandbox: nobody
    else's, and none of another sandbox's, whatever their connector says."""
    close_old_connections()
    found = SftpLogin.objects.filter(login=login, owner__isnull=False).values_list("owner", "sandbox").first()
    if found is None:
        return []
    owner, sandbox = found
    # Only while the owner may still enter the sandbox: leaving the organisation locks
    # their keys out of its zones at once.
    if not (
        Membership.objects.filter(user_id=owner, organisation__sandboxes=sandbox).exists()
        or get_user_model().objects.filter(pk=owner, is_superuser=True).exists()
    ):
        return []
    connectors = Connector.objects.filter(
        kind=Connector.Kind.HOSTED_SFTP, options__login=login, owner=owner, sandbox_id=sandbox
    )
    return [connector.public_key for connector in connectors if connector.public_key]


def _client(address: str) -> str:
    """Whom failures count against: an IPv4 address, or an IPv6 /64 (one machine's share)."""
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(parsed, ipaddress.IPv6Address):
        if parsed.ipv4_mapped is not None:
            return str(parsed.ipv4_mapped)
        return str(ipaddress.ip_network(f"{parsed}/64", strict=False))
    return str(parsed)


class _Failures:
    """Failed logins per client, in a sliding window of SFTPD_AUTH_FAILURE_WINDOW seconds.
    A failed login is a connection that ended without logging in, or one that offered
    MAX_KEYS_PER_CONNECTION wrong keys (the client's agent may offer a few before the
    right one)."""

    def __init__(self):
        self.times: defaultdict[str, deque[float]] = defaultdict(deque)

    def _recent(self, client: str) -> deque[float]:
        times = self.times.get(client, deque())
        horizon = time.monotonic() - settings.SFTPD_AUTH_FAILURE_WINDOW
        while times and times[0] < horizon:
            times.popleft()
        if not times:
            self.times.pop(client, None)
        return times

    def locked(self, client: str) -> bool:
        return len(self._recent(client)) >= settings.SFTPD_AUTH_FAILURE_LIMIT

    def add(self, client: str) -> None:
        if len(self.times) > 10_000:  # clients that never came back
            for stale in list(self.times):
                self._recent(stale)
        self._recent(client)
        self.times[client].append(time.monotonic())


MAX_KEYS_PER_CONNECTION = 6


class _ZoneCounts:
    """The bytes in each zone, shared by all its sessions."""

    def __init__(self):
        self.counts: dict[str, tuple[int, float, str]] = {}  # login: (bytes, counted at, generation)

    def forget(self, login: str) -> None:
        self.counts.pop(login, None)

    def grew(self, login: str, delta: int) -> None:
        if login in self.counts:
            used, counted_at, generation = self.counts[login]
            self.counts[login] = (used + delta, counted_at, generation)

    async def used(self, login: str, zone: Path) -> int:
        generation = zone_generation(login)
        cached = self.counts.get(login)
        if cached and cached[2] == generation and time.monotonic() - cached[1] < ZONE_RECOUNT_SECONDS:
            return cached[0]
        used = await asyncio.to_thread(zone_usage, zone)
        self.counts[login] = (used, time.monotonic(), generation)
        return used


ZONE_RECOUNT_SECONDS = 30

# The sftpd process's state: one event loop serves every connection.
_failures = _Failures()
_sessions: Counter[str] = Counter()
_zones = _ZoneCounts()


def _turned_away() -> asyncssh.DisconnectError:
    return asyncssh.DisconnectError(
        asyncssh.DISC_NO_MORE_AUTH_METHODS_AVAILABLE, "too many failed logins from this address: try again later"
    )


class _Server(asyncssh.SSHServer):
    def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
        self._conn = conn
        self._peer = conn.get_extra_info("peername")
        self._client = _client(self._peer[0]) if self._peer else ""
        self._login = ""
        self._tried = False  # began to log in
        self._logged_in = False
        self._wrong_keys = 0

    def connection_lost(self, exc: Exception | None) -> None:
        if self._tried and not self._logged_in:
            _failures.add(self._client)
            logger.info("sftpd: a failed login from %s", self._peer)
        if self._login:
            _sessions[self._login] -= 1
            if _sessions[self._login] <= 0:
                del _sessions[self._login]

    def password_auth_supported(self) -> bool:
        return False

    def kbdint_auth_supported(self) -> bool:
        return False

    async def begin_auth(self, username: str) -> bool:
        if _failures.locked(self._client):
            logger.warning("sftpd: %s is turned away after too many failed logins", self._client)
            raise _turned_away()
        self._tried = True
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
        self._wrong_keys += 1
        if self._wrong_keys >= MAX_KEYS_PER_CONNECTION:
            logger.info("sftpd: %s wrong keys for %r from %s", self._wrong_keys, username, self._peer)
            raise asyncssh.DisconnectError(asyncssh.DISC_NO_MORE_AUTH_METHODS_AVAILABLE, "too many wrong keys")
        return False

    def auth_completed(self) -> None:
        self._logged_in = True
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
    has no use for them anyway.

    Every write is checked before it is made: an append adds its length, a write past the
    end what it adds. The zone's bytes are counted again (off the event loop) when the
    count is older than ZONE_RECOUNT_SECONDS, when a delivery wrote since, and after a
    file was truncated or removed; all sessions of a zone share the count."""

    def __init__(self, chan: asyncssh.SSHServerChannel, login: str):
        self.login = login
        self.zone = zone_path(login)
        self.zone.mkdir(parents=True, exist_ok=True)
        super().__init__(chan, chroot=str(self.zone).encode())
        self.written: set[int] = set()  # ids of the files this session wrote to

    def symlink(self, oldpath: bytes, newpath: bytes) -> None:
        raise asyncssh.SFTPPermissionDenied("links are not allowed here")

    def link(self, oldpath: bytes, newpath: bytes) -> None:
        raise asyncssh.SFTPPermissionDenied("links are not allowed here")

    def open(self, path: bytes, pflags: int, attrs: asyncssh.SFTPAttrs) -> object:
        file_obj = super().open(path, pflags, attrs)
        if pflags & (asyncssh.FXF_TRUNC | asyncssh.FXF_CREAT):
            _zones.forget(self.login)
        return file_obj

    def open56(self, path: bytes, desired_access: int, flags: int, attrs: asyncssh.SFTPAttrs) -> object:
        file_obj = super().open56(path, desired_access, flags, attrs)
        _zones.forget(self.login)
        return file_obj

    def remove(self, path: bytes) -> None:
        super().remove(path)
        _zones.forget(self.login)

    async def write(self, file_obj: object, offset: int, data: bytes) -> int:
        fd = file_obj.fileno()  # type: ignore[attr-defined]
        used = await _zones.used(self.login, self.zone)
        before = os.fstat(fd).st_size
        appending = bool(fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_APPEND)
        growth = len(data) if appending else max(0, offset + len(data) - before)
        if growth:
            quota = settings.SFTP_ZONE_QUOTA_BYTES
            if quota and used + growth > quota:
                raise asyncssh.SFTPQuotaExceeded(f"this zone is full: {used:,} of its {quota:,} bytes are used")
            if shutil.disk_usage(self.zone).free - growth < settings.SFTP_MIN_FREE_BYTES:
                raise asyncssh.SFTPNoSpaceOnFilesystem("the server's disk is almost full")
        written = super().write(file_obj, offset, data)
        _zones.grew(self.login, os.fstat(fd).st_size - before)
        self.written.add(id(file_obj))
        return written  # type: ignore[return-value]

    def _refuse_growth(self, current: int, attrs: asyncssh.SFTPAttrs) -> None:
        if attrs.size is not None and attrs.size > current:
            raise asyncssh.SFTPPermissionDenied("files grow by writing to them here, not by setting their size")

    def setstat(self, path: bytes, attrs: asyncssh.SFTPAttrs) -> None:
        self._refuse_growth(os.stat(self.map_path(path)).st_size, attrs)
        super().setstat(path, attrs)
        _zones.forget(self.login)

    def lsetstat(self, path: bytes, attrs: asyncssh.SFTPAttrs) -> None:
        self._refuse_growth(os.lstat(self.map_path(path)).st_size, attrs)
        super().lsetstat(path, attrs)
        _zones.forget(self.login)

    def fsetstat(self, file_obj: object, attrs: asyncssh.SFTPAttrs) -> None:
        self._refuse_growth(os.fstat(file_obj.fileno()).st_size, attrs)  # type: ignore[attr-defined]
        super().fsetstat(file_obj, attrs)
        _zones.forget(self.login)

    async def close(self, file_obj: object) -> None:
        super().close(file_obj)
        if id(file_obj) in self.written:
            self.written.discard(id(file_obj))
            # Deliveries into this zone count its bytes again.
            await asyncio.to_thread(bump_zone_generation, self.login)


def _sftp_factory(chan: asyncssh.SSHServerChannel) -> asyncssh.SFTPServer:
    return _ZoneServer(chan, chan.get_extra_info("username"))


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
