from __future__ import annotations

from typing import Any, ClassVar, cast

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest
from django.utils import timezone

from exports import actions, custom, schema_watch
from exports.filters import validate_filters
from exports.forms import FileStepForm
from exports.incremental import CURSOR_TYPES
from exports.models import ApiToken, Database, Dataset, Export, HookCall, Run, RunFile


@admin.register(Database)
class DatabaseAdmin(admin.ModelAdmin):
    """Platform staff add an organisation's source databases here, each in its sandbox."""

    list_display = ["name", "sandbox", "refreshed_at", "refresh_error"]
    list_filter = ["sandbox__organisation"]

    def get_form(self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any) -> Any:
        form = super().get_form(request, obj, change, **kwargs)
        # Required here: a source added without one would go to Default, another client's.
        form.base_fields["sandbox"].required = True
        return form


class CustomDatasetForm(forms.ModelForm):
    """A custom dataset: its query is run on the source (LIMIT 0, read-only) when saved,
    and refused with the database's reason; its result gives the columns."""

    class Meta:
        model = Dataset
        fields: ClassVar[list[str]] = ["database", "name", "data_type", "query", "cursor_column"]
        help_texts: ClassVar[dict[str, str]] = {
            "query": "One SELECT (or WITH ... SELECT) over the source database; it may join tables. "
            "Name every computed column with AS. On SQLite, a computed column reads as text.",
            "cursor_column": "For incremental exports: an integer or timestamp column of the result "
            "that grows as rows are added",
        }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["query"].required = True
        self.fields["data_type"].initial = Dataset.DataType.CUSTOM

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        database, name, query = cleaned.get("database"), cleaned.get("name"), cleaned.get("query")
        if database and name:
            twins = Dataset.objects.filter(database=database, schema_name="", name=name).exclude(pk=self.instance.pk)
            if twins.exists():
                self.add_error("name", f"{database.name} already has a dataset named {name!r}")
        if database and query:
            cleaned["query"] = custom.normalise(query)
            try:
                self.instance.columns = custom.describe(database.url, query)
            except ValidationError as exc:
                self.add_error("query", exc)
                return cleaned
            cursor = cleaned.get("cursor_column")
            column = next((c for c in self.instance.columns if c["name"] == cursor), None)
            if cursor and column is None:
                self.add_error("cursor_column", f"the query gives no column {cursor!r}")
            elif column and column["type"] not in CURSOR_TYPES:
                kind = column["type"]
                self.add_error("cursor_column", f"{cursor!r} is {kind}: a cursor is an integer, a timestamp or a date")
        return cleaned

    def save(self, commit: bool = True) -> Any:
        dataset = super().save(commit=False)
        dataset.kind = Dataset.Kind.QUERY
        dataset.schema_name = ""
        dataset.estimated_rows = None
        dataset.primary_key = []
        dataset.missing_since = None
        dataset.refreshed_at = timezone.now()
        if commit:
            dataset.save()
        return dataset


