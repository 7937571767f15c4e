"""Parse and check the input for a new referral, a decision and other actions.

Every function takes plain dicts (from a form or JSON) and returns clean values, or
raises ValidationFailed with one specific message per bad field path
("patient.nhs_number", "clinical.nihss"), so nothing is ever stored half-way.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from workflow.errors import ValidationFailed
from workflow.referrals import nhs_number
from workflow.referrals.states import Outcome
from workflow.times import LocalTimeError, from_local

MAX_TEXT = 4000
MAX_NAME = 100
CLOCK_SKEW = timedelta(minutes=5)
ONSET_CERTAINTY = ("precise", "estimated", "unknown", "during_sleep")
SEXES = ("female", "male", "other", "unknown")
ANTICOAGULANTS = ("none", "warfarin", "apixaban", "rivaroxaban", "edoxaban", "dabigatran",
                  "heparin", "other", "unknown")
IMAGING = ("CT", "CTA", "CTP", "MRI")
TRANSFER_URGENCY = ("immediate", "within_1_hour", "within_4_hours", "routine")


class Errors(dict):
    def need(self, condition: bool, path: str, message: str) -> bool:
        if not condition and path not in self:
            self[path] = message
        return condition

    def raise_if_any(self) -> None:
        if self:
            raise ValidationFailed(dict(self))


def text(data: dict, key: str, path: str, errors: Errors, *, required: bool = True,
         limit: int = MAX_TEXT, label: str | None = None) -> str:
    """A stripped string no longer than ``limit``; HTML is kept as text and escaped on output."""
    value = data.get(key)
    label = label or key.replace("_", " ")
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            errors.need(False, path, f"Enter the {label}.")
        return ""
    if not isinstance(value, str):
        errors.need(False, path, f"The {label} must be text.")
        return ""
    value = value.strip()
    if len(value) > limit:
        errors.need(False, path, f"The {label} is {len(value)} characters; the most is {limit}.")
        return ""
    if "\x00" in value:
        errors.need(False, path, f"The {label} contains a NUL character.")
        return ""
    if not storable(value):
        errors.need(False, path, f"The {label} contains a broken character (a lone surrogate).")
        return ""
    return value


def storable(value: str) -> bool:
    """False for strings no database can store: JSON may carry lone surrogates (\\ud800)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def code(data: dict, key: str, path: str, errors: Errors, known: set[str], *,
         required: bool = True, label: str = "hospital") -> str | None:
    """A code from ``known`` (a hospital code), or None with a message at ``path``."""
    value = data.get(key)
    if value in (None, ""):
        errors.need(not required, path, f"Choose the {label}.")
        return None
    if not isinstance(value, str):
        errors.need(False, path, f"The {label} must be a code such as {min(known, default='QMC')}.")
        return None
    if value not in known:
        errors.need(False, path, f"No hospital has the code {value!r}.")
        return None
    return value


def choice(data: dict, key: str, path: str, errors: Errors, options, *, required=True) -> str:
    value = data.get(key)
    if value in (None, ""):
        if required:
            errors.need(False, path, f"Choose the {key.replace('_', ' ')}: {', '.join(options)}.")
        return ""
    if value not in options:
        errors.need(False, path, f"{value!r} is not one of {', '.join(options)}.")
        return ""
    return value


def integer(data: dict, key: str, path: str, errors: Errors, low: int, high: int, *,
            required: bool = True, label: str | None = None) -> int | None:
    value = data.get(key)
    label = label or key.replace("_", " ")
    if value in (None, ""):
        errors.need(not required, path, f"Enter the {label} ({low}–{high}).")
        return None
    if isinstance(value, bool):
        errors.need(False, path, f"The {label} must be a whole number from {low} to {high}.")
        return None
    try:
        number = int(str(value).strip())
    except ValueError:
        errors.need(False, path, f"The {label} must be a whole number from {low} to {high}.")
        return None
    if not low <= number <= high:
        errors.need(False, path, f"The {label} must be from {low} to {high}, not {number}.")
        return None
    return number


def boolean(data: dict, key: str, path: str, errors: Errors, *, required=True) -> bool | None:
    value = data.get(key)
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in {"true", "yes", "on", "1"}:
        return True
    if isinstance(value, str) and value.lower() in {"false", "no", "off", "0"}:
        return False
    errors.need(not required and value in (None, ""), path,
                f"Say whether {key.replace('_', ' ')} (yes or no).")
    return None


def when(data: dict, key: str, path: str, errors: Errors, now: datetime, *,
         required: bool = True, label: str | None = None) -> datetime | None:
    """A date-time (ISO; naive means UK local time), not in the future. A naive time
    in the hour the clocks go back (it happens twice) or forward (it never happens) is
    refused naming both meanings: an offset says which."""
    value = data.get(key)
    label = label or key.replace("_", " ")
    if value in (None, ""):
        errors.need(not required, path, f"Enter the {label}.")
        return None
    if not isinstance(value, str):
        errors.need(False, path, f"The {label} must be a date and time like 2026-11-29T02:15.")
        return None
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        errors.need(False, path, f"The {label} must be a date and time like 2026-11-29T02:15.")
        return None
    try:
        parsed = from_local(parsed)
    except LocalTimeError as exc:  # the hour the clocks go back, or forward
        errors.need(False, path, f"The {label}: {exc}.")
        return None
    except OverflowError:  # year 1 or 9999 moved across midnight by the offset
        errors.need(False, path, f"The {label} is not a date and time this century.")
        return None
    if parsed > now + CLOCK_SKEW:
        errors.need(False, path, f"The {label} is in the future.")
        return None
    if parsed < now - timedelta(days=60):
        errors.need(False, path, f"The {label} is more than 60 days ago.")
        return None
    return parsed


