"""The export wizard: one screen per step, each saved as a draft as soon as it is valid,
so leaving the wizard keeps a draft; "Back" and the step links move without saving.

The steps are a table (`STEPS`): each names its form and what it adds to the screen,
including the buttons that, without JavaScript, show a preview without saving."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any
from uuid import UUID

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone

from connectors.models import Connector
from exports import actions
from exports.actions import ActionRefused
from exports.forms import (
    MAX_FILTERS,
    DestinationStepForm,
    FileStepForm,
    FilterForm,
    ScheduleStepForm,
    SourceStepForm,
    clean_filters,
    filter_formset,
)
from exports.layout import UNSCHEDULED, context_for, file_extension, render_template, tnf_name, validate_template
from exports.models import Export, time_zone_of
from exports.schedule import for_export
from exports.views.listing import launch_and_redirect, schedule_and_redirect
from exports.views.pages import HtmxHttpRequest, export_for, refused, scope_of


def _schedule_times(form: forms.ModelForm) -> dict:
    """The next five run times of a bound or saved schedule form, or its errors; and
    a warning when an incremental export's cursor has no index."""
    return {**_run_times(form), "cursor_warning": _cursor_warning(form)}


def _cursor_warning(form: forms.ModelForm) -> str:
    export = form.instance
    if form.is_bound:
        kind, cursor = form.data.get("export_type"), form.data.get("cursor_column") or ""
    else:
        kind, cursor = export.export_type, form.initial.get("cursor_column") or export.cursor_column
    if kind != Export.Type.INCREMENTAL or not export.dataset_id or not cursor:
        return ""
    return export.dataset.index_warning(cursor)


def _run_times(form: forms.ModelForm) -> dict:
    if form.is_bound and not form.is_valid():
        errors = [
            f"{form.fields[name].label if name in form.fields else 'Schedule'}: {' '.join(map(str, problems))}"
            for name, problems in form.errors.items()
        ]
        return {"times": [], "error": "; ".join(errors)}
    export = form.save(commit=False) if form.is_bound else form.instance
    plan = for_export(export)
    if plan is None:
        return {"times": [], "error": ""}
    now = timezone.now() - timedelta(seconds=1)
    return {"times": [timezone.localtime(moment) for moment in plan.upcoming(now)], "error": ""}


def destination_preview(export: Export, connector: Connector | None, template: str) -> dict:
    """Where a delivery of `export` would land, for the destination step and its htmx preview."""
    template = template.strip()
    try:
        if template:
            validate_template(template, allow_slashes=True)
    except ValidationError as exc:
        return {"error": exc.messages[0]}
    now = timezone.now()
    context = context_for(export, connector, delivery_id="<delivery GUID>", moment=now)
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


# What each step adds ------------------------------------------------------------------
# A "screen" function gets the request, the export (None before the first save) and the
# step's form, and returns what the template needs beyond the form.


def _no_extra(request: HtmxHttpRequest, export: Export | None, form: Any) -> dict:
    return {}


def _source_screen(request: HtmxHttpRequest, export: Export | None, form: Any) -> dict:
    time_zone = time_zone_of(request.user)
    if request.method == "POST":
        return {"formset": filter_formset(request.POST, form.chosen_dataset(), time_zone), "time_zone": time_zone}
    initial = export.filters if export else None
    return {"formset": filter_formset(None, form.chosen_dataset(), time_zone, initial), "time_zone": time_zone}


def _add_filter_row(request: HtmxHttpRequest, export: Export | None, step: Step) -> dict:
    """Without JavaScript: the same step again, with one more empty filter row."""
    data = request.POST.copy()
    try:
        rows = int(data.get("filters-TOTAL_FORMS", 3))
    except ValueError:
        rows = 3
    data["filters-TOTAL_FORMS"] = str(min(max(rows, 0) + 1, MAX_FILTERS))
    form = step.form(request, export, data)
    time_zone = time_zone_of(request.user)
    return {"form": form, "formset": filter_formset(data, form.chosen_dataset(), time_zone), "time_zone": time_zone}


def _destination_screen(request: HtmxHttpRequest, export: Export | None, form: Any) -> dict:
    assert export is not None  # the destination step follows the first save
    return {"preview": destination_preview(export, export.connector, export.folder_template)}


def _preview_destination(request: HtmxHttpRequest, export: Export | None, step: Step) -> dict:
    """Without JavaScript: where files would land, without saving."""
    assert export is not None
    form = step.form(request, export, request.POST)
    form.is_valid()
    connector = form.cleaned_data.get("connector")
    return {"form": form, "preview": destination_preview(export, connector, request.POST.get("folder_template", ""))}


