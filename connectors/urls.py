from django.urls import path

from connectors import views

urlpatterns = [
    path("connectors/", views.connectors_list, name="connectors-list"),
    path("connectors/new/", views.connectors_new, name="connectors-new"),
    path("connectors/<uuid:connector_id>/", views.connectors_detail, name="connectors-detail"),
    path("connectors/<uuid:connector_id>/edit/", views.connectors_edit, name="connectors-edit"),
    path("connectors/<uuid:connector_id>/delete/", views.connectors_delete, name="connectors-delete"),
    path("connectors/<uuid:connector_id>/test/", views.connectors_test, name="connectors-test"),
    path(
        "connectors/<uuid:connector_id>/tests/<uuid:test_id>/",
        views.connectors_test_result,
        name="connectors-test-result",
    ),
    path("connectors/<uuid:connector_id>/host-key/", views.connectors_trust_host_key, name="connectors-trust-host-key"),
    path("connectors/<uuid:connector_id>/key/", views.connectors_key_download, name="connectors-key-download"),
    path("connectors/<uuid:connector_id>/key/rotate/", views.connectors_key_rotate, name="connectors-key-rotate"),
]
