"""Who may do what: the one place that decides.

A user's role comes from their membership of the organisation an object belongs to
(`orgs.models.Membership`): the same person may be an admin in one organisation and a
viewer in another, and is nothing at all in the organisations they don't belong to.
Superusers (platform staff) are admins everywhere.

Each role grants permissions named like the platforms we are measured against:

- viewers view datasets and destinations (and exports and their reports);
- marketers also create and launch exports, manage and launch their own, download
  their files, and use the sandbox's destinations;
- admins also manage destinations, manage members, and change anyone's exports.

Staff members may also download finished files in the organisations they belong to.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypeAlias

if TYPE_CHECKING:
    from django.contrib.auth.models import AnonymousUser, User

# Whoever acts: a signed-in user, a token's owner, or (on pages) an anonymous visitor.
Actor: TypeAlias = "User | AnonymousUser"

VIEWER, MARKETER, ADMIN = "viewer", "marketer", "admin"
ROLES = (VIEWER, MARKETER, ADMIN)

VIEW_DATASETS = "view datasets"
VIEW_DESTINATIONS = "view destinations"
MANAGE_DESTINATIONS = "manage destinations"
CREATE_AND_LAUNCH = "create and launch exports"
DOWNLOAD_FILES = "download files"
MANAGE_MEMBERS = "manage members"

GRANTS: dict[str, frozenset[str]] = {
    VIEWER: frozenset({VIEW_DATASETS, VIEW_DESTINATIONS}),
    MARKETER: frozenset({VIEW_DATASETS, VIEW_DESTINATIONS, CREATE_AND_LAUNCH, DOWNLOAD_FILES}),
    ADMIN: frozenset(
        {VIEW_DATASETS, VIEW_DESTINATIONS, MANAGE_DESTINATIONS, CREATE_AND_LAUNCH, DOWNLOAD_FILES, MANAGE_MEMBERS}
    ),
}


def _roles_by_sandbox(user: Actor) -> dict[int, str]:
    """The user's role in each sandbox of the organisations they belong to: one query
    per request, kept on the request's user object."""
    cached: dict[int, str] | None = getattr(user, "_roles_by_sandbox", None)
    if cached is None:
        from orgs.models import Membership  # noqa: PLC0415 - imported while apps load

        rows = Membership.objects.filter(user_id=user.pk or 0, organisation__sandboxes__isnull=False)
        cached = dict(rows.values_list("organisation__sandboxes__id", "role"))
        setattr(user, "_roles_by_sandbox", cached)  # noqa: B010 - a cache on the request's user object
    return cached


def role_in(user: Actor, sandbox_id: int | None) -> str | None:
    """The user's role where `sandbox_id` is; None: they don't belong there."""
    if not user.is_authenticated or sandbox_id is None:
        return None
    if user.is_superuser:
        return ADMIN
    return _roles_by_sandbox(user).get(sandbox_id)


def has(user: Actor, sandbox_id: int | None, permission: str) -> bool:
    role = role_in(user, sandbox_id)
    return role is not None and permission in GRANTS[role]


def is_member(user: Actor, sandbox_id: int | None) -> bool:
    """They may enter the sandbox and see what is in it (superusers: anywhere)."""
    return role_in(user, sandbox_id) is not None


def is_admin(user: Actor, sandbox_id: int | None) -> bool:
    return role_in(user, sandbox_id) == ADMIN


def can_create(user: Actor, sandbox_id: int | None) -> bool:
    return has(user, sandbox_id, CREATE_AND_LAUNCH)


def can_change(user: Actor, export: Any) -> bool:
    """Edit, launch, copy, delete, unschedule, cancel and relaunch."""
    role = role_in(user, export.sandbox_id)
    return role == ADMIN or (role == MARKETER and export.owner_id == user.pk)


def can_download(user: Actor, export: Any) -> bool:
    if export.managed and not user.is_superuser:
        return False  # a custom export's files are for the client's systems (exports/actions.py)
    return can_change(user, export) or (user.is_staff and is_member(user, export.sandbox_id))


def can_use_connector(user: Actor, connector: Any, sandbox_id: int | None) -> bool:
    """Choose `connector` as an export's destination in `sandbox_id`: only its own."""
    return connector.usable_in(sandbox_id) and has(user, sandbox_id, CREATE_AND_LAUNCH)


def can_manage_connectors(user: Actor, sandbox_id: int | None) -> bool:
    """Add, edit, delete and test destinations: the organisation's admins."""
    return has(user, sandbox_id, MANAGE_DESTINATIONS)


def can_change_connector(user: Actor, connector: Any) -> bool:
    """Edit, delete, test and (for its owner) rotate keys of a connector."""
    return can_manage_connectors(user, connector.sandbox_id)


def can_download_key(user: Actor, connector: Any) -> bool:
    """A hosted SFTP private key goes to the connector's owner and nobody else, admins
    included; and only while they still belong to its organisation."""
    return user.is_authenticated and connector.owner_id == user.pk and is_member(user, connector.sandbox_id)
