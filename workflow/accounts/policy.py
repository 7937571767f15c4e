"""Who may do what: every role check in the app goes through this module.

Views call `require(user, permission)` or `allowed(user, permission)`; nothing else
looks at a user's roles directly, so the whole access policy can be read (and tested)
here in one place.
"""

from __future__ import annotations

from models import Role, User
from workflow.errors import NotAllowed

# permission -> roles holding it
PERMISSIONS: dict[str, frozenset[str]] = {
    "admin.manage": frozenset({Role.ADMIN}),
    "audit.view": frozenset({Role.AUDIT_LEAD}),
    "audit.export": frozenset({Role.AUDIT_LEAD}),
    "referral.raise": frozenset({Role.REFERRER}),
    "referral.list": frozenset(
        {Role.REFERRER, Role.SPECIALIST, Role.AUDIT_LEAD, Role.ADMIN, Role.DUTY_MANAGER}
    ),
    "worklist.view": frozenset({Role.SPECIALIST, Role.DUTY_MANAGER}),
    # The hub's on-call names and phone numbers, on a referral page the user may see.
    "oncall.numbers": frozenset({Role.REFERRER, Role.SPECIALIST, Role.DUTY_MANAGER}),
    "pager.inbox": frozenset({Role.REFERRER, Role.SPECIALIST, Role.DUTY_MANAGER, Role.ADMIN}),
}


def allowed(user: User | None, permission: str) -> bool:
    """True when ``user`` holds a role granting ``permission``.

    Raises KeyError for a permission this module does not define (a typo must not
    silently deny or allow).
    """
    roles = PERMISSIONS[permission]
    if user is None or not getattr(user, "is_authenticated", False) or not user.active:
        return False
    return bool(user.roles & roles)


def require(user: User | None, permission: str) -> None:
    """Raise NotAllowed unless ``user`` holds ``permission``."""
    if not allowed(user, permission):
        raise NotAllowed(f"your role does not allow {permission}")
