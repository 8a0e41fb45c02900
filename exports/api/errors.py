"""API errors: every failure is JSON with a stable code, a human message and, for
validation errors, the fields at fault. Handlers turn every exception the API can meet
into one of these, so no request ends in an HTML error page."""

from __future__ import annotations

import logging
import math
from typing import Any
from uuid import UUID

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from ninja import NinjaAPI, Schema
from ninja.errors import AuthenticationError, HttpError, Throttled, ValidationError

from exports.actions import ActionRefused

logger = logging.getLogger(__name__)


class ErrorOut(Schema):
    Code: str
    Message: str
    # Validation errors: the request fields at fault and what is wrong with each.
    Fields: dict[str, list[str]] | None = None
    # Conflicts with a run (already running, dataset busy): that run.
    RunId: str | None = None


class ApiError(Exception):
    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        fields: dict[str, list[str]] | None = None,
        run_id: UUID | str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.fields = fields
        self.run_id = str(run_id) if run_id else None


def not_found(what: str = "export") -> ApiError:
    # The same answer whether it doesn't exist or belongs to someone else: never a leak.
    return ApiError(404, "NOT_FOUND", f"no such {what}, or it isn't yours")


def invalid(fields: dict[str, list[str]]) -> ApiError:
    summary = "; ".join(f"{name}: {' '.join(problems)}" for name, problems in fields.items())
    return ApiError(400, "VALIDATION_FAILED", f"the request is not valid: {summary}", fields=fields)


_HTTP_CODES = {
    400: "BAD_REQUEST",
    401: "UNAUTHENTICATED",
    403: "FORBIDDEN",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    409: "CONFLICT",
    429: "RATE_LIMITED",
}


def _field_name(location: tuple) -> str:
    """('body', 'payload', 'Filters', 0, 'Column') -> 'Filters[0].Column'; ('query', 'page') -> 'page'."""
    parts = [part for part in location if part not in {"body", "query", "path", "payload", "filters"}]
    name = ""
    for part in parts:
        name += f"[{part}]" if isinstance(part, int) else (f".{part}" if name else str(part))
    return name or "body"


def _validation_message(error: dict) -> str:
    if error.get("type") == "too_long" and "ctx" in error:
        ctx = error["ctx"]
        return f"at most {ctx['max_length']:,} per request, got {ctx['actual_length']:,}"
    return str(error.get("msg", "is not valid")).removeprefix("Value error, ")


def install_handlers(api: NinjaAPI) -> None:
    def respond(request: HttpRequest, status: int, code: str, message: str, **extra: Any) -> HttpResponse:
        body = {"Code": code, "Message": message, **{k: v for k, v in extra.items() if v is not None}}
        return api.create_response(request, body, status=status)

    @api.exception_handler(ApiError)
    def api_error(request: HttpRequest, exc: ApiError) -> HttpResponse:
        response = respond(request, exc.status, exc.code, exc.message, Fields=exc.fields, RunId=exc.run_id)
        if exc.status == 401:
            response["WWW-Authenticate"] = "Bearer"
        return response

    @api.exception_handler(ActionRefused)
    def refused(request: HttpRequest, exc: ActionRefused) -> HttpResponse:
        # The same code a page shows; 403/404/400 for permission, existence and input.
        run_id = str(exc.run_id) if exc.run_id else None
        return respond(request, exc.status, exc.code, exc.message, Fields=exc.fields, RunId=run_id)

    @api.exception_handler(ValidationError)
    def validation_error(request: HttpRequest, exc: ValidationError) -> HttpResponse:
        fields: dict[str, list[str]] = {}
        for error in exc.errors:
            fields.setdefault(_field_name(tuple(error.get("loc", ()))), []).append(_validation_message(error))
        refusal = invalid(fields)
        return respond(request, 400, refusal.code, refusal.message, Fields=fields)

    @api.exception_handler(AuthenticationError)
    def unauthenticated(request: HttpRequest, exc: AuthenticationError) -> HttpResponse:
        response = respond(request, 401, "UNAUTHENTICATED", "send an API token as 'Authorization: Bearer <token>'")
        response["WWW-Authenticate"] = "Bearer"
        return response

    @api.exception_handler(Throttled)
    def throttled(request: HttpRequest, exc: Throttled) -> HttpResponse:
        wait = math.ceil(exc.wait) if exc.wait else 60  # ninja sends the same as Retry-After
        return respond(
            request,
            429,
            "RATE_LIMITED",
            f"this token made more than {settings.API_RATE_LIMIT_PER_MINUTE} requests this minute; retry in {wait} s",
        )

    @api.exception_handler(HttpError)
    def http_error(request: HttpRequest, exc: HttpError) -> HttpResponse:
        message = str(exc)
        if message == "Cannot parse request body":
            message = "the request body is not valid JSON"
        return respond(request, exc.status_code, _HTTP_CODES.get(exc.status_code, "ERROR"), message)

    @api.exception_handler(Http404)
    def missing(request: HttpRequest, exc: Http404) -> HttpResponse:
        return respond(request, 404, "NOT_FOUND", str(exc) or "not found")

    @api.exception_handler(PermissionDenied)
    def forbidden(request: HttpRequest, exc: PermissionDenied) -> HttpResponse:
        return respond(request, 403, "FORBIDDEN", str(exc) or "you may not do this")

    @api.exception_handler(Exception)
    def unexpected(request: HttpRequest, exc: Exception) -> HttpResponse:
        logger.exception("API request %s %s failed", request.method, request.path)
        return respond(request, 500, "INTERNAL_ERROR", "an unexpected error; it has been logged")
