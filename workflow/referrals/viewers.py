"""Who has a referral's page open now: its live stream notes the viewer every few
seconds (views/live.py), and the page names those seen in the last VIEWING seconds
as "also viewing now". One small row per (referral, person), overwritten; no history
(the access log keeps who opened what)."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select

from extensions import db
from models import ReferralViewer, User

VIEWING = timedelta(seconds=30)  # seen this recently: still viewing
NOTE_EVERY = timedelta(seconds=10)  # a stream ticks every second; write a third as often


def note(referral_id: int, user_id: int, at: datetime) -> None:
    """``user_id`` has the referral's live page open at ``at``. Writes (and commits) at
    most every NOTE_EVERY per person and referral; otherwise one primary-key read."""
    row = db.session.get(ReferralViewer, (referral_id, user_id))
    if row is not None and at - row.seen_at < NOTE_EVERY:
        return
    if row is None:
        db.session.add(ReferralViewer(referral_id=referral_id, user_id=user_id, seen_at=at))
    else:
        row.seen_at = at
    db.session.commit()


def others_viewing(referral_id: int, user_id: int, at: datetime) -> list[str]:
    """The names of everyone but ``user_id`` whose stream of the referral was seen in
    the VIEWING seconds before ``at``, by name."""
    return list(db.session.scalars(
        select(User.name).join(ReferralViewer, ReferralViewer.user_id == User.id)
        .where(ReferralViewer.referral_id == referral_id, ReferralViewer.user_id != user_id,
               ReferralViewer.seen_at > at - VIEWING, ReferralViewer.seen_at <= at)
        .order_by(User.name)))
