"""Manage Exports and an export's page: the list, and every row action on an export.
Each action is a call to exports/actions.py; a refusal comes back as a message."""

from __future__ import annotations

from uuid import UUID

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_POST

from connectors.models import Connector
from exports import actions, charts, listing
from exports.actions import ActionRefused
from exports.listing import TABS, ManageQuery
from exports.models import Export, Hook, Run
from exports.permissions import can_change, can_create, can_download
from exports.views.pages import (
    HtmxHttpRequest,
    back_to_list,
    export_for,
    list_target,
    modal_or_page,
    query_string,
    refused,
    scope_of,
)
from orgs.models import Sandbox
from orgs.scope import url_in


@login_required
def exports_list(request: HtmxHttpRequest) -> HttpResponse:
    """Manage Exports: the page, or for htmx just the tabs and results."""
    sandbox_id = scope_of(request).sandbox_id
    query = ManageQuery.from_request(request.GET, sandbox_id)
    counts = listing.counts(query)
    page = listing.page_of(query, counts)
    context = {
        "query": query,
        "tabs": TABS,
        "counts": counts,
        "count_limit": listing.COUNT_LIMIT,
        "capped": counts[query.tab] > listing.COUNT_LIMIT,  # "Page 3", not "Page 3 of 401"
        "page": page,
        "choices": listing.sidebar_choices(sandbox_id),
        "base_query": query_string(request.GET, drop=("tab", "page")),
        "page_query": query_string(request.GET, drop=("page",)),
        "sort_query": query_string(request.GET, drop=("sort", "page")),
        "sorts": listing.SORTS,
    }
    for row in page:
        export = row if isinstance(row, Export) else row.export
        row.user_can_change = can_change(request.user, export)
        row.user_can_download = can_download(request.user, export)
        if export.managed:
            row.custom_offers = actions.custom_offers(request.user, export)
        if row is export and export.is_draft:  # a Draft tab row: say why it can't be deleted
            refusal = actions.delete_refusal(request.user, export)
            row.delete_refusal = refusal.message if refusal else ""
    if request.htmx and not request.htmx.boosted:
        return render(request, "exports/_manage_results.html", context)
    return render(request, "exports/manage.html", context)


@login_required
def exports_detail(request: HtmxHttpRequest, export_id: UUID) -> HttpResponse:
    return detail_page(request, export_for(request, export_id))


def detail_page(request: HtmxHttpRequest, export: Export, **extra) -> HttpResponse:
    """The export's page; `extra`: what a form posted to it adds (a new hook's secret)."""
    runs = list(export.runs.order_by("-queued_at")[:100])
    return render(
        request,
        "exports/detail.html",
        {
            **extra,
            "export": export,
            "hooks": export.hooks.select_related("created_by").defer("secret"),
            "hooks_refusal": actions.hooks_refusal(request.user, export),
            "hook_event_choices": Hook.Events.choices,
            "runs": runs,
            "chart": charts.run_history(list(reversed(runs[: charts.LAST_RUNS * 2]))),  # the finished among them
            "can_change": can_change(request.user, export),
            "custom_offers": actions.custom_offers(request.user, export) if export.managed else None,
            "definition_refusal": actions.custom_refusal(request.user, export, "view the definition of"),
            "active_run": next((run for run in runs if run.is_active), None),
            # Launch was refused with DATASET_BUSY: offer to queue it anyway.
            "busy_run": _busy_run(export.sandbox_id, request.GET.get("busy", "")),
        },
    )


def _busy_run(sandbox_id: int, run_id: str) -> Run | None:
    try:
        return actions.runs_in(sandbox_id).active().filter(id=run_id).first() if run_id else None
    except ValidationError:  # not a UUID
        return None


@login_required
def exports_definition(request: HtmxHttpRequest, export_id: UUID) -> HttpResponse:
    export = export_for(request, export_id)
    refusal = actions.custom_refusal(request.user, export, "view the definition of")
    return modal_or_page(request, "exports/definition_modal.html", {"export": export, "definition_refusal": refusal})


