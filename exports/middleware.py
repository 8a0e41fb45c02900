"""Pages show times in the user's own time zone (Profile.time_zone)."""

from __future__ import annotations

from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.utils import timezone

from exports.models import time_zone_of


class TimezoneMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        try:
            timezone.activate(ZoneInfo(time_zone_of(request.user)))
        except ZoneInfoNotFoundError:
            timezone.deactivate()
        try:
            return self.get_response(request)
        finally:
            timezone.deactivate()
