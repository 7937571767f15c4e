"""Sending one delivery through its channel, outside any database transaction, and
recording what the channel (or later the provider's callback) said of it."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import select

from extensions import db
from integrations.pager.base import FAILED, DeliveryStatus, PageMessage, TransportError
from models import Delivery, Page, Referral, User
from workflow.paging import ack_links, escalation, push
from workflow.paging.pages import ASKING, ESCALATING
from workflow.times import now as utcnow

log = logging.getLogger(__name__)

# A delivery the provider never took (Twilio down, 5xx, 429) is sent again after
# RESEND_FIRST, then twice as long each time, at most RESEND_LONGEST apart, while it has
# had fewer than RESEND_ATTEMPTS sends (about 15 minutes in all). Escalation does not
# wait for it: the next step is brought forward at the first failure, as before.
RESEND_FIRST = timedelta(seconds=5)
RESEND_LONGEST = timedelta(minutes=2)
RESEND_ATTEMPTS = 12


def resend_at(attempts: int, at: datetime) -> datetime | None:
    """When a delivery that failed unsent after ``attempts`` sends goes again (None:
    no more)."""
    if attempts >= RESEND_ATTEMPTS:
        return None
    return at + min(RESEND_FIRST * 2 ** max(attempts - 1, 0), RESEND_LONGEST)



@dataclass(frozen=True)
class SendOutcome:
    status: str
    provider_id: str | None = None
    error: str = ""


MISSING = {"email": "email address", "webpush": "browser that takes push pages (they "
           "open the app and allow notifications)"}


def _address(channel: str, person: User | None, browsers: tuple) -> str:
    if person is None:
        return ""
    if channel == "webpush":
        return person.email if browsers else ""
    return person.email if channel == "email" else person.phone


def build_message(delivery: Delivery, person: User | None) -> PageMessage:
    base = current_app.config["PUBLIC_BASE_URL"]
    link = ack_links.url_for_delivery(delivery.id) if delivery.page.kind in ASKING \
        else f"{base}/referrals/{delivery.referral_id}"
    browsers, reference, specialty = (), "", ""
    if delivery.channel == "webpush":  # what a push names, and where it goes
        referral = db.session.get(Referral, delivery.referral_id)
        reference, specialty = referral.reference or "", referral.specialty.name
        browsers = push.targets(person.id) if person else ()
    return PageMessage(
        to=_address(delivery.channel, person, browsers),
        text=delivery.text,
        link=link,
        # The delivery id in the callback URL also names the page at the provider.
        status_callback=f"{base}/webhooks/twilio/status?delivery={delivery.id}",
        voice_url=f"{base}/webhooks/twilio/voice?delivery={delivery.id}",
        reference=f"delivery-{delivery.id}",
        subscriptions=browsers,
        referral_reference=reference,
        specialty=specialty,
    )


def send(delivery_id: int, channels: Mapping) -> SendOutcome:
    """Send one claimed delivery and record the result. Never raises for channel errors."""
    delivery = db.session.get(Delivery, delivery_id)
    person = db.session.get(User, delivery.recipient_id) if delivery.recipient_id else None
    if delivery.channel == "in_app":
        delivery.link = f"/referrals/{delivery.referral_id}"
        db.session.commit()
        record_result(delivery_id, status=DeliveryStatus.DELIVERED)
        return SendOutcome(DeliveryStatus.DELIVERED)
    channel = channels.get(delivery.channel) or channels.get("console")
    message = build_message(delivery, person)
    delivery.link = message.link
    if not message.to:
        db.session.commit()
        error = f"{person.name if person else 'nobody'} has no " \
                f"{MISSING.get(delivery.channel, 'phone number')}"
        record_result(delivery_id, status=DeliveryStatus.FAILED, error=error, permanent=True)
        return SendOutcome(DeliveryStatus.FAILED, error=error)
    db.session.commit()  # no transaction stays open across the vendor call
    try:
        receipt = channel.notify(message)
    except TransportError as exc:
        log.warning("delivery %s via %s failed: %s", delivery_id, delivery.channel, exc)
        push.forget(exc.gone)
        at = utcnow()
        retry_at = resend_at(delivery.send_attempts, at) if exc.unsent else None
        record_result(delivery_id, status=DeliveryStatus.FAILED, error=str(exc),
                      permanent=exc.permanent, at=at, retry_at=retry_at)
        return SendOutcome(DeliveryStatus.FAILED, error=str(exc))
    status = receipt.status or "sent"
    push.forget(receipt.gone)
    record_result(delivery_id, status=status, provider_id=receipt.provider_id,
                  at=utcnow())
    return SendOutcome(status, receipt.provider_id)


def record_result(delivery_id: int, *, status: str, provider_id: str | None = None,
                  error: str = "", permanent: bool = False, at: datetime | None = None,
                  retry_at: datetime | None = None) -> None:
    """Store what the channel said; if every delivery of the step failed, move on now.
    ``retry_at``: the sweep sends this failed delivery again then."""
    at = at or utcnow()
    delivery = db.session.get(Delivery, delivery_id)
    delivery.status = status
    delivery.retry_at = retry_at
    delivery.provider_id = provider_id or delivery.provider_id
    delivery.error = error[:500]
    delivery.permanent_failure = permanent
    delivery.updated_at = at
    if status not in FAILED:
        delivery.sent_at = at
    db.session.flush()
    if status in FAILED:
        step_failed(delivery.page_id, at)
    db.session.commit()


def step_failed(page_id: int, at: datetime) -> bool:
    """If no delivery of this page can still reach anyone, bring the next step forward.
    Only the page's own channels count: a push sent beside a failed SMS (escalation.
    channels_for) does not hold the escalation back."""
    page = db.session.get(Page, page_id)
    statuses = [status for channel, status in db.session.execute(
        select(Delivery.channel, Delivery.status).where(Delivery.page_id == page_id))
        if channel in page.channels or channel == "none"]
    if page.kind in ESCALATING and all(s in FAILED for s in statuses):
        escalation.move_on_now(page.referral_id, at)
        return True
    return False
