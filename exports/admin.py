from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.http import HttpRequest

from exports import actions
from exports.forms import FileStepForm
from exports.models import ApiToken, Database, Dataset, Export, Run, RunFile


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


@admin.register(Dataset)
class DatasetAdmin(admin.ModelAdmin):
    list_display = ["name", "database", "kind", "data_type", "estimated_rows", "missing_since"]
    list_filter = ["database", "data_type", "kind"]
    list_editable = ["data_type"]


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
        return False  # the wizard creates exports

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
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
            actions.save_draft(request.user, obj)
        except actions.ActionRefused as refusal:
            # Scheduled between the check above and this save: say so, loudly.
            self.message_user(request, f"Not saved: {refusal.message}", level=messages.ERROR)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # deleting takes the checks and the file clean-up of actions.delete


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
    inlines = [RunFileInline]

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