@admin.register(Dataset)
class DatasetAdmin(admin.ModelAdmin):
    """Tables and views come from a database's refresh; platform staff (superusers) add
    custom datasets here: a SELECT of their own, which may join tables."""

    list_display = ["name", "database", "kind", "data_type", "estimated_rows", "missing_since"]
    list_filter = ["database", "data_type", "kind"]
    list_editable = ["data_type"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return request.user.is_superuser

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        super().save_model(request, obj, form, change)
        if change and obj.is_custom:
            # A changed query may drop a column its exports use: they hear of it now.
            schema_watch.watch(obj.database)

    def get_form(self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any) -> Any:
        if obj is None or obj.is_custom:
            kwargs["form"] = CustomDatasetForm
            kwargs["fields"] = CustomDatasetForm.Meta.fields
        return super().get_form(request, obj, change, **kwargs)

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        if obj is None or obj.is_custom:
            if obj is not None and not request.user.is_superuser:
                return CustomDatasetForm.Meta.fields
            return []
        # A table's or view's shape comes from the source: only its labels are ours.
        return ["database", "schema_name", "name", "kind", "query", "columns", "estimated_rows", "primary_key"]


class CustomExportForm(forms.ModelForm):
    """A custom export that platform staff set up for a client's sandbox: periodic full
    or incremental, to one of that sandbox's connectors, over any of its datasets (a
    custom dataset too). Saved through `actions.create_custom_export`, then scheduled."""

    user: Any = None  # set by ExportAdmin.get_form: the rules are the actions'

    class Meta:
        model = Export
        fields: ClassVar[list[str]] = [
            "sandbox",
            "name",
            "dataset",
            "columns",
            "filters",
            "export_type",
            "cursor_column",
            "connector",
            "file_format",
            "compression",
            "rows_per_file",
            "folder_template",
            "file_template",
            "schedule_unit",
            "schedule_interval",
            "schedule_start",
            "schedule_end",
            "schedule_timezone",
            "report_recipients",
        ]
        help_texts: ClassVar[dict[str, str]] = {
            "columns": 'A JSON list of column names, e.g. ["id", "email"]; [] for all of them',
            "filters": 'A JSON list, e.g. [{"column": "country_code", "operator": "eq", "value": "FR"}]',
            "schedule_interval": "Hours between runs (3, 6, 9 or 12) when the unit is hours; 1 for days",
        }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.instance.managed = True
        self.fields["sandbox"].required = True
        self.fields["connector"].required = True
        for name in ("schedule_unit", "schedule_interval", "schedule_start", "schedule_end"):
            self.fields[name].required = True
        cast(forms.ChoiceField, self.fields["export_type"]).choices = [
            (value, label) for value, label in Export.Type.choices if value != Export.Type.ONE_SHOT
        ]

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        dataset, sandbox = cleaned.get("dataset"), cleaned.get("sandbox")
        if dataset is None or sandbox is None:
            return cleaned
        # The form's values reach the instance only after clean(): check a probe of them.
        probe = Export(sandbox=sandbox, dataset=dataset, connector=cleaned.get("connector"))
        try:
            actions.check_in_sandbox(self.user, probe)
        except actions.ActionRefused as refusal:
            for field, problems in (refusal.fields or {"sandbox": [refusal.message]}).items():
                self.add_error(field if field in self.fields else None, problems)
        try:
            validate_filters(cleaned.get("filters") or [], dataset.columns)
        except ValidationError as exc:
            self.add_error("filters", exc)
        unknown = [name for name in cleaned.get("columns") or [] if dataset.column(name) is None]
        if unknown:
            self.add_error("columns", f"{dataset.qualified_name} has no column {', '.join(map(repr, unknown))}")
        if cleaned.get("export_type") == Export.Type.INCREMENTAL:
            cursor = dataset.column(cleaned.get("cursor_column") or "")
            if cursor is None or cursor["type"] not in CURSOR_TYPES:
                self.add_error("cursor_column", "an incremental export needs an integer, timestamp or date column")
        unit, interval = cleaned.get("schedule_unit"), cleaned.get("schedule_interval")
        if unit == Export.TimeUnit.DAY and interval != 1:
            self.add_error("schedule_interval", "a daily export runs every 1 day")
        if unit == Export.TimeUnit.HOUR and interval not in {3, 6, 9, 12}:
            self.add_error("schedule_interval", "every 3, 6, 9 or 12 hours")
        start, end = cleaned.get("schedule_start"), cleaned.get("schedule_end")
        if start and end and end <= start:
            self.add_error("schedule_end", "the end must come after the start")
        elif end and end <= timezone.now():
            self.add_error("schedule_end", "the end has passed: no run time would be left")
        return cleaned


@admin.register(Export)
class ExportAdmin(admin.ModelAdmin):
    """Definitions as the wizard sees them: editable only while a draft, only by who may
    change it, and saved through `actions.save_draft` after the model's own checks (the
    form runs `Export.full_clean`), so an unsafe template or a bad format can't get in.
    State (status, schedule position, watermark) only moves through the actions."""

    list_display = [
        "name",
        "sandbox",
        "owner",
        "dataset",
        "export_type",
        "managed",
        "file_format",
        "status",
        "created_at",
    ]
    list_filter = ["sandbox__organisation", "status", "export_type", "file_format"]
    search_fields = ["name"]
    # The definition's plain fields; what needs the wizard (dataset, columns, filters,
    # destination, schedule) stays read-only.
    EDITABLE = ["name", *FileStepForm.Meta.fields, "folder_template", "report_recipients", "notify_on_success"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        # The wizard creates standard exports; platform staff add custom ones here.
        return request.user.is_superuser

    def get_form(self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any) -> Any:
        if obj is None:
            kwargs["form"] = type("BoundCustomExportForm", (CustomExportForm,), {"user": request.user})
            kwargs["fields"] = CustomExportForm.Meta.fields
        return super().get_form(request, obj, change, **kwargs)

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        if obj is None:
            return []
        return [field.name for field in Export._meta.concrete_fields if field.name not in self.EDITABLE]

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        """Only drafts, only by who may change them: anything else is shown read-only."""
        if obj is not None:
            try:
                actions.check_editable(request.user, obj)
            except actions.ActionRefused:
                return False
        return super().has_change_permission(request, obj)

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        try:
            if not change:
                actions.create_custom_export(request.user, obj)
                return
            actions.save_draft(request.user, obj)
        except actions.ActionRefused as refusal:
            # Scheduled between the check above and this save: say so, loudly.
            self.message_user(request, f"Not saved: {refusal.message}", level=messages.ERROR)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # deleting takes the checks and the file clean-up of actions.delete


class HookCallInline(admin.TabularInline):
    model = HookCall
    extra = 0
    fields = readonly_fields = ("url", "event", "status", "attempts", "next_attempt_at", "delivered_at")
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class RunFileInline(admin.TabularInline):
    model = RunFile
    extra = 0
    readonly_fields = ["part", "name", "path", "size_bytes", "rows", "sha256"]
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Run)
class RunAdmin(admin.ModelAdmin):
    """Runs are records of what happened: read-only here; they change through the actions."""

    list_display = ["id", "export", "status", "trigger", "queued_at", "row_count", "error_code"]
    list_filter = ["status", "trigger", "error_code"]
    inlines = [RunFileInline, HookCallInline]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.action(description="Revoke the selected tokens")
def revoke_tokens(modeladmin, request, queryset):
    for token in queryset:
        token.revoke()


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    """Admins see everyone's tokens (never a secret: only hashes are stored) and can
    revoke them, e.g. when someone leaves; tokens are created on the profile page."""

    list_display = ["name", "user", "sandbox", "hint", "created_at", "last_used_at", "revoked_at"]
    list_filter = ["revoked_at"]
    search_fields = ["name", "user__username"]
    fields = ("name", "user", "sandbox", "hint", "created_at", "last_used_at", "revoked_at")
    readonly_fields = fields
    actions = [revoke_tokens]

    def has_add_permission(self, request):
        return False
