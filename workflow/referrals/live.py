"""What a live page needs to know to stay current: a mark of "what you have seen".

A referral page's mark is the id of its newest referral event (the global
``referral_events.id``, so it also names the event on the chain) and a short signature
of its paging card, decision records, message receipts and who else is viewing it,
which change without an event (a delivery reported, a PDF made, a message read, a
colleague opening the page or leaving it). A list page's mark is the
newest event id among the referrals its user may see. The stream (views/live.py)
compares marks with cheap indexed queries; nothing here holds a transaction open.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Select, case, func, or_, select

from extensions import db
from models import DecisionRecord, Delivery, Page, Referral, ReferralEvent, User
from workflow.referrals import access, receipts, viewers


@dataclass(frozen=True)
class Mark:
    event_id: int  # newest referral event seen (0: none)
    paging: str = ""  # signature of the paging card and decision records ("": a list)

    def differs(self, seen: Mark) -> bool:
        return self.event_id > seen.event_id or (self.paging and self.paging != seen.paging)


def referral_mark(referral_id: int, reader_id: int, at: datetime) -> Mark:
    """The referral's newest event id and its paging signature (six indexed reads) as
    ``reader_id`` sees it at ``at``: the paging card, the decision records, the thread's
    receipts and the others viewing it now (so their arrival, and their leaving once
    viewers.VIEWING has passed, changes the mark). Raises nothing."""
    newest = db.session.scalar(select(func.max(ReferralEvent.id))
                               .where(ReferralEvent.referral_id == referral_id)) or 0
    pages = db.session.execute(
        select(func.count(Page.id), func.count(Page.claimed_at),
               func.max(Page.due_at), func.count(case((Page.status == "cancelled", 1))))
        .where(Page.referral_id == referral_id)).one()
    deliveries = db.session.execute(
        select(func.count(Delivery.id), func.max(Delivery.updated_at),
               func.count(Delivery.link_used_at))
        .where(Delivery.referral_id == referral_id)).one()
    records = db.session.execute(
        select(func.count(DecisionRecord.id),
               func.count(case((DecisionRecord.status == "ready", 1))))
        .where(DecisionRecord.referral_id == referral_id)).one()
    raw = repr((tuple(pages), tuple(deliveries), tuple(records),
                receipts.signature(referral_id),
                viewers.others_viewing(referral_id, reader_id, at)))
    return Mark(newest, hashlib.sha256(raw.encode()).hexdigest()[:16])


def _list_referrals(user: User, which: str) -> Select:
    """The referrals a list page shows ("worklist" or "mine"), as a select of ids."""
    if which == "mine":
        return select(Referral.id).where(Referral.referring_hospital_id == user.hospital_id)
    visible = access.visible(user, select(Referral.id))
    return select(Referral.id).where(or_(Referral.id.in_(visible),
                                         Referral.assigned_specialist_id == user.id))


def list_mark(user: User, which: str, after: int = 0) -> Mark:
    """The newest event id after ``after`` among the list's referrals (``after`` when
    none is newer): an ``id > after`` read on the primary key."""
    newest = db.session.scalar(
        select(func.max(ReferralEvent.id))
        .where(ReferralEvent.id > after,
               ReferralEvent.referral_id.in_(_list_referrals(user, which))))
    return Mark(newest or after)

