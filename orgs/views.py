"""The Members page: who belongs to the organisation, in which role. Its rules are in
orgs/members.py."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from exports.actions import VALIDATION_FAILED, ActionRefused
from exports.views.pages import refused, scope_of
from orgs import members
from orgs.models import Membership


def _page(request: HttpRequest, context: dict, status: int = 200) -> HttpResponse:
    scope = scope_of(request)
    context.update(members=members.members_of(scope.organisation), roles=Membership.Role.choices)
    return render(request, "orgs/members.html", context, status=status)


@login_required
def members_list(request: HttpRequest) -> HttpResponse:
    """GET: the members; POST: add one (an existing account, by user name)."""
    scope = scope_of(request)
    try:
        members.require_manage(request.user, scope)
    except ActionRefused as refusal:
        return refused(request, refusal, "exports-list")
    if request.method != "POST":
        return _page(request, {})
    username, role = request.POST.get("username", ""), request.POST.get("role", "")
    try:
        added = members.add_member(request.user, scope, username, role)
    except ActionRefused as refusal:
        if refusal.code != VALIDATION_FAILED:
            return refused(request, refusal, "members-list")
        error = refusal.message[:1].upper() + refusal.message[1:] + "."
        return _page(request, {"error": error, "username": username, "role": role}, status=400)
    messages.success(request, f"{added.user.get_username()} is now a {added.get_role_display().lower()} here.")
    return redirect("members-list")


@login_required
@require_POST
def members_role(request: HttpRequest, membership_id: int) -> HttpResponse:
    try:
        changed = members.change_role(request.user, scope_of(request), membership_id, request.POST.get("role", ""))
    except ActionRefused as refusal:
        return refused(request, refusal, "members-list")
    messages.success(request, f"{changed.user.get_username()} is now a {changed.get_role_display().lower()}.")
    return redirect("members-list")


@login_required
def members_remove(request: HttpRequest, membership_id: int) -> HttpResponse:
    """Asks first (GET); then they lose access at once (POST)."""
    scope = scope_of(request)
    if request.method != "POST":
        try:
            membership = members.find_membership(scope, membership_id)
            members.require_manage(request.user, scope)
        except ActionRefused as refusal:
            return refused(request, refusal, "members-list")
        return render(request, "orgs/remove_member.html", {"membership": membership})
    try:
        removed = members.remove_member(request.user, scope, membership_id)
    except ActionRefused as refusal:
        return refused(request, refusal, "members-list")
    messages.success(request, f"Removed {removed.user.get_username()} from {removed.organisation.name}.")
    return redirect("members-list")
