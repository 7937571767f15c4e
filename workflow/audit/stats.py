"""Audit numbers: how long each step of a referral took, across the network.

Each referral's milestones are written by the workflow when they happen
(acknowledged_at, decided_at, ... ; first_paged_at and escalated by the sweep when it
claims an escalation page, unanswered_at with the `escalation_exhausted` transition,
first_image_viewed_at with the first `image.view` access-log row). The dashboard reads
them as one numpy record per referral (workflow.audit.clocks: from the trigger-kept
`audit_facts` on PostgreSQL, from `referrals` elsewhere) and computes everything in
numpy, the same way on both databases. Medians and 90th percentiles are continuous
(linear interpolation, as PostgreSQL's ``percentile_cont``), found with
``numpy.partition`` rather than a sort per measure and group.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta

import numpy as np
from sqlalchemy import case, func, select
from sqlalchemy.orm import aliased
from sqlalchemy.sql import Select

from extensions import db
from models import AccessLog, AuditFact, Hospital, HubService, Referral, Specialty
from models.types import UTCDateTime
from workflow.audit import clocks as audit_clocks
from workflow.audit import dido
from workflow.audit.clocks import EPOCH, ESCALATED, MISSING, TRANSFER, UNANSWERED
from workflow.errors import ValidationFailed
from workflow.referrals.clocks import minutes_between
from workflow.referrals.states import Outcome, State
from workflow.times import LONDON

ACKNOWLEDGE_LIMIT = 15  # minutes: an acknowledge slower than this is flagged
DECISION_LIMIT = 30     # minutes: a decision slower than this is flagged

# (key, label, start clock, end clock) of workflow.audit.clocks.CLOCKS.
INTERVALS: tuple[tuple[str, str, str, str], ...] = (
    ("first_page", "Referral → first page", "created", "first_page"),
    ("acknowledge", "Referral → acknowledged", "created", "acknowledged"),
    ("first_image", "Referral → first image viewed", "created", "first_image"),
    ("decision", "Referral → decision", "created", "decided"),
    ("departure", "Decision → departure", "decided", "departed"),
    ("door_in_door_out", "Door-in-door-out (transfers)", "transfer_arrived", "departed"),
    ("onset_decision", "Onset → decision (stroke)", "stroke_onset", "decided"),
)


@dataclass(frozen=True)
class Filters:
    """The dashboard's filters, checked and with codes resolved to ids."""

    date_from: date | None = None
    date_to: date | None = None
    specialty: str | None = None
    hospital: str | None = None  # referring hospital code
    hub: str | None = None       # hub hospital code
    outcome: str | None = None
    state: str | None = None
    ids: dict[str, int] = field(default_factory=dict, compare=False)

    def query_args(self) -> dict[str, str]:
        """The filters as query-string arguments (for links to the exports)."""
        values = {"date_from": self.date_from, "date_to": self.date_to,
                  "specialty": self.specialty, "hospital": self.hospital, "hub": self.hub,
                  "outcome": self.outcome, "state": self.state}
        return {k: str(v) for k, v in values.items() if v}

    def window(self) -> tuple[datetime | None, datetime | None]:
        """[start, end) in UTC: London midnight of date_from to the midnight after date_to."""
        start = end = None
        if self.date_from:
            start = datetime.combine(self.date_from, time(), LONDON)
        if self.date_to:
            end = datetime.combine(self.date_to + timedelta(days=1), time(), LONDON)
        return start, end


# The dates an audit filter may name: any referral's, with room either side.
FIRST_DATE, LAST_DATE = date(1900, 1, 1), date(2999, 12, 31)


def _parse_date(args: Mapping[str, str], name: str, errors: dict[str, str]) -> date | None:
    text = (args.get(name) or "").strip()
    if not text:
        return None
    try:
        value = date.fromisoformat(text)
    except ValueError:
        errors[name] = f"{text[:40]!r} is not a date like 2026-03-31."
        return None
    if not FIRST_DATE <= value <= LAST_DATE:  # 9999-12-31 has no midnight after it
        errors[name] = f"Choose a date from {FIRST_DATE} to {LAST_DATE}, not {value}."
        return None
    return value


