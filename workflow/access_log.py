"""Writing the access log: one row for each view, action, refusal and login."""

from __future__ import annotations

from extensions import db
from models import AccessLog, User


def record(
    action: str,
    outcome: str,
    *,
    user: User | None = None,
    email: str = "",
    address: str = "",
    referral_id: int | None = None,
    detail: str = "",
    commit: bool = True,
) -> AccessLog:
    """Append one access-log row (committed unless ``commit`` is False).

    ``outcome`` is ok, denied or failure. Never raises for the caller's data: long
    text is cut to the column size rather than failing the action being logged.
    """
    if outcome not in {"ok", "denied", "failure"}:
        raise ValueError(f"unknown outcome {outcome!r}")
    authenticated = user is not None and getattr(user, "is_authenticated", False)
    row = AccessLog(
        user_id=user.id if authenticated else None,
        email=(user.email if authenticated else email)[:254],
        role=",".join(sorted(user.roles)) if authenticated else "",
        address=(address or "")[:64],
        action=action[:64],
        outcome=outcome,
        referral_id=referral_id,
        detail=detail[:500],
    )
    db.session.add(row)
    if commit:
        db.session.commit()
    return row
