"""What comes back from a page: SMS replies, call keypresses, status callbacks, link taps.

Every handler is idempotent: a Twilio webhook repeated (same MessageSid/CallSid and
kind) changes nothing the second time, and a status never moves backwards.
"""

from __future__ import annotations

import re

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from extensions import db
from integrations.pager.base import FAILED, DeliveryStatus
from integrations.pager.webhooks import is_acknowledgement_reply, is_failure, status_rank
from models import Delivery, Referral, User, WebhookReceipt
from workflow.errors import Conflict, DomainError
from workflow.paging import delivery as sender
from workflow.paging import reply_codes
from workflow.referrals import actions as referrals
from workflow.referrals.states import State
from workflow.times import now as utcnow

ACCEPTABLE = (State.SUBMITTED, State.AWAITING_SPECIALIST, State.UNANSWERED)


def first_time(sid: str, kind: str) -> bool:
    """Record (sid, kind); False when it was already recorded (a replay)."""
    if not sid:
        return True
    db.session.add(WebhookReceipt(sid=sid[:64], kind=kind))
    try:
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        return False
    return True


def _phone_key(phone: str) -> str:
    digits = re.sub(r"\D", "", phone or "")
    return digits[-10:]


def user_by_phone(phone: str) -> User | None:
    key = _phone_key(phone)
    if len(key) < 10:
        return None
    for user in db.session.scalars(select(User).where(User.active.is_(True))):
        if _phone_key(user.phone) == key:
            return user
    return None


def _waiting_for(user: User) -> list[Referral]:
    """The referrals ``user`` was paged about that still wait for someone to accept,
    most recently paged first."""
    rows = db.session.execute(
        select(Referral, func.max(Delivery.id).label("last"))
        .join(Delivery, Delivery.referral_id == Referral.id)
        .where(Delivery.recipient_id == user.id, Referral.state.in_(ACCEPTABLE))
        .group_by(Referral.id).order_by(func.max(Delivery.id).desc())).all()
    return [row[0] for row in rows]


def _which(waiting: list[Referral], asked: str | None) -> str:
    listed = "; ".join(f"{reply_codes.reply_code(r.id)} for {r.reference} "
                       f"({r.specialty.name}, {r.referring_hospital.name})" for r in waiting)
    said = f"No open page has code {asked}. " if asked else ""
    return (f"{said}Nothing was accepted: {len(waiting)} referrals are waiting for you. "
            f"Reply {listed}; or open the link in the page.")


def _acknowledge(referral_id: int, user: User, via: str) -> str:
    try:
        referral = referrals.acknowledge(referral_id, user, via=via)
    except Conflict as exc:
        db.session.rollback()
        return str(exc)
    except DomainError as exc:
        db.session.rollback()
        return f"Could not accept: {exc}"
    return f"Accepted {referral.reference}. Open goldenhour to review."


def sms_reply(sid: str, from_phone: str, body: str) -> str | None:
    """Handle an inbound SMS; return the text to reply with (None: say nothing).

    "1" (or ACK, YES) accepts only when one referral waits for the sender; with more,
    nothing is accepted and the reply lists each one's code. A code ("A7") accepts the
    referral it names.
    """
    if not first_time(sid, "sms-in"):
        return None
    asked = reply_codes.code_in(body)
    if asked is None and not is_acknowledgement_reply(body):
        return "Reply 1, or the code in the page, to accept the referral you were paged about."
    user = user_by_phone(from_phone)
    if user is None:
        return "This number is not registered with goldenhour."
    waiting = _waiting_for(user)
    if not waiting:
        return "Nothing is waiting for you to accept."
    if asked is not None:
        named = [r for r in waiting if reply_codes.reply_code(r.id) == asked]
        if len(named) != 1:  # none, or two that share a code: never guess
            return _which(waiting, None if named else asked)
        return _acknowledge(named[0].id, user, "sms")
    if len(waiting) > 1:
        return _which(waiting, None)
    return _acknowledge(waiting[0].id, user, "sms")


def keypress(sid: str, delivery_id: int, digits: str) -> str:
    """Handle the digits pressed on a page call; return what the call should say."""
    if not first_time(sid, f"gather-{digits}"[:32]):
        return "Thank you."
    delivery = db.session.get(Delivery, delivery_id)
    if delivery is None or delivery.recipient is None:
        return "This page is no longer valid."
    if digits.strip() != "1":
        return "No key 1 pressed. The page stays open."
    return _acknowledge(delivery.referral_id, delivery.recipient, "voice")


# What a failed status from Twilio means, in the words the referral page shows.
PROVIDER_FAILURES = {
    "machine": "the call reached a voicemail, not a person",
    "no-answer": "nobody answered the call",
    "busy": "the line was busy",
    "undelivered": "the phone network could not deliver it",
    "failed": "Twilio could not send it",
    "canceled": "it was cancelled before it went out",
}


def status_callback(sid: str, status: str, answered_by: str = "") -> bool:
    """Record a provider status; move the escalation on at once on a failure.

    Returns True when something changed. A status never moves backwards.
    """
    delivery = db.session.scalar(select(Delivery).where(Delivery.provider_id == sid))
    if delivery is None or delivery.status in FAILED:
        return False  # unknown, or already final
    failed = is_failure(status, answered_by)
    new_status = DeliveryStatus.MACHINE if failed and answered_by.startswith("machine") else status
    if not failed and status_rank(new_status) <= status_rank(delivery.status):
        return False  # a late or repeated callback: never move backwards
    now = utcnow()
    values = {"status": new_status, "answered_by": answered_by[:32], "updated_at": now}
    if failed:
        values["error"] = PROVIDER_FAILURES.get(new_status, new_status.replace("-", " "))
    changed = db.session.execute(
        Delivery.__table__.update()
        .where(Delivery.id == delivery.id, Delivery.status == delivery.status)
        .values(**values)
    ).rowcount
    if changed != 1:  # a simultaneous replay got there first
        db.session.rollback()
        return False
    if failed:
        sender.step_failed(delivery.page_id, now)
    db.session.commit()
    return True


def link_acknowledge(delivery_id: int, user: User) -> str:
    """Accept through the signed link in a page: the link is single use and personal.

    Raises Conflict (used, or not yours) or what acknowledge raises.
    """
    delivery = db.session.get(Delivery, delivery_id)
    if delivery is None:
        raise Conflict("This page no longer exists.")
    if delivery.recipient_id != user.id:
        raise Conflict("This link was sent to someone else. Open the referral from your "
                       "worklist.")
    claimed = db.session.execute(
        Delivery.__table__.update()
        .where(Delivery.id == delivery_id, Delivery.link_used_at.is_(None))
        .values(link_used_at=utcnow())
    ).rowcount
    if claimed != 1:
        db.session.rollback()
        raise Conflict("This link has already been used.")
    db.session.commit()
    referral = referrals.acknowledge(delivery.referral_id, user, via="link")
    return referral.reference
