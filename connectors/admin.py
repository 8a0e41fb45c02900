from django.contrib import admin

from connectors.models import SftpLogin


@admin.register(SftpLogin)
class SftpLoginAdmin(admin.ModelAdmin):
    """Every hosted SFTP login ever given, with its owner: a login whose owner is gone, or
    who has no hosted connector left, still has its zone (and files) on disk."""

    list_display = ("login", "owner", "created_at")
    search_fields = ("login", "owner__username")
    readonly_fields = ("login", "owner", "created_at")

    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False  # a login is never freed for someone else
