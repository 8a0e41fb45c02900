from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path, re_path
from django.views.generic import RedirectView

from exports.api.endpoints import api
from exports.api.views import unknown_endpoint

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="exports-list", permanent=False)),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("", include("exports.urls")),
    path("", include("connectors.urls")),
    path("api/v1/", api.urls),
    re_path(r"^api/", unknown_endpoint),
    path("admin/", admin.site.urls),
    path("django-rq/", include("django_rq.urls")),
]
