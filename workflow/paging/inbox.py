"""The pager inbox: every page sent to one person, grouped by referral (newest first),
each group with the referral's reference and where it stands now.

Read-only; nothing here raises.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import selectinload

from extensions import db
from integrations.pager.base import FAILED
from models import Delivery, Referral, User
from workflow.referrals import labels


@dataclass(frozen=True)
class InboxLine:
    channel: str
    status: str
    failed: bool
    error: str
    at: datetime
    link: str


@dataclass(frozen=True)
class InboxGroup:
    referral_id: int
    reference: str
    state: str  # stored value, for the badge's colour
    state_label: str
    hospital: str
    text: str  # the newest page's message
    last_at: datetime
    lines: list[InboxLine]


def inbox(user: User, limit: int = 100) -> list[InboxGroup]:
    """The newest ``limit`` deliveries to ``user``, grouped by referral."""
    rows = db.session.scalars(
        select(Delivery).where(Delivery.recipient_id == user.id)
        .order_by(Delivery.id.desc()).limit(limit)).all()
    ids = {d.referral_id for d in rows}
    referrals = {r.id: r for r in db.session.scalars(
        select(Referral).where(Referral.id.in_(ids))
        .options(selectinload(Referral.referring_hospital)))} if ids else {}
    groups: dict[int, list[Delivery]] = {}
    for d in rows:
        groups.setdefault(d.referral_id, []).append(d)
    out = []
    for referral_id, deliveries in groups.items():
        referral = referrals[referral_id]
        out.append(InboxGroup(
            referral_id=referral_id, reference=referral.reference, state=referral.state,
            state_label=labels.state(referral.state),
            hospital=referral.referring_hospital.name, text=deliveries[0].text,
            last_at=deliveries[0].updated_at,
            lines=[InboxLine(
                channel=labels.channel(d.channel),
                status=labels.in_sentence(labels.delivery_status(d.channel, d.status)),
                failed=d.status in FAILED, error=d.error, at=d.updated_at, link=d.link)
                for d in deliveries]))
    return out
