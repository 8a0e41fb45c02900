"""A run's report, its download, and the actions on a run (cancel, relaunch)."""

from __future__ import annotations

from uuid import UUID

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from exports import actions
from exports.actions import ActionRefused
from exports.delivery import download_response
from exports.permissions import can_change, can_download
from exports.views.pages import HtmxHttpRequest, back_to_list, list_target, refused, run_for


@login_required
def runs_detail(request: HtmxHttpRequest, run_id: UUID) -> HttpResponse:
    run = run_for(request, run_id)
    hook_calls = list(
        run.hook_calls.select_related("hook").defer("hook__secret").prefetch_related("attempt_log__requested_by")
    )
    # Calls with an attempt queued or going: not sent again meanwhile, and followed.
    sending = {call.id for call in hook_calls if any(a.finished_at is None for a in call.attempt_log.all())}
    context = {
        "run": run,
        "export": run.export,
        "files": run.files.all(),
        "partitions": list(run.partitions.all()) if run.partition_count else [],
        "can_download": can_download(request.user, run.export),
        "can_change": can_change(request.user, run.export),
        "definition_refusal": actions.custom_refusal(request.user, run.export, "view the definition of"),
        "next_attempt": actions.next_attempt(run),
        "hook_calls": hook_calls,
        "hooks_refusal": actions.hooks_refusal(request.user, run.export),
        # While a call is queued or going, the report follows it.
        "sending_calls": sending,
        "hooks_sending": bool(sending),
    }
    if request.htmx:
        return render(request, "exports/_run_report.html", context)
    return render(request, "exports/run.html", context)


@login_required
def runs_download(request: HtmxHttpRequest, run_id: UUID) -> HttpResponse:
    """The run's Desktop files, from where the run put them (whatever the export says now)."""
    run = run_for(request, run_id)
    if not can_download(request.user, run.export):
        raise PermissionDenied("only the export's owner, staff and admins may download its files")
    if not run.is_downloadable:
        raise Http404("this run has no files to download (it did not succeed, or its files expired)")
    return download_response(run)


@login_required
@require_POST
def runs_cancel(request: HtmxHttpRequest, run_id: UUID) -> HttpResponse:
    run = run_for(request, run_id)
    try:
        actions.cancel(request.user, run)
    except ActionRefused as refusal:
        return refused(request, refusal, list_target(request))
    messages.success(request, f"Cancelled the run of {run.export.name!r}.")
    return back_to_list(request)


@login_required
@require_POST
def runs_relaunch(request: HtmxHttpRequest, run_id: UUID) -> HttpResponse:
    run = run_for(request, run_id)
    try:
        new_run = actions.relaunch(request.user, run)
    except ActionRefused as refusal:
        return refused(request, refusal, run)
    return redirect(new_run)
