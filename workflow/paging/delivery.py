"""Sending one delivery through its channel, outside any database transaction."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass

from flask import current_app

from extensions import db
from integrations.pager.base import PageMessage, TransportError
from models import Delivery, User
from workflow.paging import ack_links, sweep
from workflow.times import now as utcnow

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SendOutcome:
    status: str
    provider_id: str | None = None
    error: str = ""


def _address(channel: str, person: User | None) -> str:
    if person is None:
        return ""
    return person.email if channel == "email" else person.phone


def build_message(delivery: Delivery, person: User | None) -> PageMessage:
    base = current_app.config["PUBLIC_BASE_URL"]
    link = ack_links.url_for_delivery(delivery.id) if delivery.page.kind in (
        "escalation", "handover") else f"{base}/referrals/{delivery.referral_id}"
    return PageMessage(
        to=_address(delivery.channel, person),
        text=delivery.text,
        link=link,
        # The delivery id in the callback URL also names the page at the provider.
        status_callback=f"{base}/webhooks/twilio/status?delivery={delivery.id}",
        voice_url=f"{base}/webhooks/twilio/voice?delivery={delivery.id}",
        reference=f"delivery-{delivery.id}",
    )


def send(delivery_id: int, channels: Mapping) -> SendOutcome:
    """Send one claimed delivery and record the result. Never raises for channel errors."""
    delivery = db.session.get(Delivery, delivery_id)
    person = db.session.get(User, delivery.recipient_id) if delivery.recipient_id else None
    if delivery.channel == "in_app":
        delivery.link = f"/referrals/{delivery.referral_id}"
        db.session.commit()
        sweep.record_result(delivery_id, status="delivered")
        return SendOutcome("delivered")
    channel = channels.get(delivery.channel) or channels.get("console")
    message = build_message(delivery, person)
    delivery.link = message.link
    if not message.to:
        db.session.commit()
        error = f"{person.name if person else 'nobody'} has no " \
                f"{'email address' if delivery.channel == 'email' else 'phone number'}"
        sweep.record_result(delivery_id, status="failed", error=error, permanent=True)
        return SendOutcome("failed", error=error)
    db.session.commit()  # no transaction stays open across the vendor call
    try:
        receipt = channel.notify(message)
    except TransportError as exc:
        log.warning("delivery %s via %s failed: %s", delivery_id, delivery.channel, exc)
        sweep.record_result(delivery_id, status="failed", error=str(exc),
                            permanent=exc.permanent, at=utcnow())
        return SendOutcome("failed", error=str(exc))
    status = receipt.status or "sent"
    sweep.record_result(delivery_id, status=status, provider_id=receipt.provider_id,
                        at=utcnow())
    return SendOutcome(status, receipt.provider_id)
