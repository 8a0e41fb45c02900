import shutil

from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.db.models import Count, F, Q
from django.template.response import TemplateResponse

from connectors.models import Connector, SftpLogin
from connectors.storage import write_generation, zone_lock, zone_usage


@admin.register(SftpLogin)
class SftpLoginAdmin(admin.ModelAdmin):
    """Every hosted SFTP login ever given, with its owner: a login whose owner is gone, or
    who has no hosted connector left, still has its zone (and files) on disk, and no key
    opens it. Admins empty such zones here, after a confirmation."""

    list_display = ("login", "owner", "sandbox", "hosted_connectors", "zone_size", "created_at")
    list_filter = ("sandbox__organisation",)
    search_fields = ("login", "owner__username")
    readonly_fields = ("login", "owner", "sandbox", "created_at")
    actions = ("empty_zones",)

    def get_queryset(self, request):
        # The owner's hosted connectors in the login's sandbox: the ones whose keys open it.
        hosted = Q(owner__connectors__kind=Connector.Kind.HOSTED_SFTP, owner__connectors__sandbox=F("sandbox"))
        return super().get_queryset(request).annotate(hosted=Count("owner__connectors", filter=hosted))

    @admin.display(description="hosted connectors", ordering="hosted")
    def hosted_connectors(self, login: SftpLogin) -> int:
        return login.hosted  # type: ignore[attr-defined]

    @admin.display(description="files in the zone")
    def zone_size(self, login: SftpLogin) -> str:
        zone = login.zone()
        return f"{zone_usage(zone):,} bytes" if zone.exists() else "no zone on disk"

    @admin.action(description="Empty the zones of the selected logins that have no hosted connector")
    def empty_zones(self, request, queryset):
        orphaned = [login for login in queryset if not login.hosted]
        kept = len(queryset) - len(orphaned)
        if "confirm" not in request.POST:
            return TemplateResponse(
                request,
                "admin/connectors/empty_zones.html",
                {
                    **self.admin_site.each_context(request),
                    "title": "Empty hosted SFTP zones?",
                    "logins": [(login, self.zone_size(login)) for login in orphaned],
                    "kept": kept,
                    "queryset": queryset,
                    "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
                    "opts": self.model._meta,
                },
            )
        for login in orphaned:
            with zone_lock(login.login) as lock:  # no delivery writes meanwhile
                shutil.rmtree(login.zone(), ignore_errors=True)
                write_generation(lock)
        messages.success(request, f"Emptied {len(orphaned)} zone(s); the logins stay reserved.")
        if kept:
            messages.warning(request, f"Left {kept} zone(s) alone: their owners still have hosted connectors.")
        return None

    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False  # a login is never freed for someone else
