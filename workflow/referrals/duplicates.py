"""A second open referral for the same patient and specialty: the referrer is told about
the open one before a second is raised, and raises it only by saying it is separate
(two referrals page two sets of specialists about one patient)."""

from __future__ import annotations

from sqlalchemy import select

from extensions import db
from models import Referral, Specialty
from workflow.referrals import nhs_number
from workflow.referrals.states import FINAL


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
