from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.db.models import OuterRef, Prefetch, Subquery
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from exports import sources
from exports.forms import ExportForm, FilterFormSet, clean_filters
from exports.models import Database, Dataset, Export, Run, refresh_datasets
from exports.permissions import can_change, can_create, can_download, is_admin
from exports.runs import LaunchRefused, launch_export


def _get_export_for_user(request, export_id, *, write: bool = False) -> Export:
    export = get_object_or_404(Export.objects.select_related("dataset__database", "owner", "connector"), id=export_id)
    if write and not can_change(request.user, export):
        raise PermissionDenied("only the export's owner (a marketer) or an admin may do this")
    return export


def _get_run_for_user(request, run_id) -> Run:
    return get_object_or_404(
        Run.objects.select_related("export__dataset__database", "export__owner", "export__connector"), id=run_id
    )


@login_required
def exports_list(request):
    latest = Run.objects.filter(export=OuterRef("pk")).order_by("-queued_at")
    exports = Export.objects.select_related("dataset__database", "owner").annotate(
        last_run_id=Subquery(latest.values("id")[:1]),
        last_run_status=Subquery(latest.values("status")[:1]),
        last_run_at=Subquery(latest.values("queued_at")[:1]),
    )[:200]
    runs = Run.objects.select_related("export__dataset").order_by("-queued_at")[:50]
    return render(request, "exports/list.html", {"exports": exports, "runs": runs})


@login_required
def exports_new(request):
    if not can_create(request.user):
        raise PermissionDenied("viewers can't create exports")
    if request.method == "POST":
        form = ExportForm(request.POST)
        formset = FilterFormSet(request.POST, prefix="filters")
        if "add_filter" in request.POST:
            # Without JavaScript: re-render with one more empty filter row.
            data = request.POST.copy()
            data["filters-TOTAL_FORMS"] = str(int(data.get("filters-TOTAL_FORMS", 3)) + 1)
            return render(
                request,
                "exports/new.html",
                {"form": ExportForm(data), "formset": FilterFormSet(data, prefix="filters")},
            )
        form_ok = form.is_valid()
        specs = clean_filters(formset, form.cleaned_data.get("dataset"))
        if form_ok and specs is not None:
            export = form.save(commit=False)
            export.owner = request.user
            export.filters = specs
            export.export_type = Export.Type.ONE_SHOT
            export.save()
            if "launch" in request.POST:
                return _launch_and_redirect(request, export)
            messages.success(request, f"Saved the draft {export.name!r}.")
            return redirect(export)
    else:
        form = ExportForm(initial={"dataset": request.GET.get("dataset")} if request.GET.get("dataset") else None)
        formset = FilterFormSet(prefix="filters")
    return render(request, "exports/new.html", {"form": form, "formset": formset})


@login_required
def exports_columns(request):
    """htmx: the column picker of the dataset chosen in the form."""
    form = ExportForm(data={"dataset": request.GET.get("dataset", "")})
    dataset = form.chosen_dataset()
    return render(request, "exports/_columns.html", {"form": form, "dataset": dataset})


@login_required
def exports_detail(request, export_id):
    export = _get_export_for_user(request, export_id)
    runs = export.runs.order_by("-queued_at")[:100]
    return render(
        request,
        "exports/detail.html",
        {
            "export": export,
            "runs": runs,
            "can_change": can_change(request.user, export),
            "active_run": next((run for run in runs if run.is_active), None),
        },
    )


def _launch_and_redirect(request, export: Export):
    try:
        run, created = launch_export(export, user=request.user)
    except LaunchRefused as exc:
        messages.error(request, f"Can't launch {export.name!r}: {exc}.")
        return redirect(export)
    if not created:
        messages.info(request, "This export is already running; here is its run.")
    return redirect(run)


@login_required
@require_POST
def exports_launch(request, export_id):
    export = _get_export_for_user(request, export_id, write=True)
    if export.export_type != Export.Type.ONE_SHOT:
        raise PermissionDenied("only one-shot exports are launched by hand")
    return _launch_and_redirect(request, export)


@login_required
def runs_detail(request, run_id):
    run = _get_run_for_user(request, run_id)
    context = {
        "run": run,
        "export": run.export,
        "files": run.files.all(),
        "can_download": can_download(request.user, run.export),
    }
    if request.htmx:
        return render(request, "exports/_run_report.html", context)
    return render(request, "exports/run.html", context)


@login_required
def runs_download(request, run_id):
    from exports.delivery import download_response

    run = _get_run_for_user(request, run_id)
    if not can_download(request.user, run.export):
        raise PermissionDenied("only the export's owner, staff and admins may download its files")
    if not run.is_downloadable:
        raise Http404("this run has no files to download (it did not succeed, or its files expired)")
    return download_response(run)


@login_required
def sources_list(request):
    databases = Database.objects.prefetch_related(
        Prefetch("datasets", queryset=Dataset.objects.order_by("schema_name", "name"))
    )
    return render(request, "exports/sources.html", {"databases": databases, "can_refresh": is_admin(request.user)})


@login_required
@require_POST
def sources_refresh(request, database_id):
    if not is_admin(request.user):
        raise PermissionDenied("only admins refresh source databases")
    database = get_object_or_404(Database, id=database_id)
    try:
        datasets = refresh_datasets(database)
    except sources.SourceError as exc:
        messages.error(request, f"Refreshing {database.name} failed: {exc}")
    else:
        messages.success(request, f"Refreshed {database.name}: {len(datasets)} datasets.")
    return redirect("sources-list")
