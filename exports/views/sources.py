"""Source databases and their datasets; admins refresh them after a schema change."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.db.models import Prefetch
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from exports import schema_watch, sources
from exports.models import Database, Dataset
from exports.permissions import is_admin
from exports.views.pages import scope_of


@login_required
def sources_list(request: HttpRequest) -> HttpResponse:
    sandbox_id = scope_of(request).sandbox_id
    databases = Database.objects.filter(sandbox_id=sandbox_id).prefetch_related(
        Prefetch("datasets", queryset=Dataset.objects.order_by("schema_name", "name"))
    )
    return render(
        request, "exports/sources.html", {"databases": databases, "can_refresh": is_admin(request.user, sandbox_id)}
    )


@login_required
@require_POST
def sources_refresh(request: HttpRequest, database_id: int) -> HttpResponse:
    sandbox_id = scope_of(request).sandbox_id
    database = get_object_or_404(Database, id=database_id, sandbox_id=sandbox_id)
    if not is_admin(request.user, sandbox_id):
        raise PermissionDenied("only admins refresh source databases")
    try:
        datasets = schema_watch.refresh(database)
    except sources.SourceError as exc:
        messages.error(request, f"Refreshing {database.name} failed: {exc}")
    else:
        messages.success(request, f"Refreshed {database.name}: {len(datasets)} datasets.")
    return redirect("sources-list")
