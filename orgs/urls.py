from django.urls import path

from orgs import views

urlpatterns = [
    path("members/", views.members_list, name="members-list"),
    path("members/<int:membership_id>/role/", views.members_role, name="members-role"),
    path("members/<int:membership_id>/remove/", views.members_remove, name="members-remove"),
]
