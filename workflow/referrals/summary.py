"""What a specialist needs to see before taking a referral: who the patient is, how
long since onset, which treatment windows are still open, and the question.

Read-only. The accept page (views/paging.py) shows it; nothing here raises.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from models import Referral
from workflow.referrals import clinical, labels
from workflow.referrals.clocks import referral_clocks
from workflow.times import LONDON, format_local


@dataclass(frozen=True)
class WindowLine:
    label: str
    status: str  # "open, 2 h 30 min left", "closed", "onset unknown"
    open_now: bool | None


@dataclass(frozen=True)
class ClinicalSummary:
    reference: str
    state: str
    specialty: str
    hospital: str
    age: int
    sex: str
    onset_clock: str  # "Since onset" / "Since last known well"
    onset_certainty: str
    since_onset: int | None  # minutes
    since_referral: int | None
    windows: list[WindowLine]
    fields: list[tuple[str, str]]  # the specialty's fields, as the form names them
    question: str


def age_on(birth: date, today: date) -> int:
    return today.year - birth.year - ((today.month, today.day) < (birth.month, birth.day))


def _minutes(value: int) -> str:
    return f"{value} min" if value < 60 else f"{value // 60} h {value % 60:02d} min"


def _window(w: dict) -> WindowLine:
    if w["minutes_left"] is None:
        return WindowLine(w["label"], "onset unknown", None)
    if not w["open_now"]:
        return WindowLine(w["label"], "closed", False)
    return WindowLine(w["label"], f"open, {_minutes(w['minutes_left'])} left", True)


def clinical_summary(referral: Referral, now: datetime) -> ClinicalSummary:
    clocks = referral_clocks(referral, now)
    return ClinicalSummary(
        reference=referral.reference, state=labels.state(referral.state),
        specialty=referral.specialty.name, hospital=referral.referring_hospital.name,
        age=age_on(referral.birth_date, now.astimezone(LONDON).date()),
        sex=labels.sex(referral.sex),
        onset_clock=labels.since_onset(referral.onset_certainty),
        onset_certainty=labels.certainty_short(referral.onset_certainty),
        since_onset=clocks["since_onset"], since_referral=clocks["since_referral"],
        windows=[_window(w) for w in clocks["windows"]],
        fields=clinical.rows(referral.specialty.code, referral.clinical, format_local),
        question=referral.question)
