from __future__ import annotations

from datetime import timedelta

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Prefetch
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST

from exports import manage, sources
from exports.charts import run_history
from exports.forms import WIZARD_STEPS, FilterFormSet, SourceStepForm, clean_filters
from exports.layout import LayoutContext, render_template, validate_template
from exports.manage import TABS, ManageQuery
from exports.models import ApiToken, Database, Dataset, Export, Profile, Run, refresh_datasets, time_zone_of
from exports.permissions import can_change, can_create, can_download, is_admin
from exports.runs import LaunchRefused, cancel_run, launch_export


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
    """Manage Exports: the page, or for htmx just the tabs and results."""
    query = ManageQuery.from_request(request.GET)
    counts = manage.counts(query)
    context = {
        "query": query,
        "tabs": TABS,
        "counts": counts,
        "page": manage.page_of(query, counts),
        "choices": manage.sidebar_choices(),
        "base_query": _query_string(request.GET, drop=("tab", "page")),
        "page_query": _query_string(request.GET, drop=("page",)),
        "sort_query": _query_string(request.GET, drop=("sort", "page")),
        "sorts": manage.SORTS,
    }
    for row in context["page"]:
        export = row if isinstance(row, Export) else row.export
        row.user_can_change = can_change(request.user, export)
        row.user_can_download = can_download(request.user, export)
    if request.htmx and not request.htmx.boosted:
        return render(request, "exports/_manage_results.html", context)
    return render(request, "exports/manage.html", context)


def _query_string(params, *, drop: tuple[str, ...]) -> str:
    kept = params.copy()
    for key in drop:
        kept.pop(key, None)
    return kept.urlencode()


def _back_to_list(request):
    target = request.POST.get("next") or request.GET.get("next") or ""
    return redirect(target if target.startswith("/exports/") else "exports-list")


@login_required
def exports_new(request):
    """The wizard's first step, before the draft exists."""
    if not can_create(request.user):
        raise PermissionDenied("viewers can't create exports")
    return _wizard_step(request, None, "source")


@login_required
def exports_wizard(request, export_id, step):
    export = _get_export_for_user(request, export_id, write=True)
    if not export.is_draft:
        raise PermissionDenied("only drafts can be edited: unschedule a scheduled export first")
    if step not in WIZARD_STEPS:
        raise Http404(f"no wizard step {step!r}")
    return _wizard_step(request, export, step)


def _form_kwargs(request, step: str) -> dict:
    return {"time_zone": time_zone_of(request.user)} if step == "schedule" else {}


def _schedule_and_redirect(request, export: Export):
    try:
        scheduled = export.schedule()
    except ValueError as exc:
        messages.error(request, f"Can't schedule {export.name!r}: {exc}. Change its schedule.")
        return redirect("exports-wizard", export.id, "schedule")
    if not scheduled:
        raise PermissionDenied("only drafts can be scheduled")
    when = timezone.localtime(export.next_run_at)
    messages.success(request, f"Scheduled {export.name!r}: the next run is at {when:%Y-%m-%d %H:%M %Z}.")
    return redirect(f"{reverse('exports-list')}?tab=scheduled")


@login_required
@require_POST
def exports_schedule(request, export_id):
    export = _get_export_for_user(request, export_id, write=True)
    return _schedule_and_redirect(request, export)


@login_required
@require_POST
def exports_run_now(request, export_id):
    """Bring a scheduled export's next run forward to now; the scheduler starts it."""
    export = _get_export_for_user(request, export_id, write=True)
    if not export.run_now():
        raise PermissionDenied("only scheduled exports have a next run to bring forward")
    messages.success(request, f"{export.name!r} runs at the scheduler's next tick.")
    return _back_to_list(request)


@login_required
def exports_reset_watermark(request, export_id):
    """Asks first (GET); then the next incremental run exports everything again (POST)."""
    export = _get_export_for_user(request, export_id, write=True)
    if not export.is_incremental:
        raise Http404("only incremental exports have a watermark")
    if request.method == "POST":
        export.reset_watermark()
        messages.success(request, f"The next run of {export.name!r} exports every row again.")
        return redirect(export)
    return _modal_or_page(request, "exports/reset_watermark_modal.html", {"export": export})


