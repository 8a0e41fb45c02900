"""Source databases and their datasets: admins add, change, test, refresh and delete them."""

from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.db.models import Prefetch
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST

from exports import actions, schema_watch, source_probe, sources
from exports.actions import ActionRefused
from exports.forms import SourceForm
from exports.models import Database, Dataset
from exports.permissions import is_admin
from exports.views.pages import HtmxHttpRequest, modal_or_page, refused, scope_of


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


def source_files_dir(scope) -> Path:
    """Where the sandbox's SQLite and DuckDB files are: SOURCE_FILES_DIR/<organisation>/<sandbox>."""
    return settings.SOURCE_FILES_DIR / scope.organisation.slug / scope.sandbox.slug


def _source_in_scope(request: HttpRequest, database_id: int) -> Database:
    return get_object_or_404(Database, id=database_id, sandbox_id=scope_of(request).sandbox_id)


@login_required
@never_cache  # the form may hold what was typed for a password
def sources_new(request: HttpRequest) -> HttpResponse:
    return _source_form(request, None)


@login_required
@never_cache
def sources_edit(request: HttpRequest, database_id: int) -> HttpResponse:
    return _source_form(request, _source_in_scope(request, database_id))


def _source_form(request: HttpRequest, database: Database | None) -> HttpResponse:
    """The form: Test connection tries what is typed (a blank password: the saved one),
    Save adds or changes the source and reads its datasets."""
    sandbox_id = scope_of(request).sandbox_id
    try:
        actions.check_sources(request.user, sandbox_id)
    except ActionRefused as refusal:
        return refused(request, refusal, "sources-list")
    current_url = database.url if database else ""
    files_dir = source_files_dir(scope_of(request))
    probe = None
    if request.method == "POST":
        form = SourceForm(request.POST, current_url=current_url, files_dir=files_dir)
        if form.is_valid():
            if request.POST.get("test"):
                probe = source_probe.probe(form.cleaned_data["url"])
            else:
                source = database or Database(sandbox_id=sandbox_id)
                source.name = form.cleaned_data["name"]
                source.url = form.cleaned_data["url"]
                try:
                    actions.save_source(request.user, source)
                except ActionRefused as refusal:
                    for field, problems in (refusal.fields or {}).items():
                        form.add_error(field if field in form.fields else None, problems)
                    if not refusal.fields:
                        return refused(request, refusal, "sources-list")
                else:
                    source.refresh_from_db()
                    if source.refresh_error:
                        messages.warning(request, f"Saved {source.name}, but reading it failed: {source.refresh_error}")
                    else:
                        messages.success(request, f"Saved {source.name}: {source.datasets.count()} datasets.")
                    return redirect("sources-list")
    else:
        form = SourceForm(
            initial={"name": database.name} if database else {}, current_url=current_url, files_dir=files_dir
        )
    context = {"form": form, "database": database, "probe": probe, "files_dir": files_dir}
    return render(request, "exports/source_form.html", context)


@login_required
def sources_delete(request: HtmxHttpRequest, database_id: int) -> HttpResponse:
    """Asks first (GET), listing the exports that keep it; then deletes it (POST)."""
    database = _source_in_scope(request, database_id)
    refusal = actions.delete_source_refusal(request.user, database)
    if refusal is not None and refusal.code != actions.SOURCE_IN_USE:
        return refused(request, refusal, "sources-list")
    if request.method != "POST":
        users = actions.source_users(database)[:50] if refusal else []
        return modal_or_page(
            request, "exports/source_delete_modal.html", {"database": database, "refusal": refusal, "users": users}
        )
    try:
        actions.delete_source(request.user, database)
    except ActionRefused as refusal:
        return refused(request, refusal, "sources-list")
    messages.success(request, f"Deleted the source {database.name}.")
    return redirect("sources-list")
