"""Clocks and treatment windows for a referral, as a clinician reads them.

Times are UTC in, minutes out. "Would still be inside the window on arrival" adds
the blue-light travel minutes from the referring hospital to the hub.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta

from sqlalchemy import select

from extensions import db
from models import Referral, TravelTime

# name: (label, hours from onset / last known well, what it needs)
STROKE_WINDOWS = {
    "thrombolysis": ("Thrombolysis", 4.5, "within 4.5 h of onset"),
    "thrombectomy": ("Thrombectomy", 6.0, "within 6 h of onset"),
    "thrombectomy_extended": ("Extended thrombectomy", 24.0,
                              "6–24 h with perfusion / imaging selection"),
}


@dataclass(frozen=True)
class Window:
    name: str
    label: str
    hours: float
    note: str
    minutes_left: int | None  # None when onset is unknown
    open_now: bool | None
    open_on_arrival: bool | None
    closes_at: str | None  # ISO UTC


def minutes_between(start: datetime | None, end: datetime | None) -> float | None:
    """Minutes from ``start`` to ``end`` (negative when ``end`` is earlier), or None
    when either is missing. The audit's KPIs use them as they are."""
    if start is None or end is None:
        return None
    return (end - start).total_seconds() / 60


def _whole(start: datetime | None, end: datetime | None) -> int | None:
    """Whole minutes, rounded down, as the referral page's clocks show them."""
    minutes = minutes_between(start, end)
    return None if minutes is None else math.floor(minutes)


def travel_minutes(from_hospital_id: int, to_hospital_id: int) -> int | None:
    if from_hospital_id == to_hospital_id:
        return 0
    return db.session.scalar(select(TravelTime.minutes).where(
        TravelTime.from_hospital_id == from_hospital_id,
        TravelTime.to_hospital_id == to_hospital_id))


def windows(onset_at: datetime | None, certainty: str, now: datetime,
            travel: int | None) -> list[Window]:
    """The stroke treatment windows measured from onset (or last known well)."""
    result = []
    for name, (label, hours, note) in STROKE_WINDOWS.items():
        if onset_at is None or certainty == "unknown":
            result.append(Window(name, label, hours, note, None, None, None, None))
            continue
        closes = onset_at + timedelta(hours=hours)
        left = int((closes - now).total_seconds() // 60)
        on_arrival = None if travel is None else left - travel > 0
        result.append(Window(name, label, hours, note, left, left > 0, on_arrival,
                             closes.isoformat()))
    return result


def referral_clocks(referral: Referral, now: datetime) -> dict:
    """Every clock shown on a referral page, in minutes (None where not yet started)."""
    end = referral.ended_at or now
    travel = travel_minutes(referral.referring_hospital_id, referral.hub_service.hospital_id)
    clocks = {
        "now": now.isoformat(),
        "since_onset": _whole(referral.onset_at, end)
        if referral.onset_certainty != "unknown" else None,
        "onset_certainty": referral.onset_certainty,
        "since_arrival": _whole(referral.arrived_at, end),
        "since_referral": _whole(referral.created_at, end),
        "since_acknowledge": _whole(referral.acknowledged_at, end),
        "referral_to_acknowledge": _whole(referral.created_at,
                                                   referral.acknowledged_at),
        "referral_to_decision": _whole(referral.created_at, referral.decided_at),
        "door_in_door_out": _whole(referral.arrived_at, referral.departed_at),
        "travel_minutes_to_hub": travel,
        "windows": [],
    }
    if referral.specialty.code == "stroke":
        clocks["windows"] = [asdict(w) for w in windows(
            referral.onset_at, referral.onset_certainty, now, travel)]
    return clocks