def parse_filters(args: Mapping[str, str]) -> Filters:
    """Check the filter arguments (as in a query string) and resolve their codes.

    Raises ValidationFailed with one message per bad field: a date that is not a
    date or is outside FIRST_DATE..LAST_DATE, an end before the start, a code this
    network does not have.
    """
    errors: dict[str, str] = {}
    date_from = _parse_date(args, "date_from", errors)
    date_to = _parse_date(args, "date_to", errors)
    if date_from and date_to and date_to < date_from:
        errors["date_to"] = f"The end date {date_to} is before the start date {date_from}."
    ids: dict[str, int] = {}
    codes = {}
    lookups = (
        ("specialty", Specialty, "a specialty"),
        ("hospital", Hospital, "a hospital"),
        ("hub", Hospital, "a hospital"),
    )
    for name, model, what in lookups:
        code = (args.get(name) or "").strip() or None
        if code is not None:
            found = db.session.scalar(select(model.id).where(model.code == code))
            if found is None:
                errors[name] = f"{code[:40]!r} is not {what} in this network."
            else:
                ids[name] = found
        codes[name] = code
    for name, allowed in (("outcome", {o.value for o in Outcome}),
                          ("state", {s.value for s in State})):
        value = (args.get(name) or "").strip() or None
        if value is not None and value not in allowed:
            errors[name] = (f"{value[:40]!r} is not one of "
                            f"{', '.join(sorted(v.replace('_', ' ') for v in allowed))}.")
        codes[name] = value
    if errors:
        raise ValidationFailed(errors)
    return Filters(date_from=date_from, date_to=date_to, ids=ids, **codes)


def _conditions(f: Filters, model, raised_at) -> list:
    """``f`` as conditions on ``model`` (Referral or AuditFact, which share the filter
    columns); the dates on ``raised_at`` unless it is None."""
    conditions = []
    start, end = f.window()
    if raised_at is not None and start:
        conditions.append(raised_at >= start)
    if raised_at is not None and end:
        conditions.append(raised_at < end)
    if "specialty" in f.ids:
        conditions.append(model.specialty_id == f.ids["specialty"])
    if "hospital" in f.ids:
        conditions.append(model.referring_hospital_id == f.ids["hospital"])
    if "hub" in f.ids:
        conditions.append(model.hub_service_id.in_(
            select(HubService.id).where(HubService.hospital_id == f.ids["hub"])))
    if f.outcome:
        conditions.append(model.outcome == f.outcome)
    if f.state:
        conditions.append(model.state == f.state)
    return conditions


def _referral_conditions(f: Filters, *, dates: bool = True) -> list:
    return _conditions(f, Referral, Referral.created_at if dates else None)


def door_in_door_out_bars(f: Filters, by: str = "month") -> list[dido.Bar]:
    """The door-in-door-out breakdown of the transfers matching ``f``, one bar per UK
    month of arrival (or referring hospital): see workflow.audit.dido.bars."""
    return dido.bars(_referral_conditions(f), by=by)


@dataclass(frozen=True)
class Measure:
    key: str
    label: str
    count: int
    median: float | None  # minutes
    p90: float | None


@dataclass
class Group:
    """A month or a site: how many referrals, and the medians that matter most."""

    key: str
    label: str
    referrals: int = 0
    transfers: int = 0
    median_acknowledge: float | None = None
    median_decision: float | None = None


@dataclass
class Dashboard:
    referrals: int
    measures: list[Measure]
    transfers: int
    unanswered: int
    escalated: int
    slow_acknowledge: int
    slow_decision: int
    by_month: list[Group]
    by_site: list[Group]

    def share(self, count: int) -> float | None:
        return count / self.referrals if self.referrals else None


def percentile(values, p: float) -> float | None:
    """Continuous percentile of ``values`` (linear interpolation, like percentile_cont):
    the two neighbouring ranks are picked with numpy.partition, not a full sort."""
    values = np.asarray(values, dtype=float)
    if not len(values):
        return None
    position = (len(values) - 1) * p
    low = int(position)
    high = min(low + 1, len(values) - 1)
    picked = np.partition(values, (low, high))
    first, second = float(picked[low]), float(picked[high])
    return first + (second - first) * (position - low)


def dashboard(f: Filters) -> Dashboard:
    """Every KPI, share and breakdown for the referrals matching ``f``."""
    sites = dict(db.session.execute(select(Hospital.id, Hospital.code)).all())
    if db.engine.dialect.name == "postgresql":
        clocks = audit_clocks.from_facts(_conditions(f, AuditFact, AuditFact.raised_at))
    else:
        clocks = audit_clocks.from_referrals(_referral_conditions(f))
    return _dashboard(clocks, sites)


