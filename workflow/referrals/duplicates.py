"""A second open referral for the same patient and specialty: the referrer is told about
the open one before a second is raised, and raises it only by saying it is separate
(two referrals page two sets of specialists about one patient).

The decision is the same for the form and ``POST /api/v1/referrals``: both go through
``actions.raise_referral(..., hold_duplicates=True)``, which calls ``hold``.
"""

from __future__ import annotations

from flask import url_for
from sqlalchemy import select

from extensions import db
from models import Referral, Specialty
from workflow.errors import Conflict, ValidationFailed
from workflow.referrals import nhs_number
from workflow.referrals.states import FINAL


class DuplicateReferral(Conflict):
    """The patient already has an open referral for this specialty (HTTP 409); the
    answer names the open ones so the referrer can go to them instead."""

    def __init__(self, open_referrals: list[Referral]):
        self.open_referrals = open_referrals
        first = open_referrals[0]
        super().__init__(
            f"this patient already has an open {first.specialty.name} referral "
            f"({', '.join(r.reference for r in open_referrals)}); send "
            "\"separate_referral\": true to raise another")

    def details(self) -> dict:
        return {"open_referrals": [
            {"id": r.id, "reference": r.reference, "state": r.state,
             "referring_hospital": r.referring_hospital.code,
             "url": url_for("referrals.show", referral_id=r.id)}
            for r in self.open_referrals]}


def open_for(nhs: str, specialty_code: str) -> list[Referral]:
    """The open (not closed, not cancelled) referrals for this NHS number (as typed) and
    specialty, newest first; [] when the number is not a valid NHS number. Raises
    nothing but what the database raises."""
    number = nhs_number.normalise(nhs)
    if nhs_number.problem(number) is not None or not specialty_code:
        return []
    return list(db.session.scalars(
        select(Referral).join(Specialty, Specialty.id == Referral.specialty_id)
        .where(Referral.nhs_number == number, Specialty.code == specialty_code,
               Referral.state.not_in(FINAL))
        .order_by(Referral.id.desc()).limit(5)))


def says_separate(payload: dict) -> bool:
    """Whether the payload's ``separate_referral`` says the referrer knows of the open
    referral and means another. Raises ValidationFailed when it is not a boolean."""
    value = payload.get("separate_referral", False) if isinstance(payload, dict) else False
    if not isinstance(value, bool):
        raise ValidationFailed({"separate_referral": "true or false."})
    return value


def hold(nhs: str, specialty_code: str, payload: dict) -> None:
    """Refuse a second open referral for the patient and specialty unless the payload
    says it is separate. Raises DuplicateReferral or ValidationFailed (see
    says_separate)."""
    if says_separate(payload):
        return
    found = open_for(nhs, specialty_code)
    if found:
        raise DuplicateReferral(found)
