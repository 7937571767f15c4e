"""Parse and check the input for a new referral, a decision and other actions.

Every function takes plain dicts (from a form or JSON) and returns clean values, or
raises ValidationFailed with one specific message per bad field path
("patient.nhs_number", "clinical.nihss"), so nothing is ever stored half-way.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from workflow.errors import ValidationFailed
from workflow.referrals import clinical as clinical_fields
from workflow.referrals import nhs_number
from workflow.referrals.checks import (
    CLOCK_SKEW,
    Errors,
    birth_date,
    choice,
    code,
    text,
    when,
)
from workflow.referrals.states import Outcome

MAX_NAME = 100
ONSET_CERTAINTY = ("precise", "estimated", "unknown", "during_sleep")
SEXES = ("female", "male", "other", "unknown")
TRANSFER_URGENCY = ("immediate", "within_1_hour", "within_4_hours", "routine")


@dataclass
class NewReferral:
    specialty: str
    referring_hospital: str
    hub: str | None
    patient: dict[str, Any]
    onset_at: datetime | None
    onset_certainty: str
    arrived_at: datetime | None
    question: str
    clinical: dict[str, Any]
    urgency: str


def _as_dict(value: Any, path: str, errors: Errors) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        errors.need(False, path, f"{path} must be an object.")
        return {}
    return value


def parse_new_referral(payload: Any, now: datetime, specialties: set[str],
                       hospitals: set[str]) -> NewReferral:
    """Check a new referral. Raises ValidationFailed naming every bad field."""
    errors = Errors()
    if not isinstance(payload, dict):
        raise ValidationFailed({"": "Send the referral as a JSON object."})
    specialty = choice(payload, "specialty", "specialty", errors, sorted(specialties))
    hospital = code(payload, "referring_hospital", "referring_hospital", errors, hospitals,
                    label="referring hospital")
    hub = code(payload, "hub", "hub", errors, hospitals, required=False, label="hub")
    patient_in = _as_dict(payload.get("patient"), "patient", errors)
    if "patient" not in payload:
        errors.need(False, "patient", "Enter the patient's details.")
    nhs_problem = nhs_number.problem(str(patient_in.get("nhs_number") or ""))
    errors.need(nhs_problem is None, "patient.nhs_number", nhs_problem or "")
    patient = {
        "nhs_number": nhs_number.normalise(str(patient_in.get("nhs_number") or "")),
        "family_name": text(patient_in, "family_name", "patient.family_name", errors,
                            limit=MAX_NAME, label="family name"),
        "given_name": text(patient_in, "given_name", "patient.given_name", errors,
                           limit=MAX_NAME, label="given name"),
        "birth_date": birth_date(patient_in, "patient.birth_date", errors, now.date()),
        "sex": choice(patient_in, "sex", "patient.sex", errors, SEXES),
        "local_number": text(patient_in, "local_number", "patient.local_number", errors,
                             required=False, limit=32, label="local hospital number"),
    }
    certainty = choice(payload, "onset_certainty", "onset_certainty", errors, ONSET_CERTAINTY)
    onset_at = when(payload, "onset_at", "onset_at", errors, now,
                    required=certainty not in ("unknown", ""),
                    label="onset / last known well time")
    arrived_at = when(payload, "arrived_at", "arrived_at", errors, now,
                      label="arrival time at this hospital")
    if onset_at and arrived_at and onset_at > arrived_at + CLOCK_SKEW:
        errors.need(False, "onset_at", "The onset time is after the arrival time.")
    if onset_at and patient["birth_date"] and onset_at.date() < patient["birth_date"]:
        errors.need(False, "onset_at", "The onset time is before the date of birth.")
    question = text(payload, "question", "question", errors, label="clinical question")
    urgency = choice(payload, "urgency", "urgency", errors, ("emergency", "urgent"),
                     required=False) or "emergency"
    clinical_in = _as_dict(payload.get("clinical"), "clinical", errors)
    clinical = clinical_fields.parse(specialty, clinical_in, errors, now) if specialty else {}
    errors.raise_if_any()
    return NewReferral(specialty, hospital, hub, patient, onset_at, certainty, arrived_at,
                       question, clinical, urgency)


@dataclass
class DecisionInput:
    outcome: str
    destination_hospital: str | None
    destination_unit: str
    transfer_urgency: str
    advice: str
    rationale: str


def parse_decision(payload: Any, hospitals: set[str]) -> DecisionInput:
    """Check a decision. Raises ValidationFailed naming every bad field."""
    errors = Errors()
    if not isinstance(payload, dict):
        raise ValidationFailed({"": "Send the decision as a JSON object."})
    outcome = choice(payload, "outcome", "outcome", errors, [o.value for o in Outcome])
    urgency = ""
    if outcome == Outcome.TRANSFER and payload.get("destination_hospital") in (None, ""):
        errors.need(False, "destination_hospital", "A transfer needs a destination hospital.")
    destination = code(payload, "destination_hospital", "destination_hospital", errors,
                       hospitals, required=False, label="destination hospital")
    if outcome == Outcome.TRANSFER:
        urgency = choice(payload, "transfer_urgency", "transfer_urgency", errors,
                         TRANSFER_URGENCY, required=False) or "immediate"
    result = DecisionInput(
        outcome=outcome,
        destination_hospital=destination,
        destination_unit=text(payload, "destination_unit", "destination_unit", errors,
                              required=False, limit=200, label="destination unit"),
        transfer_urgency=urgency,
        advice=text(payload, "advice", "advice", errors,
                    required=outcome in (Outcome.ADVICE_ONLY, Outcome.TREAT_LOCALLY)),
        rationale=text(payload, "rationale", "rationale", errors),
    )
    errors.raise_if_any()
    return result
