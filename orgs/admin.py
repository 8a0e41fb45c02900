from collections.abc import Sequence
from typing import ClassVar

from django.contrib import admin

from orgs.models import Organisation, Sandbox


class SandboxInline(admin.TabularInline):
    model = Sandbox
    extra = 0
    fields = ("name", "slug", "kind", "created_at")
    readonly_fields = ("created_at",)


@admin.register(Organisation)
class OrganisationAdmin(admin.ModelAdmin):
    """Platform staff manage organisations; each starts with its production sandbox."""

    list_display = ("name", "slug", "created_at")
    search_fields = ("name", "slug")
    prepopulated_fields: ClassVar[dict[str, Sequence[str]]] = {"slug": ("name",)}
    inlines = (SandboxInline,)

    def has_delete_permission(self, request, obj=None) -> bool:
        return False  # its exports, runs and files go with nothing: never deleted here
