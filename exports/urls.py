from django.urls import path

from exports import views

urlpatterns = [
    path("exports/", views.exports_list, name="exports-list"),
    path("exports/new/", views.exports_new, name="exports-new"),
    path("exports/columns/", views.exports_columns, name="exports-columns"),
    path("exports/<uuid:export_id>/", views.exports_detail, name="exports-detail"),
    path("exports/<uuid:export_id>/launch/", views.exports_launch, name="exports-launch"),
    path("exports/<uuid:export_id>/edit/", views.exports_edit, name="exports-edit"),
    path("exports/<uuid:export_id>/wizard/<slug:step>/", views.exports_wizard, name="exports-wizard"),
    path("exports/<uuid:export_id>/folder-preview/", views.exports_folder_preview, name="exports-folder-preview"),
    path("exports/<uuid:export_id>/copy/", views.exports_copy, name="exports-copy"),
    path("exports/<uuid:export_id>/delete/", views.exports_delete, name="exports-delete"),
    path("exports/<uuid:export_id>/unschedule/", views.exports_unschedule, name="exports-unschedule"),
    path("exports/<uuid:export_id>/definition/", views.exports_definition, name="exports-definition"),
    path("exports/<uuid:export_id>/schedule/", views.exports_schedule, name="exports-schedule"),
    path("exports/<uuid:export_id>/run-now/", views.exports_run_now, name="exports-run-now"),
    path("exports/<uuid:export_id>/reset-watermark/", views.exports_reset_watermark, name="exports-reset-watermark"),
    path("exports/<uuid:export_id>/schedule-preview/", views.exports_schedule_preview, name="exports-schedule-preview"),
    path("profile/", views.profile, name="profile"),
    path("profile/tokens/", views.tokens_create, name="tokens-create"),
    path("profile/tokens/<int:token_id>/revoke/", views.tokens_revoke, name="tokens-revoke"),
    path("runs/<uuid:run_id>/", views.runs_detail, name="runs-detail"),
    path("runs/<uuid:run_id>/download/", views.runs_download, name="runs-download"),
    path("runs/<uuid:run_id>/cancel/", views.runs_cancel, name="runs-cancel"),
    path("runs/<uuid:run_id>/relaunch/", views.runs_relaunch, name="runs-relaunch"),
    path("sources/", views.sources_list, name="sources-list"),
    path("sources/<int:database_id>/refresh/", views.sources_refresh, name="sources-refresh"),
]
