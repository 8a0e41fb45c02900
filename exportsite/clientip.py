"""The address a request comes from, behind EXPORTSITE_TRUSTED_PROXIES proxies.

Each proxy appends to X-Forwarded-For the address it received the request from. The
last N entries were written by our N proxies; anything left of them, the client wrote
itself and may have made up. So the client is the N-th entry from the right.
"""

from __future__ import annotations

import ipaddress

from django.conf import settings


def client_address(request) -> str:
    remote = request.META.get("REMOTE_ADDR", "")
    hops = settings.TRUSTED_PROXIES
    if not hops:
        return remote
    forwarded = [part.strip() for part in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if part.strip()]
    if not forwarded:
        return remote
    candidate = forwarded[-min(hops, len(forwarded))]
    try:
        return str(ipaddress.ip_address(candidate))
    except ValueError:
        return remote
