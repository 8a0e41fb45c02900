"""The outbound address policy: every connection the product opens to an address a user
typed (a store's endpoint, an SFTP host, a GCS key's token URI; source databases and
webhooks next) goes through here first.

- A host is resolved, and every address it resolves to must be public: loopback,
  private, link-local, multicast, reserved and unspecified addresses are refused.
- EXPORTSITE_ALLOWED_NETWORKS (CIDRs, comma-separated) opens chosen ranges: `make run`
  and the tests open 127.0.0.0/8 for their local servers; production opens nothing by
  default. Link-local ranges (cloud metadata at 169.254.169.254) stay closed whatever
  is set.
- Endpoint URLs are `https://` with no path, unless their network is allowed.
- While a connection is open (`guard`), every name resolution of its hosts in this
  process goes through the same check, and the SDKs connect to the very addresses that
  were checked: a name that resolves to a public address first and to an internal one
  next (DNS rebinding) is refused when it matters.

Messages are fixed per problem ("the address is not allowed: ..."); nothing a remote end
answered is in them.
"""

from __future__ import annotations

import ipaddress
import re
import socket
import threading
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from functools import cache
from urllib.parse import urlsplit

from django.conf import settings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# Always closed: cloud metadata services answer here.
LINK_LOCAL: tuple[IPNetwork, ...] = (ipaddress.ip_network("169.254.0.0/16"), ipaddress.ip_network("fe80::/10"))