def _schedule_screen(request: HtmxHttpRequest, export: Export | None, form: Any) -> dict:
    context: dict[str, Any] = {"time_zone": time_zone_of(request.user)}
    if request.method != "POST":
        context.update(_schedule_times(form))
    return context


def _preview_schedule(request: HtmxHttpRequest, export: Export | None, step: Step) -> dict:
    """Without JavaScript: the next run times, without saving."""
    form = step.form(request, export, request.POST)
    return {"form": form, "time_zone": time_zone_of(request.user), **_schedule_times(form)}


def _time_zone(request: HtmxHttpRequest) -> dict:
    return {"time_zone": time_zone_of(request.user)}


def _in_sandbox(request: HtmxHttpRequest) -> dict:
    """The datasets and connectors offered: the page's sandbox's only."""
    return {"sandbox_id": scope_of(request).sandbox_id}


@dataclass(frozen=True)
class Step:
    label: str
    form_class: type[forms.ModelForm] | None
    screen: Callable[[HtmxHttpRequest, Export | None, Any], dict] = _no_extra
    # POST buttons that show the step again without saving: button name -> context.
    previews: dict[str, Callable[[HtmxHttpRequest, Export | None, Step], dict]] = field(default_factory=dict)
    form_kwargs: Callable[[HtmxHttpRequest], dict] = lambda request: {}
    has_filters: bool = False

    def form(self, request: HtmxHttpRequest, export: Export | None, data: Any = None, **kwargs: Any) -> Any:
        assert self.form_class is not None
        return self.form_class(data, instance=export, **kwargs, **self.form_kwargs(request))


STEPS: dict[str, Step] = {
    "source": Step(
        "Source",
        SourceStepForm,
        screen=_source_screen,
        previews={"add_filter": _add_filter_row},
        form_kwargs=_in_sandbox,
        has_filters=True,
    ),
    "file": Step("File", FileStepForm),
    "destination": Step(
        "Destination",
        DestinationStepForm,
        screen=_destination_screen,
        previews={"preview": _preview_destination},
        form_kwargs=_in_sandbox,
    ),
    "schedule": Step(
        "Schedule",
        ScheduleStepForm,
        screen=_schedule_screen,
        previews={"preview": _preview_schedule},
        form_kwargs=_time_zone,
    ),
    "summary": Step("Summary", None),
}
STEP_KEYS = list(STEPS)


def _wizard_step(request: HtmxHttpRequest, export: Export | None, key: str) -> HttpResponse:
    """One screen of the wizard: show it, preview it, or save it and go on."""
    step = STEPS[key]
    index = STEP_KEYS.index(key)
    context: dict[str, Any] = {
        "export": export,
        "step": key,
        "step_label": step.label,
        "steps": [(other, STEPS[other].label, position) for position, other in enumerate(STEP_KEYS, start=1)],
        "step_number": index + 1,
        "previous": STEP_KEYS[index - 1] if index else None,
    }
    if step.form_class is None:
        return _summary(request, export, context)
    if request.method == "POST":
        for button, preview in step.previews.items():
            if button in request.POST:
                context.update(preview(request, export, step))
                return render(request, "exports/wizard.html", context)
        form = step.form(request, export, request.POST)
        extra = step.screen(request, export, form)
        try:
            saved = _save_step(request, export, step, form, extra.get("formset"))
        except ActionRefused as refusal:  # scheduled meanwhile, say
            return refused(request, refusal, export or reverse("exports-list"))
        if saved is not None:
            return redirect("exports-wizard", saved.id, STEP_KEYS[index + 1])
    else:
        initial = {"dataset": request.GET["dataset"]} if export is None and request.GET.get("dataset") else {}
        form = step.form(request, export, initial=initial)
        extra = step.screen(request, export, form)
    context.update({"form": form, "formset": None, **extra})
    return render(request, "exports/wizard.html", context)


def _save_step(request: HtmxHttpRequest, export: Export | None, step: Step, form: Any, formset: Any) -> Export | None:
    """Save a valid step through `actions.save_draft`; None (errors on the form) if not.
    Any other refusal is raised."""
    form_ok = form.is_valid()
    specs: list[dict] | None = []
    if step.has_filters:
        specs = clean_filters(formset, form.cleaned_data.get("dataset"))
    if not form_ok or specs is None:
        return None
    saved = form.save(commit=False)
    if export is None:
        saved.owner = request.user
        saved.sandbox = scope_of(request).sandbox
        saved.export_type = Export.Type.ONE_SHOT
    if step.has_filters:
        saved.filters = specs
    try:
        return actions.save_draft(request.user, saved)
    except ActionRefused as refusal:
        if refusal.code != actions.VALIDATION_FAILED:
            raise
        for name, problems in (refusal.fields or {}).items():
            for problem in problems:
                form.add_error(name if name in form.fields else None, problem)
        return None