def _spans(clocks: np.ndarray) -> dict[str, np.ndarray]:
    """Minutes of each interval per referral, NaN where a clock is missing. As
    ``timedelta.total_seconds() / 60`` (exact microseconds, then two divisions)."""
    spans = {}
    for key, _label, start, end in INTERVALS:
        begun, ended = clocks[start], clocks[end]
        known = (begun != MISSING) & (ended != MISSING)
        spans[key] = np.where(known, (ended - begun) / 1e6 / 60, np.nan)
    return spans


def _london_months(created: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """Each referral's London month as an index into the labels ("2026-03") returned."""
    if not len(created):
        return np.zeros(0, dtype=int), []
    first, last = (EPOCH + timedelta(microseconds=int(edge))
                   for edge in (created.min(), created.max()))
    first, last = first.astimezone(LONDON), last.astimezone(LONDON)
    starts, labels = [], []
    year, month = first.year, first.month
    while (year, month) <= (last.year, last.month):
        starts.append(audit_clocks.microseconds(datetime(year, month, 1, tzinfo=LONDON)))
        labels.append(f"{year:04d}-{month:02d}")
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return np.searchsorted(np.array(starts), created, side="right") - 1, labels


def _known(values: np.ndarray) -> np.ndarray:
    return values[~np.isnan(values)]


def _groups(keys: np.ndarray, label_of, flags: np.ndarray,
            spans: dict[str, np.ndarray]) -> list[Group]:
    """One Group per distinct key (labelled by ``label_of(key)``), sorted by label."""
    if not len(keys):
        return []
    order = np.argsort(keys, kind="stable")  # then each group is one slice
    keys = keys[order]
    starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
    transfers = (flags & TRANSFER != 0)[order]
    acknowledged, decided = spans["acknowledge"][order], spans["decision"][order]
    groups = []
    for start, end in zip(starts, [*starts[1:], len(keys)], strict=True):
        label = label_of(int(keys[start]))
        groups.append(Group(label, label, int(end - start), int(transfers[start:end].sum()),
                            percentile(_known(acknowledged[start:end]), .5),
                            percentile(_known(decided[start:end]), .5)))
    return sorted(groups, key=lambda g: g.key)


def _dashboard(clocks: np.ndarray, sites: dict[int, str]) -> Dashboard:
    clocks = clocks.astype(clocks.dtype.newbyteorder("="))  # once, not per use
    spans = _spans(clocks)
    flags, created = clocks["flags"], clocks["created"]
    month_index, month_labels = _london_months(created)
    measures = []
    for key, label, *_ in INTERVALS:
        known = _known(spans[key])
        measures.append(Measure(key, label, len(known), percentile(known, .5),
                                percentile(known, .9)))
    acknowledged, decided = _known(spans["acknowledge"]), _known(spans["decision"])
    return Dashboard(
        referrals=len(clocks),
        measures=measures,
        transfers=int((flags & TRANSFER != 0).sum()),
        unanswered=int((flags & UNANSWERED != 0).sum()),
        escalated=int((flags & ESCALATED != 0).sum()),
        slow_acknowledge=int((acknowledged > ACKNOWLEDGE_LIMIT).sum()),
        slow_decision=int((decided > DECISION_LIMIT).sum()),
        by_month=_groups(month_index, month_labels.__getitem__, flags, spans),
        by_site=_groups(clocks["site"], lambda site: sites.get(site, "?"), flags, spans),
    )


@dataclass(frozen=True)
class ListedReferral:
    id: int
    reference: str
    specialty: str
    site: str
    state: str
    created_at: datetime
    acknowledge_minutes: float | None
    decision_minutes: float | None
    flags: tuple[str, ...]


def flags(acknowledge: float | None, decision: float | None, unanswered: bool) -> tuple:
    """The outlier flags of one referral, worst first."""
    found = []
    if unanswered:
        found.append("unanswered")
    if acknowledge is not None and acknowledge > ACKNOWLEDGE_LIMIT:
        found.append(f"acknowledge > {ACKNOWLEDGE_LIMIT} min")
    if decision is not None and decision > DECISION_LIMIT:
        found.append(f"decision > {DECISION_LIMIT} min")
    return tuple(found)


def referral_list(f: Filters, limit: int = 200) -> list[ListedReferral]:
    """The newest ``limit`` referrals matching ``f``, with their outlier flags."""
    specialties = dict(db.session.execute(select(Specialty.id, Specialty.code)).all())
    sites = dict(db.session.execute(select(Hospital.id, Hospital.code)).all())
    query = select(Referral.id, Referral.reference, Referral.specialty_id, Referral.state,
                   Referral.referring_hospital_id, Referral.created_at,
                   Referral.acknowledged_at, Referral.decided_at,
                   Referral.unanswered_at.is_not(None).label("unanswered")) \
        .where(*_referral_conditions(f)) \
        .order_by(Referral.created_at.desc(), Referral.id.desc()).limit(limit)
    listed = []
    for r in db.session.execute(query):
        ack = minutes_between(r.created_at, r.acknowledged_at)
        decision = minutes_between(r.created_at, r.decided_at)
        listed.append(ListedReferral(
            r.id, r.reference or f"#{r.id}", specialties.get(r.specialty_id, "?"),
            sites.get(r.referring_hospital_id, "?"), r.state, r.created_at, ack, decision,
            flags(ack, decision, bool(r.unanswered))))
    return listed


FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")  # a spreadsheet would run these


def _export_select(f: Filters, columns) -> Select:
    hub_hospital = aliased(Hospital)
    return select(*columns(hub_hospital)) \
        .join(Specialty, Specialty.id == Referral.specialty_id) \
        .join(Hospital, Hospital.id == Referral.referring_hospital_id) \
        .join(HubService, HubService.id == Referral.hub_service_id) \
        .join(hub_hospital, hub_hospital.id == HubService.hospital_id) \
        .where(*_referral_conditions(f)).order_by(Referral.created_at, Referral.id)


def _export_columns(hub_hospital) -> list:
    # In the order of views.audit.REFERRAL_COLUMNS (arrived_at is both the clock
    # start and the arrival).
    return [Referral.reference, Specialty.code, Hospital.code, hub_hospital.code,
            Referral.arrived_at, Referral.onset_at, Referral.onset_certainty,
            Referral.arrived_at, Referral.created_at, Referral.first_paged_at,
            Referral.acknowledged_at, Referral.first_image_viewed_at, Referral.decided_at,
            Referral.outcome, Referral.departed_at, Referral.arrived_at_hub]


def export_rows(f: Filters, batch: int = 2000) -> Iterator[tuple]:
    """Every referral matching ``f``, one tuple of raw values per referral in the order
    of the referral CSV's columns (aware UTC datetimes, text, None), streamed."""
    query = _export_select(f, _export_columns)
    yield from db.session.execute(query.execution_options(yield_per=batch))


def export_cells(f: Filters, batch: int = 5000) -> Iterator[list] | None:
    """PostgreSQL only (None elsewhere): the referral CSV's cells made in SQL, in lists
    of up to ``batch`` rows read from a server-side cursor.

    Each cell is already what the CSV shows: a time as ISO 8601 UTC
    (``2026-01-10T09:30:00Z``; the columns hold naive UTC, seconds truncated as
    ``strftime`` does), text starting like a formula with a leading apostrophe, None
    for an empty cell. Formatting in Python cost ~135 µs a row (16 cells)."""
    if db.engine.dialect.name != "postgresql":
        return None

    def cell(column):
        if isinstance(column.type, UTCDateTime):
            return func.to_char(column, 'YYYY-MM-DD"T"HH24:MI:SS"Z"')
        return case((func.left(column, 1).in_(FORMULA_STARTS),
                     func.concat("'", column)), else_=column)

    def columns(hub_hospital) -> list:
        return [cell(c) for c in _export_columns(hub_hospital)]

    query = _export_select(f, columns).execution_options(stream_results=True,
                                                         max_row_buffer=batch)

    def partitions() -> Iterator[list]:
        result = db.session.connection().execute(query)
        try:
            yield from result.partitions(batch)
        finally:
            result.close()

    return partitions()


def access_log_rows(f: Filters, batch: int = 2000) -> Iterator[AccessLog]:
    """Access-log rows in ``f``'s dates; with any referral filter, only rows about the
    referrals it matches (whenever they were raised)."""
    query = select(AccessLog).order_by(AccessLog.at, AccessLog.id)
    start, end = f.window()
    if start:
        query = query.where(AccessLog.at >= start)
    if end:
        query = query.where(AccessLog.at < end)
    referral_conditions = _referral_conditions(f, dates=False)
    if referral_conditions:
        query = query.where(AccessLog.referral_id.in_(
            select(Referral.id).where(*referral_conditions)))
    yield from db.session.scalars(query.execution_options(yield_per=batch))


