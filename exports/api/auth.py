"""Who is calling, and how often: bearer tokens and a per-token rate limit."""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

import django_rq
from django.conf import settings
from django.http import HttpRequest
from ninja.security import HttpBearer
from ninja.throttling import BaseThrottle

from exports.api.errors import ApiError
from exports.models import ApiToken
from orgs.scope import Scope

if TYPE_CHECKING:
    from django.contrib.auth.models import User

logger = logging.getLogger(__name__)


class TokenRequest(HttpRequest):
    """A request TokenAuth let in: it acts as the token's owner, never anonymously, in
    the token's sandbox only."""

    user: User
    sandbox_scope: Scope


class TokenAuth(HttpBearer):
    """`Authorization: Bearer <token>`. The request then acts as the token's owner."""

    def __call__(self, request: HttpRequest) -> ApiToken:
        header = request.headers.get("Authorization", "")
        if not header:
            raise ApiError(401, "UNAUTHENTICATED", "send an API token as 'Authorization: Bearer <token>'")
        scheme, _, secret = header.partition(" ")
        if scheme.lower() != "bearer" or not secret.strip():
            raise ApiError(401, "UNAUTHENTICATED", "the Authorization header must be 'Bearer <token>'")
        return self.authenticate(request, secret.strip())

    def authenticate(self, request: HttpRequest, token: str) -> ApiToken:
        found = ApiToken.authenticate(token)
        if found is None:
            raise ApiError(401, "INVALID_TOKEN", "this API token is unknown or has been revoked")
        scope = Scope.of(found.user, found.sandbox)
        if scope is None:
            raise ApiError(
                401, "INVALID_TOKEN", "this API token's owner no longer belongs to the organisation it was issued in"
            )
        request.user = found.user
        request.sandbox_scope = scope  # type: ignore[attr-defined]
        return found


class TokenRateThrottle(BaseThrottle):
    """At most API_RATE_LIMIT_PER_MINUTE requests per token and clock minute, counted in
    Redis so every web process shares the count. (ninja's own throttles keep a list in
    Django's cache, read and written back without a lock: concurrent requests undercount.)"""

    def allow_request(self, request: HttpRequest) -> bool:
        token = getattr(request, "auth", None)
        if not isinstance(token, ApiToken):
            return True
        now = time.time()
        window = int(now // 60)
        self.retry_after = 60 - now % 60
        # The digest, not the id: ids can come back after a deletion, digests never.
        key = f"exportsite:api-rate:{token.digest[:24]}:{window}"
        try:
            redis = django_rq.get_connection(settings.EXPORTS_QUEUE)
            pipe = redis.pipeline()
            pipe.incr(key)
            pipe.expire(key, 120)
            count = pipe.execute()[0]
        except Exception as exc:  # noqa: BLE001 - Redis down: serve rather than refuse everyone
            logger.warning("API rate limit not applied, Redis failed: %s", exc)
            return True
        return count <= settings.API_RATE_LIMIT_PER_MINUTE

    def wait(self) -> float:
        return self.retry_after