def _schedule_times(form) -> dict:
    """The next five run times of a bound or saved schedule form, or its errors."""
    from exports.schedule import for_export

    if form.is_bound and not form.is_valid():
        errors = [
            f"{form.fields[name].label if name in form.fields else 'Schedule'}: {' '.join(messages_)}"
            for name, messages_ in form.errors.items()
        ]
        return {"times": [], "error": "; ".join(errors)}
    export = form.save(commit=False) if form.is_bound else form.instance
    plan = for_export(export)
    if plan is None:
        return {"times": [], "error": ""}
    now = timezone.now() - timedelta(seconds=1)
    return {"times": [timezone.localtime(moment) for moment in plan.upcoming(now)], "error": ""}


@login_required
def exports_schedule_preview(request, export_id):
    """htmx: the next five run times of the schedule being typed, in the user's zone."""
    from exports.forms import ScheduleStepForm

    export = _get_export_for_user(request, export_id)
    form = ScheduleStepForm(request.GET, instance=export, time_zone=time_zone_of(request.user))
    return render(request, "exports/_schedule_preview.html", _schedule_times(form))


@login_required
def profile(request):
    """The user's preferences: their time zone; and their API tokens."""
    from zoneinfo import available_timezones

    current = time_zone_of(request.user)
    zones = sorted(available_timezones())
    if request.method == "POST":
        chosen = request.POST.get("time_zone", "")
        if chosen not in zones:
            messages.error(request, f"{chosen!r} is not a time zone.")
        else:
            Profile.objects.update_or_create(user=request.user, defaults={"time_zone": chosen})
            messages.success(request, f"Times are shown in {chosen} now.")
            return redirect("profile")
    return _profile_page(request, {"zones": zones, "current": current})


def _profile_page(request, context: dict):
    from zoneinfo import available_timezones

    context.setdefault("zones", sorted(available_timezones()))
    context.setdefault("current", time_zone_of(request.user))
    context["tokens"] = ApiToken.objects.filter(user=request.user)
    return render(request, "exports/profile.html", context)


@login_required
@require_POST
@never_cache  # the page holds the secret
def tokens_create(request):
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
    token, secret = ApiToken.issue(request.user, name)
    return _profile_page(request, {"new_token": token, "new_secret": secret})


@login_required
def tokens_revoke(request, token_id):
    """Asks first (GET); then the token stops working at once (POST)."""
    token = get_object_or_404(ApiToken, id=token_id, user=request.user)
    if request.method == "POST":
        if token.revoke():
            messages.success(request, f"Revoked the token {token.name!r}: requests with it are refused now.")
        return redirect("profile")
    return _modal_or_page(request, "exports/token_revoke_modal.html", {"token": token})


