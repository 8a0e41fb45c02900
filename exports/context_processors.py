from exports.permissions import can_create, role


def permissions(request) -> dict:
    """What the navigation may offer the current user."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    return {"user_can_create": can_create(user), "user_role": role(user)}