def launch_and_redirect(request: HtmxHttpRequest, export: Export) -> HttpResponse:
    """Launch from a page (the export's page, a list row, the wizard's summary)."""
    try:
        run = actions.launch(request.user, export, queue_anyway=bool(request.POST.get("queue_anyway")))
    except ActionRefused as refusal:
        if refusal.code == actions.DATASET_BUSY:
            return refused(request, refusal, f"{export.get_absolute_url()}?busy={refusal.run_id}")
        return refused(request, refusal, export)
    return redirect(run)


@login_required
@require_POST
def exports_launch(request: HtmxHttpRequest, export_id: UUID) -> HttpResponse:
    return launch_and_redirect(request, export_for(request, export_id))


def schedule_and_redirect(request: HtmxHttpRequest, export: Export) -> HttpResponse:
    try:
        export = actions.schedule(request.user, export)
    except ActionRefused as refusal:
        if refusal.code == actions.CANNOT_SCHEDULE:
            return refused(request, refusal, reverse("exports-wizard", args=[export.id, "schedule"]))
        return refused(request, refusal, f"{reverse('exports-list')}?tab=scheduled")
    when = timezone.localtime(export.next_run_at)
    messages.success(request, f"Scheduled {export.name!r}: the next run is at {when:%Y-%m-%d %H:%M %Z}.")
    return redirect(f"{reverse('exports-list')}?tab=scheduled")


@login_required
@require_POST
def exports_schedule(request: HtmxHttpRequest, export_id: UUID) -> HttpResponse:
    return schedule_and_redirect(request, export_for(request, export_id))


@login_required
@require_POST
def exports_run_now(request: HtmxHttpRequest, export_id: UUID) -> HttpResponse:
    """Start a scheduled export's next run now; the page follows the run."""
    export = export_for(request, export_id)
    try:
        run = actions.run_now(request.user, export)
    except ActionRefused as refusal:
        return refused(request, refusal, list_target(request, default=export.get_absolute_url()))
    messages.success(request, f"{export.name!r} is running now; its later runs keep their times.")
    return redirect(run)


@login_required
def exports_unschedule(request: HtmxHttpRequest, export_id: UUID) -> HttpResponse:
    """Back to draft (POST). A custom export asks first (GET): it becomes a standard
    export, which operators no longer manage."""
    export = export_for(request, export_id)
    if request.method != "POST":
        if not export.managed:
            return HttpResponse(status=405, headers={"Allow": "POST"})
        try:
            actions.check_unschedule(request.user, export)
        except ActionRefused as refusal:
            return refused(request, refusal, list_target(request))
        return modal_or_page(request, "exports/unschedule_modal.html", {"export": export, "next": list_target(request)})
    try:
        actions.unschedule(request.user, export)
    except ActionRefused as refusal:
        return refused(request, refusal, list_target(request))
    messages.success(request, f"{export.name!r} is a draft again.")
    return back_to_list(request)


@login_required
def exports_reset_watermark(request: HtmxHttpRequest, export_id: UUID) -> HttpResponse:
    """Asks first (GET); then the next incremental run exports everything again (POST)."""
    export = export_for(request, export_id)
    if request.method == "POST":
        try:
            actions.reset_watermark(request.user, export)
        except ActionRefused as refusal:
            return refused(request, refusal, export)
        messages.success(request, f"The next run of {export.name!r} exports every row again.")
        return redirect(export)
    try:
        actions.check_watermark_reset(request.user, export)
    except ActionRefused as refusal:
        return refused(request, refusal, export)
    return modal_or_page(request, "exports/reset_watermark_modal.html", {"export": export})


