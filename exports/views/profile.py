"""The user's own page: their time zone and their API tokens."""

from __future__ import annotations

from zoneinfo import available_timezones

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST

from exports.models import ApiToken, Profile, time_zone_of
from exports.views.pages import HtmxHttpRequest, modal_or_page, scope_of


@login_required
def profile(request: HtmxHttpRequest) -> HttpResponse:
    """The user's preferences: their time zone; and their API tokens."""
    zones = sorted(available_timezones())
    if request.method == "POST":
        chosen = request.POST.get("time_zone", "")
        if chosen not in zones:
            messages.error(request, f"{chosen!r} is not a time zone.")
        else:
            Profile.objects.update_or_create(user=request.user, defaults={"time_zone": chosen})
            messages.success(request, f"Times are shown in {chosen} now.")
            return redirect("profile")
    return _profile_page(request, {"zones": zones})


def _profile_page(request: HtmxHttpRequest, context: dict) -> HttpResponse:
    context.setdefault("zones", sorted(available_timezones()))
    context.setdefault("current", time_zone_of(request.user))
    # The tokens of this sandbox: each acts in its own sandbox only.
    context["tokens"] = ApiToken.objects.filter(user_id=request.user.pk or 0, sandbox_id=scope_of(request).sandbox_id)
    return render(request, "exports/profile.html", context)


@login_required
@require_POST
@never_cache  # the page holds the secret
def tokens_create(request: HtmxHttpRequest) -> HttpResponse:
    """A new API token. Its secret is in this response and nowhere else, ever."""
    name = request.POST.get("name", "").strip()
    error = ""
    if not name:
        error = "Give the token a name, e.g. the system that will use it."
    elif len(name) > 100:
        error = "A token name has at most 100 characters."
    elif "\x00" in name:
        error = "A token name can't contain NUL characters."
    if error:
        return _profile_page(request, {"token_error": error, "token_name": name})
    token, secret = ApiToken.issue(request.user, name, sandbox=scope_of(request).sandbox)
    return _profile_page(request, {"new_token": token, "new_secret": secret})


@login_required
def tokens_revoke(request: HtmxHttpRequest, token_id: int) -> HttpResponse:
    """Asks first (GET); then the token stops working at once (POST)."""
    token = get_object_or_404(ApiToken, id=token_id, user=request.user, sandbox_id=scope_of(request).sandbox_id)
    if request.method == "POST":
        if token.revoke():
            messages.success(request, f"Revoked the token {token.name!r}: requests with it are refused now.")
        return redirect("profile")
    return modal_or_page(request, "exports/token_revoke_modal.html", {"token": token})
