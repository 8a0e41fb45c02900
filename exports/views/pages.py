"""What every page view shares: the object lookups, modals, and how a refused action
becomes a message and a redirect rather than an error page."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect, QueryDict
from django.shortcuts import redirect, render
from django.urls import reverse
from django_htmx.middleware import HtmxDetails

from exports import actions
from exports.actions import FORBIDDEN, NOT_FOUND, ActionRefused
from exports.models import Export, Run
from orgs.scope import Scope


class HtmxHttpRequest(HttpRequest):
    htmx: HtmxDetails


def scope_of(request: HttpRequest) -> Scope:
    """The sandbox the page's URL names (orgs/scope.py). Every page is in one."""
    scope: Scope | None = getattr(request, "sandbox_scope", None)
    if scope is None:
        raise Http404("not in a sandbox")
    return scope


def export_for(request: HttpRequest, export_id: UUID) -> Export:
    """Everyone in the sandbox sees its exports; what they may do with one is the actions'
    call. An export of another sandbox is a 404, as a missing one."""
    try:
        return actions.find_export(scope_of(request).sandbox_id, export_id)
    except ActionRefused as refusal:
        raise Http404(refusal.message) from None


def run_for(request: HttpRequest, run_id: UUID) -> Run:
    try:
        return actions.find_run(scope_of(request).sandbox_id, run_id)
    except ActionRefused as refusal:
        raise Http404(refusal.message) from None


def refused(request: HttpRequest, refusal: ActionRefused, to: Any) -> HttpResponse:
    """A refused action on a page: permission is a 403 and a vanished row a 404, as
    anywhere; a conflict with the current state is a message on the page the user goes
    back to. When the state the action wanted holds already (a double click), the
    message is only informative, and a run already going is shown. The message carries
    the refusal's code as a tag."""
    if refusal.code == FORBIDDEN:
        raise PermissionDenied(refusal.message)
    if refusal.code == NOT_FOUND:
        raise Http404(refusal.message)
    if refusal.already and refusal.run_id:  # the run it would start exists: show it
        messages.info(request, f"{_sentence(refusal.message)} Here it is.", extra_tags=refusal.code)
        return _go(request, reverse("runs-detail", args=[refusal.run_id]))
    level = messages.INFO if refusal.already else messages.ERROR
    messages.add_message(request, level, _sentence(refusal.message), extra_tags=refusal.code)
    return _go(request, to)


def _go(request: HttpRequest, to: Any) -> HttpResponse:
    """A redirect; for htmx (a modal asked for, say), a whole-page one, so the message
    shows on the page it belongs to rather than inside the modal."""
    response = redirect(to)
    if not getattr(request, "htmx", False):
        return response
    whole_page = HttpResponse(status=204)
    whole_page["HX-Redirect"] = response["Location"]
    return whole_page


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:] + ("" if text.endswith(".") else ".")


def back_to_list(request: HttpRequest) -> HttpResponseRedirect:
    return HttpResponseRedirect(list_target(request))


def list_target(request: HttpRequest, default: str = "") -> str:
    """Where a row action returns: the list the user came from (only our own pages), or
    `default` (Manage Exports if none)."""
    target = request.POST.get("next") or request.GET.get("next") or ""
    listing = reverse("exports-list")  # in the page's sandbox: /o/<organisation>/<sandbox>/exports/
    return target if target.startswith(listing) else default or listing


def modal_or_page(request: HtmxHttpRequest, template: str, context: dict) -> HttpResponse:
    """Modals render alone for htmx and inside the page without JavaScript."""
    context["as_modal"] = bool(request.htmx)
    return render(request, template, context)


def query_string(params: QueryDict, *, drop: tuple[str, ...]) -> str:
    kept = params.copy()
    for key in drop:
        kept.pop(key, None)
    return kept.urlencode()
