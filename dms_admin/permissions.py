"""Three roles, as groups (created by a migration): viewer reads, operator also acknowledges,
switches over, sets maintenance and reads the audit log, admin also changes configuration. Anyone
else is refused, even for reads (DESIGN §4.7: closed by default)."""

from rest_framework.permissions import SAFE_METHODS, BasePermission

VIEWER, OPERATOR, ADMIN = "viewer", "operator", "admin"
RANK = {VIEWER: 1, OPERATOR: 2, ADMIN: 3}


def role_rank(user) -> int:
    if not user or not user.is_authenticated or not user.is_active:
        return 0
    if user.is_superuser:
        return RANK[ADMIN]
    cached = getattr(user, "_dms_role_rank", None)
    if cached is None:
        names = user.groups.values_list("name", flat=True)
        cached = max((RANK.get(name, 0) for name in names), default=0)
        user._dms_role_rank = cached
    return cached


def has_role(user, role: str) -> bool:
    return role_rank(user) >= RANK[role]


class RolePermission(BasePermission):
    """Reads need viewer; writes need admin unless the view names another role for an action
    (`operator_actions = {"acknowledge", ...}`)."""

    def has_permission(self, request, view) -> bool:
        if request.method in SAFE_METHODS:
            return has_role(request.user, VIEWER)
        if getattr(view, "action", None) in getattr(view, "operator_actions", ()):
            return has_role(request.user, OPERATOR)
        return has_role(request.user, ADMIN)
