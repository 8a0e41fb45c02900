"""What every page view shares: the object lookups, modals, and how a refused action
becomes a message and a redirect rather than an error page."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect, QueryDict
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django_htmx.middleware import HtmxDetails

from exports.actions import FORBIDDEN, NOT_FOUND, ActionRefused
from exports.models import Export, Run


class HtmxHttpRequest(HttpRequest):
    htmx: HtmxDetails


def export_for(export_id: UUID) -> Export:
    """Everyone signed in sees every export; what they may do with it is the actions' call."""
    return get_object_or_404(Export.objects.select_related("dataset__database", "owner", "connector"), id=export_id)


def run_for(run_id: UUID) -> Run:
    return get_object_or_404(
        Run.objects.select_related("export__dataset__database", "export__owner", "export__connector", "connector"),
        id=run_id,
    )


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
    return target if target.startswith("/exports/") else default or reverse("exports-list")


def modal_or_page(request: HtmxHttpRequest, template: str, context: dict) -> HttpResponse:
    """Modals render alone for htmx and inside the page without JavaScript."""
    context["as_modal"] = bool(request.htmx)
    return render(request, template, context)


def query_string(params: QueryDict, *, drop: tuple[str, ...]) -> str:
    kept = params.copy()
    for key in drop:
        kept.pop(key, None)
    return kept.urlencode()
