"""Who may do what. Three roles, as Django groups created by a migration:

- viewers see everything and change nothing;
- marketers create exports and manage, launch and download their own;
- admins (the group, or superusers) may do everything, other people's exports included.

A user in no group is a viewer. Staff members may also download finished files.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypeAlias

if TYPE_CHECKING:
    from django.contrib.auth.models import AnonymousUser, User

# Whoever acts: a signed-in user, a token's owner, or (on pages) an anonymous visitor.
Actor: TypeAlias = "User | AnonymousUser"

VIEWERS, MARKETERS, ADMINS = "viewers", "marketers", "admins"
ROLES = (VIEWERS, MARKETERS, ADMINS)


def _groups(user: Actor) -> set[str]:
    cached: set[str] | None = getattr(user, "_export_groups", None)
    if cached is None:
        cached = set(user.groups.values_list("name", flat=True)) if user.is_authenticated else set()
        setattr(user, "_export_groups", cached)  # noqa: B010 - a cache on the request's user object
    return cached


def is_admin(user: Actor) -> bool:
    return user.is_authenticated and (user.is_superuser or ADMINS in _groups(user))


def is_marketer(user: Actor) -> bool:
    return user.is_authenticated and MARKETERS in _groups(user)


def role(user: Actor) -> str:
    return ADMINS if is_admin(user) else MARKETERS if is_marketer(user) else VIEWERS


def can_create(user: Actor) -> bool:
    return is_admin(user) or is_marketer(user)


def can_change(user: Actor, export: Any) -> bool:
    """Edit, launch, copy, delete, unschedule, cancel and relaunch."""
    return is_admin(user) or (is_marketer(user) and export.owner_id == user.pk)


def can_download(user: Actor, export: Any) -> bool:
    return can_change(user, export) or (user.is_authenticated and user.is_staff)


def can_change_connector(user: Actor, connector: Any) -> bool:
    """Edit, delete, test and (for its owner) rotate keys of a connector."""
    return is_admin(user) or (is_marketer(user) and connector.owner_id == user.pk)


def can_download_key(user: Actor, connector: Any) -> bool:
    """A hosted SFTP private key goes to the connector's owner and nobody else, admins included."""
    return user.is_authenticated and connector.owner_id == user.pk
