"""Shared steps for paging tests."""

from __future__ import annotations

from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import select

from extensions import db
from models import Delivery, Page, Referral, User
from workflow.paging import sweep
from workflow.referrals import actions as referrals
from workflow.times import now

REFERRER = "referrer@pil.demo.nhs.uk"


def user(email: str) -> User:
    return db.session.scalar(select(User).where(User.email == email))


def stroke_payload(**over) -> dict:
    payload = {
        "specialty": "stroke", "referring_hospital": "PIL",
        "patient": {"nhs_number": "9434765919", "family_name": "Smith", "given_name": "Ann",
                    "birth_date": "1950-01-01", "sex": "female"},
        "onset_at": None, "onset_certainty": "unknown",
        # With its offset: a wall-clock time would be read as UK time, wherever the
        # machine running the suite is.
        "arrived_at": (now() - timedelta(minutes=30)).replace(microsecond=0).isoformat(),
        "question": "Thrombectomy?",
        "clinical": {"nihss": 14, "pre_stroke_mrs": 1, "anticoagulant": "none",
                     "thrombolysis_given": False, "imaging": ["CT", "CTA"]},
    }
    payload.update(over)
    return payload


def raise_stroke(**over) -> Referral:
    return referrals.raise_referral(user(REFERRER), stroke_payload(**over))


def run_sweep(at: datetime | None = None) -> sweep.SweepResult:
    return sweep.run_once(current_app.extensions["goldenhour.channels"], now=at)


def deliveries(referral_id: int) -> list[Delivery]:
    db.session.expire_all()
    return list(db.session.scalars(select(Delivery).where(Delivery.referral_id == referral_id)
                                   .order_by(Delivery.id)))


def pages(referral_id: int) -> list[Page]:
    db.session.expire_all()
    return list(db.session.scalars(select(Page).where(Page.referral_id == referral_id)
                                   .order_by(Page.step, Page.attempt)))


def paged_people(referral_id: int, step: int) -> set[str]:
    return {d.recipient.email for d in deliveries(referral_id)
            if d.page.step == step and d.recipient is not None}
