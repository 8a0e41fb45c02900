"""Plain Django views around the API."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt


@csrf_exempt  # token clients send no CSRF token: they must get this 404, not an HTML 403
def unknown_endpoint(request: HttpRequest, *args: Any, **kwargs: Any) -> JsonResponse:
    """JSON, not the site's HTML 404 page, for any other address under /api/."""
    return JsonResponse(
        {"Code": "NOT_FOUND", "Message": f"there is no API endpoint {request.path}; see /api/v1/docs"}, status=404
    )