def _wizard_step(request, export: Export | None, step: str):
    """One screen of the wizard. Every valid step is saved at once, so leaving the
    wizard keeps a draft; "Back" and the step links move without saving."""
    steps = list(WIZARD_STEPS)
    index = steps.index(step)
    label, form_class = WIZARD_STEPS[step]
    context = {
        "export": export,
        "step": step,
        "step_label": label,
        "steps": [(key, WIZARD_STEPS[key][0], position) for position, key in enumerate(steps, start=1)],
        "step_number": index + 1,
        "previous": steps[index - 1] if index else None,
    }
    if step == "summary":
        if request.method == "POST":
            if "launch" in request.POST:
                return _launch_and_redirect(request, export)
            if "schedule" in request.POST:
                return _schedule_and_redirect(request, export)
            messages.success(request, f"Saved the draft {export.name!r}.")
            return redirect(f"{reverse('exports-list')}?tab=draft")
        return render(request, "exports/wizard.html", context)
    formset = None
    if request.method == "POST":
        data = request.POST
        if step == "source" and "add_filter" in data:
            # Without JavaScript: the same step again, with one more empty filter row.
            data = data.copy()
            try:
                rows = int(data.get("filters-TOTAL_FORMS", 3))
            except ValueError:
                rows = 3
            data["filters-TOTAL_FORMS"] = str(min(max(rows, 0) + 1, 50))
            context.update(form=form_class(data, instance=export), formset=FilterFormSet(data, prefix="filters"))
            return render(request, "exports/wizard.html", context)
        form = form_class(data, instance=export, **_form_kwargs(request, step))
        form_ok = form.is_valid()
        if step == "schedule" and "preview" in data:
            # Without JavaScript: show the next run times, without saving.
            context.update(form=form, **_schedule_times(form))
            return render(request, "exports/wizard.html", context)
        if step == "destination" and "preview" in data:
            # Without JavaScript: show where files would land, without saving.
            context.update(
                form=form,
                preview=destination_preview(
                    export, form.cleaned_data.get("connector"), data.get("folder_template", "")
                ),
            )
            return render(request, "exports/wizard.html", context)
        specs = []
        if step == "source":
            formset = FilterFormSet(data, prefix="filters")
            specs = clean_filters(formset, form.cleaned_data.get("dataset"))
        if form_ok and specs is not None:
            saved = form.save(commit=False)
            if export is None:
                saved.owner = request.user
                saved.export_type = Export.Type.ONE_SHOT
            if step == "source":
                saved.filters = specs
            saved.save()
            return redirect("exports-wizard", saved.id, steps[index + 1])
    else:
        initial = {}
        if export is None and request.GET.get("dataset"):
            initial["dataset"] = request.GET["dataset"]
        form = form_class(instance=export, initial=initial, **_form_kwargs(request, step))
        if step == "source":
            formset = FilterFormSet(prefix="filters", initial=export.filters if export else None)
    if step == "schedule":
        context["time_zone"] = time_zone_of(request.user)
        if request.method != "POST":
            context.update(_schedule_times(form))
    if step == "destination" and "preview" not in context:
        context["preview"] = destination_preview(export, export.connector, export.folder_template)
    context.update(form=form, formset=formset)
    return render(request, "exports/wizard.html", context)


def destination_preview(export: Export, connector, template: str) -> dict:
    """Where a delivery of `export` would land, for the destination step and its htmx preview."""
    from connectors.models import Connector
    from exports.engine import file_extension
    from exports.layout import UNSCHEDULED, tnf_name

    template = template.strip()
    try:
        if template:
            validate_template(template, allow_slashes=True)
    except ValidationError as exc:
        return {"error": exc.messages[0]}
    now = timezone.now()
    context = LayoutContext(
        delivery_id="<delivery GUID>",
        export_id=str(export.id),
        export_name=export.name,
        dataset_id=str(export.dataset_id),
        dataset_name=export.dataset.name,
        destination=connector.get_kind_display() if connector else "Desktop",
        destination_instance_name=connector.name if connector else "Desktop",
        destination_instance_id=str(connector.id) if connector else "desktop",
        moment=now,
    )
    try:
        extension = file_extension(export.file_format, export.compression)
    except ValueError:
        extension = export.file_format
    file_name = f"{render_template(export.file_template, context)}-1.{extension}"
    if connector is None or connector.kind == Connector.Kind.DESKTOP:
        return {"desktop": True, "one_shot": file_name}
    root = connector.location
    folder = render_template(template, context) if template else "<delivery GUID>"
    return {
        "desktop": False,
        "one_shot": f"{root}{export.id}/{UNSCHEDULED}/{file_name}",
        "repeating": f"{root}{export.id}/{folder}/{file_name}",
        "tnf": f"{root}{tnf_name(export, now)}",
    }


@login_required
def exports_folder_preview(request, export_id):
    """htmx: where a delivery would land, for the destination and template being typed."""
    from connectors.models import Connector

    export = _get_export_for_user(request, export_id)
    try:
        connector = Connector.objects.filter(id=request.GET.get("connector") or None).first()
    except ValidationError:  # not a UUID: Desktop
        connector = None
    preview = destination_preview(export, connector, request.GET.get("folder_template", ""))
    return render(request, "exports/_folder_preview.html", {"preview": preview})


