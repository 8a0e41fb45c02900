from exports.permissions import MANAGE_MEMBERS, can_create, can_manage_connectors, has


def permissions(request) -> dict:
    """What the navigation may offer the current user, and where they are: the header
    shows the organisation and sandbox, with a switcher to the others they may enter."""
    user = getattr(request, "user", None)
    scope = getattr(request, "sandbox_scope", None)
    if user is None or not user.is_authenticated or scope is None:
        return {}
    from orgs.scope import sandboxes_of  # noqa: PLC0415 - orgs.scope imports the models

    return {
        "scope": scope,
        "switch_to": sandboxes_of(user),
        "user_can_create": can_create(user, scope.sandbox_id),
        "user_can_manage_destinations": can_manage_connectors(user, scope.sandbox_id),
        "user_can_manage_members": has(user, scope.sandbox_id, MANAGE_MEMBERS),
        "user_role": scope.role,
    }
