from django.urls import path

from exports import views

urlpatterns = [
    path("exports/", views.exports_list, name="exports-list"),
    path("exports/new/", views.exports_new, name="exports-new"),
    path("exports/columns/", views.exports_columns, name="exports-columns"),
    path("exports/<uuid:export_id>/", views.exports_detail, name="exports-detail"),
    path("exports/<uuid:export_id>/launch/", views.exports_launch, name="exports-launch"),
    path("runs/<uuid:run_id>/", views.runs_detail, name="runs-detail"),
    path("runs/<uuid:run_id>/download/", views.runs_download, name="runs-download"),
    path("sources/", views.sources_list, name="sources-list"),
    path("sources/<int:database_id>/refresh/", views.sources_refresh, name="sources-refresh"),
]