@login_required
def exports_columns(request):
    """htmx: the column picker of the dataset chosen in the form."""
    form = SourceStepForm(data={"dataset": request.GET.get("dataset", "")})
    dataset = form.chosen_dataset()
    return render(request, "exports/_columns.html", {"form": form, "dataset": dataset})


@login_required
def exports_detail(request, export_id):
    export = _get_export_for_user(request, export_id)
    runs = list(export.runs.order_by("-queued_at")[:100])
    return render(
        request,
        "exports/detail.html",
        {
            "export": export,
            "runs": runs,
            "chart": run_history(list(reversed(runs[:40]))),
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
        "can_change": can_change(request.user, run.export),
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


def _modal_or_page(request, template: str, context: dict):
    """Modals render alone for htmx and inside the page without JavaScript."""
    context["as_modal"] = bool(request.htmx)
    return render(request, template, context)


@login_required
def exports_definition(request, export_id):
    export = _get_export_for_user(request, export_id)
    return _modal_or_page(request, "exports/definition_modal.html", {"export": export})


@login_required
def exports_copy(request, export_id):
    export = _get_export_for_user(request, export_id, write=True)
    if export.status not in {Export.Status.DRAFT, Export.Status.SCHEDULED, Export.Status.FINISHED}:
        raise PermissionDenied("an expired export can't be copied")
    error = ""
    name = f"Copy of {export.name}"[:200]
    if request.method == "POST":
        name = request.POST.get("name", "").strip()
        if not name:
            error = "The copy needs a name."
        elif len(name) > 200:
            error = "A name has at most 200 characters."
        else:
            copy = export.copy(name=name, owner=request.user)
            messages.success(request, f"Copied {export.name!r} as the draft {copy.name!r}.")
            return redirect("exports-edit", copy.id)
    return _modal_or_page(request, "exports/copy_modal.html", {"export": export, "name": name, "error": error})


@login_required
def exports_delete(request, export_id):
    export = _get_export_for_user(request, export_id, write=True)
    if not export.is_draft:
        raise PermissionDenied("only drafts can be deleted")
    if request.method == "POST":
        name = export.name
        export.delete()
        messages.success(request, f"Deleted the draft {name!r}.")
        return _back_to_list(request)
    return _modal_or_page(request, "exports/delete_modal.html", {"export": export})


@login_required
@require_POST
def exports_unschedule(request, export_id):
    export = _get_export_for_user(request, export_id, write=True)
    if not export.unschedule():
        raise PermissionDenied("only scheduled exports can be unscheduled")
    messages.success(request, f"{export.name!r} is a draft again.")
    return _back_to_list(request)


@login_required
def exports_edit(request, export_id):
    export = _get_export_for_user(request, export_id, write=True)
    if not export.is_draft:
        raise PermissionDenied("only drafts can be edited: unschedule a scheduled export first")
    return redirect("exports-wizard", export.id, "source")


@login_required
@require_POST
def runs_cancel(request, run_id):
    run = _get_run_for_user(request, run_id)
    if not can_change(request.user, run.export):
        raise PermissionDenied("only the export's owner (a marketer) or an admin may cancel it")
    if not cancel_run(run):
        raise PermissionDenied("only queued or running runs can be cancelled")
    messages.success(request, f"Cancelled the run of {run.export.name!r}.")
    return _back_to_list(request)


@login_required
@require_POST
def runs_relaunch(request, run_id):
    run = _get_run_for_user(request, run_id)
    if not can_change(request.user, run.export):
        raise PermissionDenied("only the export's owner (a marketer) or an admin may relaunch it")
    if not run.is_relaunchable:
        raise PermissionDenied("only runs that failed for a reason a relaunch can fix are relaunched")
    try:
        new_run, _ = launch_export(run.export, user=request.user, trigger=Run.Trigger.RELAUNCH, relaunch_of=run)
    except LaunchRefused as exc:
        messages.error(request, f"Can't relaunch: {exc}.")
        return redirect(run)
    return redirect(new_run)
