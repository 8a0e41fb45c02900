"""Who may do what. Three roles, as Django groups created by a migration:

- viewers see everything and change nothing;
- marketers create exports and manage, launch and download their own;
- admins (the group, or superusers) may do everything, other people's exports included.

A user in no group is a viewer. Staff members may also download finished files.
"""

from __future__ import annotations

VIEWERS, MARKETERS, ADMINS = "viewers", "marketers", "admins"
ROLES = (VIEWERS, MARKETERS, ADMINS)


def _groups(user) -> set[str]:
    if not hasattr(user, "_export_groups"):
        user._export_groups = set(user.groups.values_list("name", flat=True)) if user.is_authenticated else set()
    return user._export_groups


def is_admin(user) -> bool:
    return user.is_authenticated and (user.is_superuser or ADMINS in _groups(user))


def is_marketer(user) -> bool:
    return user.is_authenticated and MARKETERS in _groups(user)


def role(user) -> str:
    return ADMINS if is_admin(user) else MARKETERS if is_marketer(user) else VIEWERS


def can_create(user) -> bool:
    return is_admin(user) or is_marketer(user)


def can_change(user, export) -> bool:
    """Edit, launch, copy, delete, unschedule, cancel and relaunch."""
    return is_admin(user) or (is_marketer(user) and export.owner_id == user.id)


def can_download(user, export) -> bool:
    return can_change(user, export) or (user.is_authenticated and user.is_staff)


def can_change_connector(user, connector) -> bool:
    """Edit, delete, test and (for its owner) rotate keys of a connector."""
    return is_admin(user) or (is_marketer(user) and connector.owner_id == user.id)


def can_download_key(user, connector) -> bool:
    """A hosted SFTP private key goes to the connector's owner and nobody else, admins included."""
    return user.is_authenticated and connector.owner_id == user.id
