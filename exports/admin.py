from django.contrib import admin

from exports.models import Database, Dataset, Export, Run, RunFile


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