@login_required
def exports_copy(request: HtmxHttpRequest, export_id: UUID) -> HttpResponse:
    """Asks for the copy's name (GET); then makes the draft and opens the wizard on it (POST)."""
    export = export_for(request, export_id)
    name = f"Copy of {export.name}"[: actions.MAX_NAME]
    error = ""
    if request.method == "POST":
        name = request.POST.get("name", "")
        try:
            copy = actions.copy(request.user, export, name)
        except ActionRefused as refusal:
            if refusal.code != actions.VALIDATION_FAILED:
                return refused(request, refusal, export)
            problem = (refusal.fields or {}).get("Name", [refusal.message])[0]
            error = problem[:1].upper() + problem[1:] + "."
        else:
            messages.success(request, f"Copied {export.name!r} as the draft {copy.name!r}.")
            return redirect("exports-edit", copy.id)
    else:
        try:
            actions.check_copy(request.user, export)
        except ActionRefused as refusal:
            return refused(request, refusal, export)
    return modal_or_page(request, "exports/copy_modal.html", {"export": export, "name": name, "error": error})


@login_required
def exports_copy_to_sandbox(request: HtmxHttpRequest, export_id: UUID) -> HttpResponse:
    """Promote a definition: choose the sandbox (GET ?sandbox=), then its destination and
    the name (POST); the draft opens in the target sandbox."""
    export = export_for(request, export_id)
    scope = scope_of(request)
    try:
        actions.check_copy(request.user, export)
    except ActionRefused as refusal:
        return refused(request, refusal, export)
    targets = [
        sandbox
        for sandbox in Sandbox.objects.filter(organisation=scope.organisation).exclude(pk=scope.sandbox_id)
        if can_create(request.user, sandbox.pk)
    ]
    params = request.POST if request.method == "POST" else request.GET
    named = next((sandbox for sandbox in targets if sandbox.slug == params.get("sandbox")), None)
    if request.method == "POST" and named is None:
        raise Http404("no such sandbox")  # a POST copies where it says, or nowhere
    target = named or (targets[0] if targets else None)
    name, chosen = params.get("name", export.name), params.get("connector", "")
    context = {
        "export": export,
        "targets": targets,
        "target": target,
        "connectors": Connector.objects.usable_in(target.pk) if target else [],
        "name": name,
        "chosen": chosen,
        "error": "",
    }
    if request.method == "POST" and target is not None:
        connector = Connector.objects.usable_in(target.pk).filter(id__in=_uuids(chosen)).first() if chosen else None
        if chosen and connector is None:
            context["error"] = "Choose one of the destinations listed: they are the target sandbox's."
        else:
            try:
                copy = actions.copy_to_sandbox(request.user, export, target, connector=connector, name=name)
            except ActionRefused as refusal:
                if refusal.code != actions.VALIDATION_FAILED:
                    return refused(request, refusal, export)
                context["error"] = refusal.message[:1].upper() + refusal.message[1:] + "."
            else:
                messages.success(request, f"Copied {export.name!r} to {target.name} as the draft {copy.name!r}.")
                return redirect(url_in(request, target, f"exports/{copy.id}/"))
    return render(request, "exports/copy_to_sandbox.html", context, status=400 if context["error"] else 200)


def _uuids(text: str) -> list[str]:
    try:
        return [str(UUID(text))]
    except ValueError:
        return []


@login_required
def exports_delete(request: HtmxHttpRequest, export_id: UUID) -> HttpResponse:
    """Asks first, saying what goes with it (GET); then deletes the draft (POST)."""
    export = export_for(request, export_id)
    if request.method == "POST":
        name = export.name
        try:
            removed = actions.delete(request.user, export)
        except ActionRefused as refusal:
            return refused(request, refusal, list_target(request))
        files = f" and its {removed} downloadable file{'s' if removed != 1 else ''}" if removed else ""
        messages.success(request, f"Deleted the draft {name!r}{files}.")
        return back_to_list(request)
    why_not = actions.delete_refusal(request.user, export)
    if why_not is not None:
        return refused(request, why_not, list_target(request))
    context = {"export": export, "desktop_files": len(actions.desktop_files_of(export, kept_only=True))}
    return modal_or_page(request, "exports/delete_modal.html", context)
