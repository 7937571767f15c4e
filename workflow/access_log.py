"""Writing the access log: one row for each view, action, refusal and login."""

from __future__ import annotations

from sqlalchemy import update

from extensions import db
from models import AccessLog, Referral, User
from models.types import utcnow


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
        at=utcnow(),
    )
    db.session.add(row)
    if action == "image.view" and outcome == "ok" and referral_id is not None:
        # The audit milestone "first image viewed", kept on the referral.
        db.session.execute(
            update(Referral)
            .where(Referral.id == referral_id, Referral.first_image_viewed_at.is_(None))
            .values(first_image_viewed_at=row.at)
            .execution_options(synchronize_session=False))
    if commit:
        db.session.commit()
    return row
