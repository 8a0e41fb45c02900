"""Managing an organisation's members: the one place for its rules, which the Members
page calls (platform staff also use the admin). Only the organisation's admins manage
members (`exports.permissions.MANAGE_MEMBERS`), and an organisation always keeps at
least one admin, so nobody can lock it out by mistake."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.db import connection, transaction

from exports.actions import FORBIDDEN, NOT_FOUND, VALIDATION_FAILED, ActionRefused
from exports.permissions import MANAGE_MEMBERS, Actor, has
from orgs.models import Membership, Organisation
from orgs.scope import Scope

LAST_ADMIN = "LAST_ADMIN"


def require_manage(user: Actor, scope: Scope) -> None:
    if not has(user, scope.sandbox_id, MANAGE_MEMBERS):
        raise ActionRefused(FORBIDDEN, "only the organisation's admins manage its members")


def members_of(organisation: Organisation):
    return Membership.objects.filter(organisation=organisation).select_related("user").order_by("user__username")


def find_membership(scope: Scope, membership_id: int) -> Membership:
    membership = members_of(scope.organisation).filter(id=membership_id).first()
    if membership is None:
        raise ActionRefused(NOT_FOUND, "no such member")
    return membership


def _check_role(role: str) -> None:
    if role not in Membership.Role.values:
        choices = ", ".join(Membership.Role.values)
        raise ActionRefused(
            VALIDATION_FAILED, f"role: choose one of {choices}", fields={"role": [f"One of {choices}."]}
        )


def add_member(user: Actor, scope: Scope, username: str, role: str) -> Membership:
    """Give an existing account a role in the organisation."""
    require_manage(user, scope)
    _check_role(role)
    account = get_user_model().objects.filter(username=username.strip(), is_active=True).first()
    if account is None:
        raise ActionRefused(
            VALIDATION_FAILED,
            f"there is no account named {username.strip()!r}: platform staff create accounts",
            fields={"username": ["No such account."]},
        )
    with transaction.atomic():
        membership, created = Membership.objects.get_or_create(
            user=account, organisation=scope.organisation, defaults={"role": role}
        )
    if not created:
        raise ActionRefused(
            VALIDATION_FAILED,
            f"{account.get_username()} is a member already, a {membership.get_role_display().lower()}: "
            "change their role instead",
            fields={"username": ["A member already."]},
        )
    return membership


def _one_change_at_a_time(scope: Scope) -> None:
    """Two admins demoting each other at once must not leave none (PostgreSQL; SQLite
    serialises writers anyway)."""
    if connection.features.has_select_for_update:
        Organisation.objects.select_for_update().filter(pk=scope.organisation.pk).first()


def _keep_an_admin(membership: Membership) -> None:
    others = Membership.objects.filter(organisation=membership.organisation, role=Membership.Role.ADMIN).exclude(
        id=membership.id
    )
    if membership.role == Membership.Role.ADMIN and not others.exists():
        raise ActionRefused(LAST_ADMIN, "an organisation keeps at least one admin: make someone else admin first")


def change_role(user: Actor, scope: Scope, membership_id: int, role: str) -> Membership:
    with transaction.atomic():
        membership = find_membership(scope, membership_id)  # first: another's is a 404, whoever asks
        require_manage(user, scope)
        _one_change_at_a_time(scope)
        _check_role(role)
        if role != Membership.Role.ADMIN:
            _keep_an_admin(membership)
        membership.role = role
        membership.save(update_fields=["role"])
    return membership


def remove_member(user: Actor, scope: Scope, membership_id: int) -> Membership:
    """They lose every access to the organisation at once: pages, and their API tokens
    of its sandboxes (a token acts as its owner, who is no member any more)."""
    with transaction.atomic():
        membership = find_membership(scope, membership_id)
        require_manage(user, scope)
        _one_change_at_a_time(scope)
        _keep_an_admin(membership)
        membership.delete()
    return membership
