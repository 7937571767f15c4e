"""Shared helpers for the workflow tests: payloads, tokens, counts and people."""

from __future__ import annotations

from sqlalchemy import func, select

from extensions import db
from models import ReferralEvent, User
from workflow.accounts.accounts import issue_token
from workflow.seed import DEMO_PASSWORD

REFERRER = "referrer@pil.demo.nhs.uk"
OTHER_REFERRER = "referrer@lch.demo.nhs.uk"
STROKE_SPECIALISTS = ("stroke.night@qmc.demo.nhs.uk", "stroke.day@qmc.demo.nhs.uk",
                      "stroke.consultant@qmc.demo.nhs.uk")
VASCULAR = "vascular.day@lri.demo.nhs.uk"
DUTY_MANAGER = "duty.manager@qmc.demo.nhs.uk"
# A decision or addendum is signed with the signer's own password (the demo one).
SIGNED = {"signature": {"password": DEMO_PASSWORD}}
AUDIT = "audit@em.demo.nhs.uk"
ADMIN = "admin@em.demo.nhs.uk"


def stroke_payload(**over):
    payload = {
        "specialty": "stroke", "referring_hospital": "PIL",
        "patient": {"nhs_number": "943 476 5919", "family_name": "Smith", "given_name": "Ann",
                    "birth_date": "1950-01-01", "sex": "female"},
        "onset_at": "2026-11-29T01:00", "onset_certainty": "precise",
        "arrived_at": "2026-11-29T01:40", "question": "Large vessel occlusion? Thrombectomy?",
        "clinical": {"nihss": 14, "pre_stroke_mrs": 1, "anticoagulant": "none",
                     "thrombolysis_given": False, "imaging": ["CT", "CTA"]},
    }
    payload.update(over)
    return payload


def stroke_form(**over) -> dict:
    """The new-referral form's fields for the stroke payload (``None`` leaves one out)."""
    form = {
        "specialty": "stroke", "referring_hospital": "PIL", "urgency": "emergency",
        "patient.nhs_number": "943 476 5919", "patient.family_name": "Smith",
        "patient.given_name": "Ann", "patient.birth_date": "1950-01-01",
        "patient.sex": "female", "patient.local_number": "PIL123",
        "onset_certainty": "precise", "onset_at": "2026-11-29T01:00",
        "arrived_at": "2026-11-29T01:40", "question": "Large vessel occlusion? Thrombectomy?",
        "stroke.nihss": "14", "stroke.pre_stroke_mrs": "1", "stroke.anticoagulant": "none",
        "stroke.thrombolysis_given": "no", "stroke.imaging": ["CT", "CTA"],
    }
    form.update(over)
    return {k: v for k, v in form.items() if v is not None}


def bearer(email):
    return {"Authorization": f"Bearer {issue_token(email)}"}


def user(email) -> User:
    return db.session.scalar(select(User).where(User.email == email))


def count(model) -> int:
    db.session.expire_all()
    return db.session.scalar(select(func.count()).select_from(model))


def event_kinds(referral_id) -> list[str]:
    db.session.expire_all()
    return list(db.session.scalars(select(ReferralEvent.kind)
                                   .where(ReferralEvent.referral_id == referral_id)
                                   .order_by(ReferralEvent.seq)))
