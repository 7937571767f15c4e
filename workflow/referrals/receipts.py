"""Receipts for the referral's thread: for each message and each person involved, sent
(the message event), delivered (a page of theirs showed it) and read (it was on their
screen, as their page reports).

`address` writes one receipt per person involved when a message is recorded, inside the
message's transaction; `catch_up` gives someone who becomes involved later (the
specialist who accepts or is handed the referral, a further tier paged) a receipt for
each earlier message, so it counts as unread for them too. The referral page marks
what it shows as delivered (`mark_delivered`) and reports what was on the screen
(`mark_read`). Receipts are not state changes: no event, no version; each "read"
leaves an access-log row. The live mark (workflow/referrals/live.py) counts them, so
the author's open page updates.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select, update

from extensions import db
from models import Delivery, MessageReceipt, Referral, ReferralEvent, Role, User
from workflow import access_log
from workflow.times import now as utcnow

# The events that make up the thread (the referral page shows them as messages).
THREAD_EVENTS = ("message", "request_info", "provide_info")


def involved(referral: Referral) -> list[User]:
    """Everyone in the conversation: the referrer, the assigned specialist, every
    specialist paged for it and the hub's duty managers, each once, by id."""
    ids = {referral.referrer_id, referral.assigned_specialist_id}
    ids |= set(db.session.scalars(
        select(Delivery.recipient_id).where(Delivery.referral_id == referral.id,
                                            Delivery.recipient_id.is_not(None))))
    hub = referral.hub_service.hospital_id
    people = {u.id: u for u in db.session.scalars(
        select(User).where(User.hospital_id == hub, User.active.is_(True)))
        if u.has_role(Role.DUTY_MANAGER)}
    ids.discard(None)
    missing = ids - set(people)
    if missing:
        people.update({u.id: u for u in db.session.scalars(
            select(User).where(User.id.in_(missing)))})
    return [people[i] for i in sorted(people)]


def address(referral: Referral, event: ReferralEvent) -> None:
    """Inside the message's transaction: a receipt (not yet delivered) for each person
    involved but its author. Raises nothing."""
    db.session.flush()  # the event's id
    for person in involved(referral):
        if person.id != event.actor_id:
            db.session.add(MessageReceipt(event_id=event.id, referral_id=referral.id,
                                          user_id=person.id))


def catch_up(referral: Referral, _event: ReferralEvent | None = None) -> int:
    """Inside the transaction that involved someone new: a receipt (not yet delivered)
    for each earlier message for each person involved who has none, its author
    excepted. Returns how many were added. Raises nothing."""
    db.session.flush()  # the new specialist, the new deliveries
    messages = db.session.execute(
        select(ReferralEvent.id, ReferralEvent.actor_id)
        .where(ReferralEvent.referral_id == referral.id,
               ReferralEvent.kind.in_(THREAD_EVENTS))).all()
    if not messages:
        return 0
    have = {tuple(row) for row in db.session.execute(
        select(MessageReceipt.event_id, MessageReceipt.user_id)
        .where(MessageReceipt.referral_id == referral.id))}
    people = [u.id for u in involved(referral)]
    added = [MessageReceipt(event_id=event_id, referral_id=referral.id, user_id=person)
             for event_id, author in messages for person in people
             if person != author and (event_id, person) not in have]
    db.session.add_all(added)
    return len(added)


def mark_delivered(referral_id: int, user: User, at: datetime | None = None) -> int:
    """The user's page showed the thread: every message of theirs on this referral not
    yet delivered is, now (committed). Returns how many. Raises nothing."""
    result = db.session.execute(
        update(MessageReceipt)
        .where(MessageReceipt.referral_id == referral_id, MessageReceipt.user_id == user.id,
               MessageReceipt.delivered_at.is_(None))
        .values(delivered_at=at or utcnow())
        .execution_options(synchronize_session=False))
    db.session.commit()
    return result.rowcount


def mark_read(referral_id: int, user: User, through: int, *, address: str = "",
              at: datetime | None = None) -> int:
    """The messages up to event id ``through`` were on the user's screen: their receipts
    are read (and delivered, if the page never said so), committed with one access-log
    row naming them. Returns how many became read (0: nothing new, and no log row).
    Raises nothing."""
    at = at or utcnow()
    unread = list(db.session.scalars(
        select(MessageReceipt).where(MessageReceipt.referral_id == referral_id,
                                     MessageReceipt.user_id == user.id,
                                     MessageReceipt.event_id <= through,
                                     MessageReceipt.read_at.is_(None))
        .order_by(MessageReceipt.event_id)))
    for receipt in unread:
        receipt.read_at = at
        receipt.delivered_at = receipt.delivered_at or at
    if unread:
        access_log.record("message.read", "ok", user=user, address=address,
                          referral_id=referral_id, commit=False,
                          detail="events " + ",".join(str(r.event_id) for r in unread))
    db.session.commit()
    return len(unread)


@dataclass(frozen=True)
class Receipt:
    name: str
    status: str  # sent | delivered | read
    at: datetime | None  # when delivered or read

    @property
    def label(self) -> str:
        return {"sent": "Sent to", "delivered": "Delivered to", "read": "Read by"}[self.status]


def for_thread(referral_id: int) -> dict[int, list[Receipt]]:
    """event id -> each recipient's receipt, by name. Raises nothing."""
    found: dict[int, list[Receipt]] = {}
    rows = db.session.execute(
        select(MessageReceipt, User.name).join(User, User.id == MessageReceipt.user_id)
        .where(MessageReceipt.referral_id == referral_id)
        .order_by(MessageReceipt.event_id, User.name))
    for receipt, name in rows:
        status = "read" if receipt.read_at else "delivered" if receipt.delivered_at \
            else "sent"
        found.setdefault(receipt.event_id, []).append(
            Receipt(name, status, receipt.read_at or receipt.delivered_at))
    return found


def unread_counts(user: User, referral_ids: list[int] | None = None) -> dict[int, int]:
    """referral id -> how many messages the user has not read (only referrals with
    some); all the user's referrals unless ``referral_ids`` narrows them."""
    query = (select(MessageReceipt.referral_id, func.count())
             .where(MessageReceipt.user_id == user.id, MessageReceipt.read_at.is_(None))
             .group_by(MessageReceipt.referral_id))
    if referral_ids is not None:
        query = query.where(MessageReceipt.referral_id.in_(referral_ids))
    return {referral_id: n for referral_id, n in db.session.execute(query)}


def unread_total(user: User) -> int:
    """How many messages the user has not read, on every referral. Raises nothing."""
    return db.session.scalar(
        select(func.count()).select_from(MessageReceipt)
        .where(MessageReceipt.user_id == user.id, MessageReceipt.read_at.is_(None))) or 0


def signature(referral_id: int) -> tuple[int, int, int]:
    """(receipts, delivered, read) of the referral: part of its live mark."""
    return tuple(db.session.execute(
        select(func.count(MessageReceipt.id), func.count(MessageReceipt.delivered_at),
               func.count(MessageReceipt.read_at))
        .where(MessageReceipt.referral_id == referral_id)).one())
