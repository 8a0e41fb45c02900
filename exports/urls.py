from django.urls import path

from exports.views import hooks, listing, profile, runs, sources, wizard

urlpatterns = [
    path("exports/", listing.exports_list, name="exports-list"),
    path("exports/new/", wizard.exports_new, name="exports-new"),
    path("exports/columns/", wizard.exports_columns, name="exports-columns"),
    path("exports/filter-row/", wizard.exports_filter_row, name="exports-filter-row"),
    path("exports/<uuid:export_id>/", listing.exports_detail, name="exports-detail"),
    path("exports/<uuid:export_id>/launch/", listing.exports_launch, name="exports-launch"),
    path("exports/<uuid:export_id>/edit/", wizard.exports_edit, name="exports-edit"),
    path("exports/<uuid:export_id>/wizard/<slug:step>/", wizard.exports_wizard, name="exports-wizard"),
    path("exports/<uuid:export_id>/folder-preview/", wizard.exports_folder_preview, name="exports-folder-preview"),
    path("exports/<uuid:export_id>/copy/", listing.exports_copy, name="exports-copy"),
    path("exports/<uuid:export_id>/copy-to-sandbox/", listing.exports_copy_to_sandbox, name="exports-copy-to-sandbox"),
    path("exports/<uuid:export_id>/delete/", listing.exports_delete, name="exports-delete"),
    path("exports/<uuid:export_id>/unschedule/", listing.exports_unschedule, name="exports-unschedule"),
    path("exports/<uuid:export_id>/definition/", listing.exports_definition, name="exports-definition"),
    path("exports/<uuid:export_id>/schedule/", listing.exports_schedule, name="exports-schedule"),
    path("exports/<uuid:export_id>/run-now/", listing.exports_run_now, name="exports-run-now"),
    path("exports/<uuid:export_id>/reset-watermark/", listing.exports_reset_watermark, name="exports-reset-watermark"),
    path("exports/<uuid:export_id>/hooks/", hooks.exports_hooks_add, name="exports-hooks-add"),
    path(
        "exports/<uuid:export_id>/hooks/<int:hook_id>/remove/", hooks.exports_hooks_remove, name="exports-hooks-remove"
    ),
    path(
        "exports/<uuid:export_id>/schedule-preview/", wizard.exports_schedule_preview, name="exports-schedule-preview"
    ),
    path("profile/", profile.profile, name="profile"),
    path("profile/tokens/", profile.tokens_create, name="tokens-create"),
    path("profile/tokens/<int:token_id>/revoke/", profile.tokens_revoke, name="tokens-revoke"),
    path("runs/<uuid:run_id>/", runs.runs_detail, name="runs-detail"),
    path("runs/<uuid:run_id>/download/", runs.runs_download, name="runs-download"),
    path("runs/<uuid:run_id>/cancel/", runs.runs_cancel, name="runs-cancel"),
    path("runs/<uuid:run_id>/relaunch/", runs.runs_relaunch, name="runs-relaunch"),
    path(
        "runs/<uuid:run_id>/hooks/<uuid:call_id>/send-again/", hooks.runs_hooks_send_again, name="runs-hooks-send-again"
    ),
    path("sources/", sources.sources_list, name="sources-list"),
    path("sources/new/", sources.sources_new, name="sources-new"),
    path("sources/<int:database_id>/edit/", sources.sources_edit, name="sources-edit"),
    path("sources/<int:database_id>/delete/", sources.sources_delete, name="sources-delete"),
    path("sources/<int:database_id>/refresh/", sources.sources_refresh, name="sources-refresh"),
]
