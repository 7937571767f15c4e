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

The referral page reads one referral's studies as they are; the dashboard's bars read
a year of transfers in one query, with each study's time already parsed into
``linked_studies.taken_at`` (kept by ``install`` as the study is written), and add the
steps up in numpy.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import numpy as np
from sqlalchemy import LargeBinary, event, func, literal, literal_column, select

from extensions import db
from models import Hospital, LinkedStudy, Referral
from workflow.audit.clocks import EPOCH, MISSING, microseconds
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


def _keep_taken_at(mapper, connection, study: LinkedStudy) -> None:
    study.taken_at = study_time(study.study_date or "",
                                (study.snapshot or {}).get("study_time", ""))


def install() -> None:
    """Keep every linked study's ``taken_at`` equal to ``study_time`` of its study_date
    and snapshot, as the ORM inserts or updates it (whoever links it: a form, the API,
    a photo, a new scan's tap). Safe to call again. Raises nothing."""
    for name in ("before_insert", "before_update"):
        if not event.contains(LinkedStudy, name, _keep_taken_at):
            event.listen(LinkedStudy, name, _keep_taken_at)


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


# One departed transfer as the bars read it: its milestones as microseconds since
# 2000-01-01 UTC (MISSING when not recorded) and its referring hospital; big-endian, the
# order PostgreSQL packs them in below.
TRANSFER_CLOCKS = np.dtype([(m, ">i8") for m in MILESTONES] + [("site", ">i4")])


def _transfers(conditions: list) -> np.ndarray:
    """The departed transfers matching ``conditions``, one record each, in one query:
    the CT is the earliest linked study's ``taken_at`` at or after arrival."""
    first_ct = (select(func.min(LinkedStudy.taken_at))
                .where(LinkedStudy.referral_id == Referral.id,
                       LinkedStudy.taken_at >= Referral.arrived_at)
                .scalar_subquery())
    times = (Referral.arrived_at, first_ct, Referral.first_image_viewed_at,
             Referral.decided_at, Referral.departed_at)
    where = (*conditions, Referral.outcome == Outcome.TRANSFER,
             Referral.departed_at.is_not(None), Referral.arrived_at.is_not(None))
    if db.engine.dialect.name != "postgresql":
        rows = db.session.execute(select(*times, Referral.referring_hospital_id).where(*where))
        return np.array([(*(microseconds(t) for t in r[:-1]), r[-1]) for r in rows],
                        dtype=TRANSFER_CLOCKS)
    # PostgreSQL packs the records itself (as audit_facts does), so a year of transfers
    # is one value read straight into numpy, not 500,000 datetimes made in Python.
    packed = None
    for t in times:
        part = func.timestamp_send(func.coalesce(t, literal_column("'-infinity'::timestamp")),
                                   type_=LargeBinary)
        packed = part if packed is None else packed.op("||", return_type=LargeBinary)(part)
    packed = packed.op("||", return_type=LargeBinary)(
        func.int4send(Referral.referring_hospital_id, type_=LargeBinary))
    found = db.session.scalar(
        select(func.string_agg(packed, literal(b"", LargeBinary))).where(*where))
    return np.frombuffer(found or b"", dtype=TRANSFER_CLOCKS)


def _step_microseconds(transfers: np.ndarray) -> np.ndarray:
    """Per transfer (rows), each step's microseconds as ``breakdown`` counts them (0 when
    not known) and then the not-split microseconds (columns: STEPS, then NOT_SPLIT)."""
    columns = []
    for _key, _label, start, end in STEPS:
        begun, ended = transfers[start].astype(np.int64), transfers[end].astype(np.int64)
        known = (begun != MISSING) & (ended != MISSING) & (ended >= begun)
        columns.append(np.where(known, ended, 0) - np.where(known, begun, 0))
    total = transfers["departed"].astype(np.int64) - transfers["arrived"].astype(np.int64)
    columns.append(np.maximum(total - sum(columns), 0))
    return np.stack(columns, axis=1)


def _uk_months(arrived: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """The UK month of each arrival (microseconds since EPOCH) as an index into the
    labels ("2026-03") of the months from the first arrival's to the last's."""
    first, last = (EPOCH + timedelta(microseconds=int(x)) for x in (arrived.min(),
                                                                     arrived.max()))
    month, stop = first.astimezone(LONDON).replace(day=1), last.astimezone(LONDON)
    starts = []
    while (month.year, month.month) <= (stop.year, stop.month):
        starts.append(datetime(month.year, month.month, 1, tzinfo=LONDON))
        month = (month + timedelta(days=32)).replace(day=1)
    bounds = np.array([microseconds(s) for s in starts], dtype=np.int64)
    return (np.searchsorted(bounds, arrived, side="right") - 1,
            [f"{s:%Y-%m}" for s in starts])


def bars(conditions: list, *, by: str = "month") -> list[Bar]:
    """The departed transfers among the referrals matching ``conditions``, grouped by the
    UK month of arrival (``by="month"``) or by referring hospital code (``"hospital"``),
    sorted by label. Each bar's averages add up to its average door-in-door-out, and each
    sum is what ``breakdown`` gives per transfer, summed (in exact microseconds). Raises
    ValueError for another ``by``."""
    if by not in ("month", "hospital"):
        raise ValueError(f"bars by {by!r}: month or hospital")
    transfers = _transfers(conditions)
    if not transfers.size:
        return []
    if by == "month":
        group, labels = _uk_months(transfers["arrived"].astype(np.int64))
    else:
        codes = dict(db.session.execute(select(Hospital.id, Hospital.code)).all())
        sites, group = np.unique(transfers["site"].astype(np.int64), return_inverse=True)
        labels = [codes.get(int(site), "?") for site in sites]
    sums = np.zeros((len(labels), len(STEPS) + 1), dtype=np.int64)
    np.add.at(sums, group, _step_microseconds(transfers))
    counts = np.bincount(group, minlength=len(labels))
    keys = [key for key, *_ in STEPS] + [NOT_SPLIT[0]]
    grouped: dict[str, Bar] = {}
    for index in np.flatnonzero(counts):
        bar = grouped.setdefault(labels[index], Bar(labels[index]))
        bar.transfers += int(counts[index])
        for key, value in zip(keys, sums[index], strict=True):
            bar.sums[key] = bar.sums.get(key, 0.0) + int(value) / 60_000_000
    return [grouped[k] for k in sorted(grouped)]