def _summary(request: HtmxHttpRequest, export: Export | None, context: dict) -> HttpResponse:
    assert export is not None
    if request.method == "POST":
        if "launch" in request.POST:
            return launch_and_redirect(request, export)
        if "schedule" in request.POST:
            return schedule_and_redirect(request, export)
        messages.success(request, f"Saved the draft {export.name!r}.")
        return redirect(f"{reverse('exports-list')}?tab=draft")
    return render(request, "exports/wizard.html", context)


def _editable(request: HtmxHttpRequest, export_id: UUID) -> Export:
    export = export_for(request, export_id)
    actions.check_editable(request.user, export)
    return export


@login_required
def exports_new(request: HtmxHttpRequest) -> HttpResponse:
    """The wizard's first step, before the draft exists."""
    try:
        actions.require_create(request.user, scope_of(request).sandbox_id)
    except ActionRefused as refusal:
        return refused(request, refusal, "exports-list")
    return _wizard_step(request, None, "source")


@login_required
def exports_wizard(request: HtmxHttpRequest, export_id: UUID, step: str) -> HttpResponse:
    if step not in STEPS:
        return refused(request, ActionRefused(actions.NOT_FOUND, f"no wizard step {step!r}"), "exports-list")
    try:
        export = _editable(request, export_id)
    except ActionRefused as refusal:
        return refused(request, refusal, reverse("exports-detail", args=[export_id]))
    return _wizard_step(request, export, step)


@login_required
def exports_edit(request: HtmxHttpRequest, export_id: UUID) -> HttpResponse:
    try:
        export = _editable(request, export_id)
    except ActionRefused as refusal:
        return refused(request, refusal, reverse("exports-detail", args=[export_id]))
    return redirect("exports-wizard", export.id, "source")


@login_required
def exports_schedule_preview(request: HtmxHttpRequest, export_id: UUID) -> HttpResponse:
    """htmx: the next five run times of the schedule being typed, in the user's zone."""
    export = export_for(request, export_id)
    form = ScheduleStepForm(request.GET, instance=export, time_zone=time_zone_of(request.user))
    return render(request, "exports/_schedule_preview.html", _schedule_times(form))


@login_required
def exports_folder_preview(request: HtmxHttpRequest, export_id: UUID) -> HttpResponse:
    """htmx: where a delivery would land, for the destination and template being typed."""
    export = export_for(request, export_id)
    chosen = request.GET.get("connector", "")
    try:
        connector = Connector.objects.usable_in(export.sandbox_id).filter(id=chosen).first() if chosen else None
    except ValidationError:  # not a UUID: Desktop
        connector = None
    preview = destination_preview(export, connector, request.GET.get("folder_template", ""))
    return render(request, "exports/_folder_preview.html", {"preview": preview})


def _dataset_form(request: HtmxHttpRequest) -> SourceStepForm:
    """The source step with only the dataset the query string names, in the request's sandbox."""
    return SourceStepForm(data={"dataset": request.GET.get("dataset", "")}, sandbox_id=scope_of(request).sandbox_id)


@login_required
def exports_columns(request: HtmxHttpRequest) -> HttpResponse:
    """htmx: the column picker of the dataset chosen in the form, and the filter rows
    again (out of band) with that dataset's columns, keeping what was typed in them."""
    form = _dataset_form(request)
    dataset = form.chosen_dataset()
    time_zone = time_zone_of(request.user)
    rows = request.GET if "filters-TOTAL_FORMS" in request.GET else None
    formset = filter_formset(rows, dataset, time_zone)
    context = {"form": form, "dataset": dataset, "formset": formset, "time_zone": time_zone, "oob": True}
    return render(request, "exports/_columns.html", context)


@login_required
def exports_filter_row(request: HtmxHttpRequest) -> HttpResponse:
    """htmx: one filter row again, after its column or operator changed: the operators
    that fit the column's type, and the value inputs that fit both."""
    dataset = _dataset_form(request).chosen_dataset()
    number = request.GET.get("row", "")
    if not number.isascii() or not number.isdigit() or int(number) >= MAX_FILTERS:
        return HttpResponse("No such filter row.", status=400)
    row = FilterForm(
        request.GET,
        prefix=f"filters-{int(number)}",
        columns=dataset.columns if dataset else [],
        time_zone=time_zone_of(request.user),
    )
    return render(request, "exports/_filter_row.html", {"f": row, "number": int(number)})
