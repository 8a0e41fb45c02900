from collections.abc import Sequence
from typing import ClassVar

from django.contrib import admin

from orgs.models import AuditEntry, Membership, Organisation, Sandbox


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 1
    autocomplete_fields = ("user",)
    fields = ("user", "role", "created_at")
    readonly_fields = ("created_at",)


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
    inlines = (SandboxInline, MembershipInline)

    def has_delete_permission(self, request, obj=None) -> bool:
        return False  # its exports, runs and files go with nothing: never deleted here


@admin.register(AuditEntry)
class AuditEntryAdmin(admin.ModelAdmin):
    """What platform staff did in organisations: read-only, kept."""

    list_display = ("at", "username", "action", "organisation", "sandbox", "path")
    list_filter = ("action", "organisation")
    search_fields = ("username", "path")

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