def birth_date(data: dict, path: str, errors: Errors, today: date) -> date | None:
    value = data.get("birth_date")
    if value in (None, ""):
        errors.need(False, path, "Enter the date of birth.")
        return None
    try:
        parsed = date.fromisoformat(str(value).strip())
    except ValueError:
        errors.need(False, path, "The date of birth must be a date like 1948-03-14.")
        return None
    if parsed > today:
        errors.need(False, path, "The date of birth is in the future.")
        return None
    if parsed.year < today.year - 125:
        errors.need(False, path, "The date of birth is more than 125 years ago.")
        return None
    return parsed


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
    clinical = parse_clinical(specialty, clinical_in, errors, now) if specialty else {}
    errors.raise_if_any()
    return NewReferral(specialty, hospital, hub, patient, onset_at, certainty, arrived_at,
                       question, clinical, urgency)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def parse_clinical(specialty: str, data: dict, errors: Errors, now: datetime) -> dict:
    """The specialty's own fields, checked; datetimes stored as ISO strings."""
    p = "clinical."
    if specialty == "stroke":
        anticoagulant = choice(data, "anticoagulant", p + "anticoagulant", errors, ANTICOAGULANTS)
        given = boolean(data, "thrombolysis_given", p + "thrombolysis_given", errors)
        imaging = data.get("imaging")
        if not isinstance(imaging, list) or not imaging:
            errors.need(False, p + "imaging", f"List the imaging done: {', '.join(IMAGING)}.")
            imaging = []
        elif any(i not in IMAGING for i in imaging):
            errors.need(False, p + "imaging", f"Imaging must be among {', '.join(IMAGING)}.")
        return {
            "nihss": integer(data, "nihss", p + "nihss", errors, 0, 42, label="NIHSS"),
            "pre_stroke_mrs": integer(data, "pre_stroke_mrs", p + "pre_stroke_mrs", errors, 0, 5,
                                      label="pre-stroke mRS"),
            "anticoagulant": anticoagulant,
            "anticoagulant_last_dose_at": _iso(when(
                data, "anticoagulant_last_dose_at", p + "anticoagulant_last_dose_at", errors, now,
                required=anticoagulant not in ("none", "unknown", ""),
                label="time of the last anticoagulant dose")),
            "thrombolysis_given": given,
            "thrombolysis_at": _iso(when(data, "thrombolysis_at", p + "thrombolysis_at", errors,
                                         now, required=bool(given), label="thrombolysis time")),
            "imaging": sorted(set(i for i in imaging if i in IMAGING)),
        }
    if specialty == "major_trauma":
        return {
            "age": integer(data, "age", p + "age", errors, 0, 125, label="age (ATMIST A)"),
            "time_of_injury": _iso(when(data, "time_of_injury", p + "time_of_injury", errors,
                                        now, required=False, label="time of injury")),
            "mechanism": text(data, "mechanism", p + "mechanism", errors, limit=1000),
            "injuries": text(data, "injuries", p + "injuries", errors, limit=2000),
            "gcs": integer(data, "gcs", p + "gcs", errors, 3, 15, label="GCS"),
            "heart_rate": integer(data, "heart_rate", p + "heart_rate", errors, 0, 300,
                                  required=False, label="heart rate"),
            "systolic_bp": integer(data, "systolic_bp", p + "systolic_bp", errors, 0, 300,
                                   required=False, label="systolic BP"),
            "resp_rate": integer(data, "resp_rate", p + "resp_rate", errors, 0, 80,
                                 required=False, label="respiratory rate"),
            "spo2": integer(data, "spo2", p + "spo2", errors, 0, 100, required=False,
                            label="SpO2"),
            "treatment": text(data, "treatment", p + "treatment", errors, required=False,
                              limit=2000),
            "eta_minutes": integer(data, "eta_minutes", p + "eta_minutes", errors, 0, 600,
                                   required=False, label="ETA in minutes"),
            "requirements": text(data, "requirements", p + "requirements", errors,
                                 required=False, limit=1000),
        }
    if specialty == "spinal":
        level = text(data, "level", p + "level", errors, limit=16, label="spinal level")
        if level and not re.fullmatch(r"[CTLS]\d{1,2}(-[CTLS]\d{1,2})?", level.upper()):
            errors.need(False, p + "level", "The spinal level must look like C5, T12 or L1-L2.")
        return {
            "level": level.upper(),
            "neurology": text(data, "neurology", p + "neurology", errors, limit=2000),
            "asia_grade": choice(data, "asia_grade", p + "asia_grade", errors,
                                 ("A", "B", "C", "D", "E"), required=False),
        }
    if specialty == "vascular":
        return {
            "diagnosis": text(data, "diagnosis", p + "diagnosis", errors, limit=1000),
            "haemodynamics": choice(data, "haemodynamics", p + "haemodynamics", errors,
                                    ("stable", "unstable")),
            "systolic_bp": integer(data, "systolic_bp", p + "systolic_bp", errors, 0, 300,
                                   required=False, label="systolic BP"),
        }
    if specialty == "neurosurgery":
        return {
            "diagnosis": text(data, "diagnosis", p + "diagnosis", errors, limit=1000),
            "gcs": integer(data, "gcs", p + "gcs", errors, 3, 15, label="GCS"),
            "pupils": text(data, "pupils", p + "pupils", errors, required=False, limit=200),
        }
    return {}


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
