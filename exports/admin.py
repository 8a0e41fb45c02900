from django.contrib import admin

from exports.models import ApiToken, Database, Dataset, Export, Run, RunFile


@admin.register(Database)
class DatabaseAdmin(admin.ModelAdmin):
    list_display = ["name", "refreshed_at", "refresh_error"]


@admin.register(Dataset)
class DatasetAdmin(admin.ModelAdmin):
    list_display = ["name", "database", "kind", "data_type", "estimated_rows", "missing_since"]
    list_filter = ["database", "data_type", "kind"]
    list_editable = ["data_type"]


@admin.register(Export)
class ExportAdmin(admin.ModelAdmin):
    list_display = ["name", "owner", "dataset", "export_type", "file_format", "status", "created_at"]
    list_filter = ["status", "export_type", "file_format"]
    search_fields = ["name"]


class RunFileInline(admin.TabularInline):
    model = RunFile
    extra = 0
    readonly_fields = ["part", "name", "path", "size_bytes", "rows", "sha256"]


@admin.register(Run)
class RunAdmin(admin.ModelAdmin):
    list_display = ["id", "export", "status", "trigger", "queued_at", "row_count", "error_code"]
    list_filter = ["status", "trigger", "error_code"]
    inlines = [RunFileInline]


@admin.action(description="Revoke the selected tokens")
def revoke_tokens(modeladmin, request, queryset):
    for token in queryset:
        token.revoke()


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    """Admins see everyone's tokens (never a secret: only hashes are stored) and can
    revoke them, e.g. when someone leaves; tokens are created on the profile page."""

    list_display = ["name", "user", "hint", "created_at", "last_used_at", "revoked_at"]
    list_filter = ["revoked_at"]
    search_fields = ["name", "user__username"]
    fields = ["name", "user", "hint", "created_at", "last_used_at", "revoked_at"]
    readonly_fields = fields
    actions = [revoke_tokens]

    def has_add_permission(self, request):
        return False
