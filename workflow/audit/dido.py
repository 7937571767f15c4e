"""Door-in-door-out, step by step: for a transfer, where the minutes between arrival at
the referring hospital and departure for the hub went.

Milestones, each already recorded by the workflow:
  arrived        the referral's ``arrived_at`` (door in at the referring hospital)
  ct             the linked study's own time (StudyDate + StudyTime, UK wall clock as
                 scanners write it): the earliest linked study taken at or after arrival
  images at hub  the referral's ``first_image_viewed_at``: the first image served to
                 a specialist or duty manager of the hub hospital (kept by
                 ``workflow.access_log.record``), so the hub's clinicians have the
                 images in front of them; a view by an admin or audit lead who
                 happens to work at the hub does not count
  decided        ``decided_at``
  departed       ``departed_at`` (door out)

A step whose ends are both known and in order has its minutes; any other step's minutes
(a milestone missing, or out of order: a decision made before anyone at the hub opened
the images) are counted as "not split", so the steps always add up to the
door-in-door-out time.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import select

from extensions import db
from models import Hospital, LinkedStudy, Referral
from workflow.referrals.clocks import minutes_between
from workflow.referrals.states import Outcome
from workflow.times import LONDON

# (key, label, start milestone, end milestone), in the order a transfer goes.
STEPS: tuple[tuple[str, str, str, str], ...] = (
    ("to_ct", "Arrival → CT", "arrived", "ct"),
    ("to_hub_images", "CT → images at hub", "ct", "images_at_hub"),
    ("to_decision", "Images at hub → decision", "images_at_hub", "decided"),
    ("to_departure", "Decision → departure", "decided", "departed"),
)
NOT_SPLIT = ("not_split", "Not split (a step not recorded, or out of order)")
MILESTONES = ("arrived", "ct", "images_at_hub", "decided", "departed")


@dataclass(frozen=True)
class Step:
    key: str
    label: str
    minutes: float | None  # None: not known (counted in not_split)


@dataclass(frozen=True)
class Breakdown:
    """One transfer's door-in-door-out, step by step."""

    milestones: dict[str, datetime | None]
    steps: list[Step]
    total: float | None  # arrival → departure; None until both are known
    not_split: float  # what the known steps leave of the total (0 when all are known)


def study_time(study_date: str, study_time: str) -> datetime | None:
    """A DICOM StudyDate ("20261129") and StudyTime ("014500.123", "0145") as UTC,
    read as UK wall-clock time (in the hour the clocks go back, the first of the two);
    None when the date is missing or not a date. Raises nothing."""
    digits = "".join(c for c in (study_time or "").split(".")[0] if c.isdigit())
    try:
        day = datetime.strptime((study_date or "")[:8], "%Y%m%d")
        hour, minute, second = int(digits[0:2] or 0), int(digits[2:4] or 0), \
            int(digits[4:6] or 0)
        return day.replace(hour=hour, minute=minute, second=second,
                           tzinfo=LONDON).astimezone(UTC)
    except ValueError:
        return None


def breakdown(milestones: dict[str, datetime | None]) -> Breakdown:
    """The steps between ``milestones`` (keys as MILESTONES). Raises nothing."""
    steps = []
    for key, label, start, end in STEPS:
        minutes = minutes_between(milestones.get(start), milestones.get(end))
        steps.append(Step(key, label, minutes if minutes is not None and minutes >= 0
                          else None))
    total = minutes_between(milestones.get("arrived"), milestones.get("departed"))
    known = sum(s.minutes for s in steps if s.minutes is not None)
    return Breakdown(milestones, steps, total,
                     max(total - known, 0.0) if total is not None else 0.0)


def _first_ct(studies: Iterable[tuple[str, str]], arrived: datetime | None) -> datetime | None:
    times = [t for d, s in studies if (t := study_time(d, s)) is not None]
    if arrived is not None:
        times = [t for t in times if t >= arrived]
    return min(times, default=None)


def _ct_times(referral_ids: list[int]) -> dict[int, list[tuple[str, str]]]:
    found: dict[int, list[tuple[str, str]]] = {}
    if not referral_ids:
        return found
    rows = db.session.execute(
        select(LinkedStudy.referral_id, LinkedStudy.study_date,
               LinkedStudy.snapshot["study_time"].as_string())
        .where(LinkedStudy.referral_id.in_(referral_ids)))
    for referral_id, day, clock in rows:
        found.setdefault(referral_id, []).append((day or "", clock or ""))
    return found


def for_referral(referral: Referral) -> Breakdown:
    """The breakdown of one referral (its steps so far). Raises nothing but what the
    database raises."""
    studies = [(s.study_date or "", (s.snapshot or {}).get("study_time", ""))
               for s in referral.studies]
    return breakdown({
        "arrived": referral.arrived_at, "ct": _first_ct(studies, referral.arrived_at),
        "images_at_hub": referral.first_image_viewed_at,
        "decided": referral.decided_at, "departed": referral.departed_at})


@dataclass
class Bar:
    """One month's (or hospital's) transfers: the average minutes of each step."""

    label: str
    transfers: int = 0
    sums: dict[str, float] = field(default_factory=dict)

    def average(self, key: str) -> float:
        return self.sums.get(key, 0.0) / self.transfers if self.transfers else 0.0

    @property
    def total(self) -> float:
        return sum(self.average(k) for k in (*(s[0] for s in STEPS), NOT_SPLIT[0]))


def bars(conditions: list, *, by: str = "month", batch: int = 2000) -> list[Bar]:
    """The departed transfers among the referrals matching ``conditions``, grouped by the
    UK month of arrival (``by="month"``) or by referring hospital code (``"hospital"``),
    sorted by label. Each bar's averages add up to its average door-in-door-out. Raises
    ValueError for another ``by``."""
    if by not in ("month", "hospital"):
        raise ValueError(f"bars by {by!r}: month or hospital")
    query = (select(Referral.id, Referral.arrived_at, Referral.decided_at,
                    Referral.departed_at, Referral.referring_hospital_id,
                    Referral.first_image_viewed_at)
             .where(*conditions, Referral.outcome == Outcome.TRANSFER,
                    Referral.departed_at.is_not(None), Referral.arrived_at.is_not(None))
             .order_by(Referral.id))
    codes = dict(db.session.execute(select(Hospital.id, Hospital.code)).all())
    grouped: dict[str, Bar] = {}
    rows = db.session.execute(query).all()
    for at in range(0, len(rows), batch):
        chunk = rows[at:at + batch]
        ids = [r.id for r in chunk]
        cts = _ct_times(ids)
        for r in chunk:
            found = breakdown({"arrived": r.arrived_at,
                               "ct": _first_ct(cts.get(r.id, []), r.arrived_at),
                               "images_at_hub": r.first_image_viewed_at, "decided": r.decided_at,
                               "departed": r.departed_at})
            label = r.arrived_at.astimezone(LONDON).strftime("%Y-%m") if by == "month" \
                else codes.get(r.referring_hospital_id, "?")
            bar = grouped.setdefault(label, Bar(label))
            bar.transfers += 1
            for step in found.steps:
                bar.sums[step.key] = bar.sums.get(step.key, 0.0) + (step.minutes or 0.0)
            bar.sums[NOT_SPLIT[0]] = bar.sums.get(NOT_SPLIT[0], 0.0) + found.not_split
    return [grouped[k] for k in sorted(grouped)]