class AddressNotAllowed(socket.gaierror):
    """A host resolved to an address the policy refuses. A `socket.gaierror`, so that
    every SDK treats it as a name that can't be resolved: no packet leaves."""

    def __init__(self, message: str):
        super().__init__(socket.EAI_NONAME, message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class HostNotFound(socket.gaierror):
    """A host name that doesn't resolve: unreachable, not refused."""

    def __init__(self, host: str):
        self.message = f"the host name {host} can't be resolved"
        super().__init__(socket.EAI_NONAME, self.message)

    def __str__(self) -> str:
        return self.message


@cache
def _allowed(spec: str) -> tuple[IPNetwork, ...]:
    return tuple(ipaddress.ip_network(part.strip(), strict=False) for part in spec.split(",") if part.strip())


def allowed_networks() -> tuple[IPNetwork, ...]:
    return _allowed(settings.EXPORTSITE_ALLOWED_NETWORKS)


def _address(text: str) -> IPAddress:
    address = ipaddress.ip_address(text.split("%", 1)[0])  # drop an IPv6 zone
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


NAT64 = ipaddress.ip_network("64:ff9b::/96")


def _embedded_ipv4(address: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address a NAT64 (64:ff9b::/96) or 6to4 (2002::/16) address reaches."""
    if not isinstance(address, ipaddress.IPv6Address):
        return None
    if address in NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return address.sixtofour


def refusal(address: IPAddress) -> str | None:
    """Why the policy refuses an address, or None if it may be reached."""
    embedded = _embedded_ipv4(address)
    if any(address in network for network in LINK_LOCAL):
        return "link-local"
    if embedded is not None and any(embedded in network for network in LINK_LOCAL):
        return f"link-local (it carries the IPv4 address {embedded})"
    if any(address.version == network.version and address in network for network in allowed_networks()):
        return None
    if embedded is not None:
        # It reaches that IPv4 address: the policy is that address's.
        inner = refusal(embedded)
        return f"{inner} (it carries the IPv4 address {embedded})" if inner else None
    for reason, refused in (
        ("loopback", address.is_loopback),
        ("private", address.is_private),
        ("multicast", address.is_multicast),
        ("unspecified", address.is_unspecified),
        ("reserved", address.is_reserved or not address.is_global),
    ):
        if refused:
            return reason
    return None


def check_address(text: str, host: str = "") -> None:
    address = _address(text)
    reason = refusal(address)
    if reason is not None:
        shown = f"{host} ({address})" if host and host != str(address) else str(address)
        raise AddressNotAllowed(f"the address is not allowed: {shown} is {reason}")


# What name resolution is when the policy doesn't apply, and what the policy resolves
# with (the tests give it fake answers).
_system_getaddrinfo = socket.getaddrinfo
_real_getaddrinfo = socket.getaddrinfo


def resolve(host: str, port: int | str | None = None) -> list[tuple]:
    """`socket.getaddrinfo` for a host under the policy: every address it gives is checked."""
    host = host.strip("[]")
    try:
        found = _real_getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError:
        raise HostNotFound(host) from None
    for *_, sockaddr in found:
        check_address(str(sockaddr[0]), host)
    return found


_HOST_NAME = re.compile(
    r"^[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?(?:\.[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?)*$"
)


def canonical(host: str) -> str:
    """A host as resolvers and HTTP libraries see it: lower case, no trailing dot, an
    internationalised name in its ASCII (punycode) form; AddressNotAllowed for anything
    that isn't a host name or an IP address (a backslash, a space, an @...)."""
    name = host.strip().strip("[]").rstrip(".")
    try:
        return str(_address(name))
    except ValueError:
        pass
    try:
        name = name.encode("idna").decode("ascii").lower()
    except UnicodeError:
        raise AddressNotAllowed(f"the address is not allowed: {host!r} is not a host name") from None
    if not _HOST_NAME.match(name):
        raise AddressNotAllowed(f"the address is not allowed: {host!r} is not a host name")
    return name


def check_host(host: str, port: int | None = None) -> None:
    """Resolve `host` and refuse it unless every address is allowed."""
    if not host:
        raise AddressNotAllowed("the address is not allowed: no host is set")
    resolve(canonical(host), port)


def in_allowed_network(host: str) -> bool:
    """Whether `host` resolves only into EXPORTSITE_ALLOWED_NETWORKS (local servers,
    emulators): those may be reached over plain http and with a path."""
    networks = allowed_networks()
    if not networks:
        return False
    try:
        found = _real_getaddrinfo(host.strip("[]"), None, type=socket.SOCK_STREAM)
    except OSError:
        return False
    addresses = [_address(str(sockaddr[0])) for *_, sockaddr in found]
    return bool(addresses) and all(
        any(address.version == network.version and address in network for network in networks) for address in addresses
    )


def check_url(url: str, *, what: str = "the endpoint", https_only: bool = True, bare: bool = True) -> str:
    """Refuse a URL the policy doesn't allow; its host when it passes. Outside the allowed
    networks a URL must be https:// (`https_only`) and have no path (`bare`)."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        raise AddressNotAllowed(f"the address is not allowed: {what} is not a valid URL") from None
    if "\\" in url or any(char.isspace() for char in url.strip()):
        raise AddressNotAllowed(f"the address is not allowed: {what} is not a valid URL")
    host = parts.hostname or ""
    if parts.scheme not in {"http", "https"} or not host:
        raise AddressNotAllowed(f"the address is not allowed: {what} must be an https:// URL")
    check_host(host, port)  # the address first: its refusal says the most
    if parts.username or parts.password:
        raise AddressNotAllowed(f"the address is not allowed: {what} must not carry a user name or password")
    if not in_allowed_network(host):
        if https_only and parts.scheme != "https":
            raise AddressNotAllowed(f"the address is not allowed: {what} must be an https:// URL")
        if bare and (parts.path not in {"", "/"} or parts.query or parts.fragment):
            raise AddressNotAllowed(
                f"the address is not allowed: {what} must be a bare address such as https://host:port, with no path"
            )
    return host


def verdict_in(exc: BaseException) -> AddressNotAllowed | HostNotFound | None:
    """The policy's verdict (refused, or not found) somewhere in an SDK's chain of
    exceptions, if it is there: a guarded name resolved while connecting."""
    seen: set[int] = set()
    pending: list[BaseException] = [exc]
    while pending:
        current = pending.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, AddressNotAllowed | HostNotFound):
            return current
        pending += [e for e in (current.__cause__, current.__context__) if e is not None]
        pending += [arg for arg in getattr(current, "args", ()) if isinstance(arg, BaseException)]
        attributes = vars(current).values() if hasattr(current, "__dict__") else ()
        pending += [value for value in attributes if isinstance(value, BaseException)]
    return None


# --- Guarding connections ---------------------------------------------------------------

_guarded: Counter[str] = Counter()


def _guard_key(name: str) -> str:
    try:
        return canonical(name)
    except AddressNotAllowed:
        return name


_lock = threading.Lock()


def _policed_getaddrinfo(host, port, *args, **kwargs):
    name = host.decode() if isinstance(host, bytes) else host
    if name is not None and _guarded and _guard_key(name) in _guarded:
        try:
            found = _real_getaddrinfo(host, port, *args, **kwargs)
        except OSError:
            raise HostNotFound(name) from None
        for *_, sockaddr in found:
            check_address(str(sockaddr[0]), name)
        return found
    return _system_getaddrinfo(host, port, *args, **kwargs)


def install() -> None:
    """Route name resolution through the policy for guarded hosts (idempotent)."""
    socket.getaddrinfo = _policed_getaddrinfo


@contextmanager
def guard(hosts: Iterable[str]) -> Iterator[None]:
    """Check `hosts` now, and every time an SDK resolves one of them until the block ends."""
    names = [canonical(host) for host in hosts if host]
    for name in names:
        check_host(name)
    install()
    with _lock:
        _guarded.update(names)
    try:
        yield
    finally:
        with _lock:
            _guarded.subtract(names)
            for name in [name for name, count in _guarded.items() if count <= 0]:
                del _guarded[name]
