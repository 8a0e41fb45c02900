"""An export's after-export hooks: add one (its secret shown once), remove one, and
send a run's call again."""

from __future__ import annotations

from uuid import UUID

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST

from exports import actions
from exports.actions import VALIDATION_FAILED, ActionRefused
from exports.views.listing import detail_page
from exports.views.pages import HtmxHttpRequest, export_for, modal_or_page, refused, run_for, scope_of


@login_required
@require_POST
@never_cache  # the page holds the secret
def exports_hooks_add(request: HtmxHttpRequest, export_id: UUID) -> HttpResponse:
    """A new hook. Its secret is in this response and nowhere else, ever."""
    export = export_for(request, export_id)
    url = request.POST.get("url", "")
    events = request.POST.get("events", "")
    try:
        hook, secret = actions.add_hook(request.user, export, url, events)
    except ActionRefused as refusal:
        if refusal.code != VALIDATION_FAILED:
            return refused(request, refusal, export)
        return detail_page(
            request, export, hook_errors=refusal.fields or {"url": [refusal.message]}, hook_url=url, hook_events=events
        )
    return detail_page(request, export, new_hook=hook, new_secret=secret)


@login_required
def exports_hooks_remove(request: HtmxHttpRequest, export_id: UUID, hook_id: int) -> HttpResponse:
    """Asks first (GET); then the hook goes (POST)."""
    export = export_for(request, export_id)
    try:
        hook = actions.find_hook(scope_of(request).sandbox_id, hook_id)
        if hook.export_id != export.id:
            raise ActionRefused(actions.NOT_FOUND, actions.NOT_FOUND_MESSAGES["hook"])
        if request.method != "POST":
            actions.check_hooks(request.user, export)
            return modal_or_page(request, "exports/hook_remove_modal.html", {"export": export, "hook": hook})
        actions.remove_hook(request.user, hook)
    except ActionRefused as refusal:
        return refused(request, refusal, export)
    messages.success(request, f"Removed the hook to {hook.url}: it is called no more.")
    return redirect(export)


@login_required
@require_POST
def runs_hooks_send_again(request: HtmxHttpRequest, run_id: UUID, call_id: UUID) -> HttpResponse:
    run = run_for(request, run_id)
    back = reverse("runs-detail", args=[run.id])
    try:
        call = actions.find_hook_call(scope_of(request).sandbox_id, call_id)
        if call.run_id != run.id:
            raise ActionRefused(actions.NOT_FOUND, "no such hook call")
        actions.send_hook_again(request.user, call)
    except ActionRefused as refusal:
        return refused(request, refusal, back)
    messages.success(request, f"Sending the call to {call.url} again, with the same webhook-id.")
    return redirect(back)
