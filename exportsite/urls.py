from csp.decorators import csp_exempt
from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.urls import include, path, re_path
from django.views.generic import RedirectView
from django_rq import urls as rq_urls

from exports.api.endpoints import api
from exports.api.views import unknown_endpoint
from exports.health import healthz, metrics


def _superusers_only(view):
    """The django-rq dashboard can delete and requeue jobs: superusers only, not staff."""

    @csp_exempt()  # its templates have inline scripts; superusers only
    @login_required
    def guarded(request, *args, **kwargs):
        if not request.user.is_superuser:
            raise PermissionDenied("the queue dashboard is for superusers")
        return view(request, *args, **kwargs)

    return guarded


_RQ_PATTERNS = rq_urls.get_api_urlpatterns() + rq_urls.get_admin_urlpatterns(view_wrapper=_superusers_only)


urlpatterns = [
    path("", RedirectView.as_view(pattern_name="exports-list", permanent=False)),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("", include("exports.urls")),
    path("", include("connectors.urls")),
    path("", include("orgs.urls")),
    path("api/v1/", api.urls),
    re_path(r"^api/", unknown_endpoint),
    path("admin/", admin.site.urls),
    path("healthz", healthz, name="healthz"),
    path("metrics", metrics, name="metrics"),
    path("django-rq/", include((_RQ_PATTERNS, "django_rq"))),
]
