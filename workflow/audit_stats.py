"""Audit numbers: how long each step of a referral took, across the network.

Pure queries over the milestone columns of `referrals`, written by the workflow when
they happen (acknowledged_at, decided_at, ... ; first_paged_at and escalated by the
sweep when it claims an escalation page, unanswered_at with the
`escalation_exhausted` transition, first_image_viewed_at with the first `image.view`
access-log row), so a date range is one pass over `referrals` with no per-row lookups.
Medians and 90th percentiles are continuous (linear interpolation, as PostgreSQL's
``percentile_cont``): computed in SQL on PostgreSQL, in Python on SQLite, with the
same answers.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta

from sqlalchemy import and_, case, func, literal_column, select, text, tuple_
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import aliased
from sqlalchemy.sql import Select

from extensions import db
from models import AccessLog, Hospital, HubService, Referral, Specialty
from models.types import UTCDateTime
from workflow.errors import ValidationFailed
from workflow.states import Outcome, State
from workflow.times import LONDON

ACKNOWLEDGE_LIMIT = 15  # minutes: an acknowledge slower than this is flagged
DECISION_LIMIT = 30     # minutes: a decision slower than this is flagged
ONSET_KNOWN = ("precise", "estimated")

# (key, label, start column, end column) of the per-referral timeline below.
INTERVALS: tuple[tuple[str, str, str, str], ...] = (
    ("first_page", "Referral → first page", "created_at", "first_page_at"),
    ("acknowledge", "Referral → acknowledged", "created_at", "acknowledged_at"),
    ("first_image", "Referral → first image viewed", "created_at", "first_image_at"),
    ("decision", "Referral → decision", "created_at", "decided_at"),
    ("departure", "Decision → departure", "decided_at", "departed_at"),
    ("door_in_door_out", "Door-in-door-out (transfers)", "transfer_arrived_at", "departed_at"),
    ("onset_decision", "Onset → decision (stroke)", "stroke_onset_at", "decided_at"),
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


def _parse_date(args: Mapping[str, str], name: str, errors: dict[str, str]) -> date | None:
    text = (args.get(name) or "").strip()
    if not text:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        errors[name] = f"{text[:40]!r} is not a date like 2026-03-31."
        return None


def parse_filters(args: Mapping[str, str]) -> Filters:
    """Check the filter arguments (as in a query string) and resolve their codes.

    Raises ValidationFailed with one message per bad field: a date that is not a
    date, an end before the start, a code this network does not have.
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


def _referral_conditions(f: Filters, *, dates: bool = True) -> list:
    conditions = []
    start, end = f.window()
    if dates and start:
        conditions.append(Referral.created_at >= start)
    if dates and end:
        conditions.append(Referral.created_at < end)
    if "specialty" in f.ids:
        conditions.append(Referral.specialty_id == f.ids["specialty"])
    if "hospital" in f.ids:
        conditions.append(Referral.referring_hospital_id == f.ids["hospital"])
    if "hub" in f.ids:
        conditions.append(Referral.hub_service_id.in_(
            select(HubService.id).where(HubService.hospital_id == f.ids["hub"])))
    if f.outcome:
        conditions.append(Referral.outcome == f.outcome)
    if f.state:
        conditions.append(Referral.state == f.state)
    return conditions


def timeline_select(f: Filters) -> Select:
    """One row per referral matching ``f``: its milestones, site and flags."""
    stroke = select(Specialty.id).where(Specialty.code == "stroke").scalar_subquery()
    return select(
        Referral.id, Referral.reference, Referral.state, Referral.outcome,
        Referral.specialty_id, Referral.referring_hospital_id, Referral.hub_service_id,
        Referral.created_at, Referral.acknowledged_at, Referral.decided_at,
        Referral.departed_at, Referral.arrived_at, Referral.arrived_at_hub,
        Referral.onset_at, Referral.onset_certainty,
        Referral.first_paged_at.label("first_page_at"),
        Referral.first_image_viewed_at.label("first_image_at"),
        case((Referral.outcome == Outcome.TRANSFER, Referral.arrived_at))
        .label("transfer_arrived_at"),
        case((and_(Referral.specialty_id == stroke,
                   Referral.onset_certainty.in_(ONSET_KNOWN)), Referral.onset_at))
        .label("stroke_onset_at"),
        Referral.unanswered_at.is_not(None).label("unanswered"),
        Referral.escalated.label("escalated"),
    ).where(*_referral_conditions(f))


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


def percentile(values: list[float], p: float) -> float | None:
    """Continuous percentile of ``values`` (linear interpolation, like percentile_cont)."""
    if not values:
        return None
    ordered = sorted(values)
    position = (len(ordered) - 1) * p
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def minutes_between(start: datetime | None, end: datetime | None) -> float | None:
    if start is None or end is None:
        return None
    return (end - start).total_seconds() / 60


def dashboard(f: Filters) -> Dashboard:
    """Every KPI, share and breakdown for the referrals matching ``f``."""
    sites = dict(db.session.execute(select(Hospital.id, Hospital.code)).all())
    if db.engine.dialect.name == "postgresql":
        # For this transaction only: the percentile and group-by sorts of a year
        # (~250,000 rows) fit in memory instead of spilling to disk at the default
        # 4 MB, and no JIT compile (measured: 1.6 s of JIT for a sub-second query).
        db.session.execute(text("SET LOCAL work_mem = '64MB'"))
        db.session.execute(text("SET LOCAL jit = off"))
        return _dashboard_in_sql(timeline_select(f).subquery("t"), sites)
    return _dashboard_in_python(db.session.execute(timeline_select(f)).mappings().all(), sites)


def _dashboard_in_sql(t, sites: dict[int, str]) -> Dashboard:
    """PostgreSQL: one pass for the totals, one for both breakdowns; percentiles in SQL."""

    def minutes(start: str, end: str):
        # date_part gives float8; EXTRACT(epoch ...) gives numeric since PostgreSQL 14
        # (slower arithmetic, then a cast), for 9 spans a row.
        return func.date_part("epoch", t.c[end] - t.c[start]) / 60

    def median_and_p90(expr):
        # One sort gives both: percentile_cont(ARRAY[.5, .9]) returns {median, p90}.
        return func.percentile_cont(postgresql.array([.5, .9])).within_group(expr)

    count_all = func.count()
    transfers = func.count().filter(t.c.outcome == Outcome.TRANSFER)
    ack, decision = minutes("created_at", "acknowledged_at"), minutes("created_at", "decided_at")
    columns = [count_all, transfers,
               func.count().filter(t.c.unanswered), func.count().filter(t.c.escalated),
               func.count().filter(ack > ACKNOWLEDGE_LIMIT),
               func.count().filter(decision > DECISION_LIMIT)]
    for _key, _label, start, end in INTERVALS:
        span = minutes(start, end)
        columns += [func.count(span), median_and_p90(span)]
    totals = db.session.execute(select(*columns).select_from(t)).one()
    measures = []
    for i, (key, label, *_) in enumerate(INTERVALS):
        count, (p50, p90) = totals[6 + 2 * i], totals[7 + 2 * i] or (None, None)
        measures.append(Measure(key, label, count, p50, p90))

    # Both breakdowns from one scan: GROUPING SETS ((month), (site)). The month is a
    # timestamp (London month start) while grouping, made text after: sorting 250,000
    # timestamps is much cheaper than sorting as many collated strings.
    month_start = func.date_trunc(literal_column("'month'"), func.timezone(
        literal_column("'Europe/London'"),
        func.timezone(literal_column("'UTC'"), t.c.created_at)))
    keyed = select(month_start.label("month"), t.c.referring_hospital_id.label("site"),
                   t.c.outcome, ack.label("ack"), decision.label("decision")) \
        .select_from(t).subquery("k")
    breakdowns = select(
        func.grouping(keyed.c.month).label("by_site"), keyed.c.month, keyed.c.site,
        func.count(), func.count().filter(keyed.c.outcome == Outcome.TRANSFER),
        func.percentile_cont(.5).within_group(keyed.c.ack),
        func.percentile_cont(.5).within_group(keyed.c.decision),
    ).group_by(func.grouping_sets(tuple_(keyed.c.month), tuple_(keyed.c.site)))
    by_month, by_site = [], []
    for by_site_row, month_at, site, n, tr, a, d in db.session.execute(breakdowns):
        if by_site_row:
            code = sites.get(site, "?")
            by_site.append(Group(code, code, n, tr, a, d))
        else:
            key = month_at.strftime("%Y-%m")
            by_month.append(Group(key, key, n, tr, a, d))
    by_month.sort(key=lambda g: g.key)
    by_site.sort(key=lambda g: g.key)
    return Dashboard(totals[0], measures, totals[1], totals[2], totals[3], totals[4],
                     totals[5], by_month, by_site)


def _dashboard_in_python(rows, sites: dict[int, str]) -> Dashboard:
    spans = {key: [] for key, *_ in INTERVALS}
    months: dict[str, list] = {}
    by_site: dict[str, list] = {}
    for row in rows:
        for key, _label, start, end in INTERVALS:
            value = minutes_between(row[start], row[end])
            if value is not None:
                spans[key].append(value)
        months.setdefault(row["created_at"].astimezone(LONDON).strftime("%Y-%m"), []).append(row)
        by_site.setdefault(sites.get(row["referring_hospital_id"], "?"), []).append(row)

    def group(key: str, members: list) -> Group:
        acks = [m for r in members
                if (m := minutes_between(r["created_at"], r["acknowledged_at"])) is not None]
        decisions = [m for r in members
                     if (m := minutes_between(r["created_at"], r["decided_at"])) is not None]
        return Group(key, key, len(members),
                     sum(r["outcome"] == Outcome.TRANSFER for r in members),
                     percentile(acks, .5), percentile(decisions, .5))

    return Dashboard(
        referrals=len(rows),
        measures=[Measure(key, label, len(spans[key]), percentile(spans[key], .5),
                          percentile(spans[key], .9)) for key, label, *_ in INTERVALS],
        transfers=sum(r["outcome"] == Outcome.TRANSFER for r in rows),
        unanswered=sum(bool(r["unanswered"]) for r in rows),
        escalated=sum(bool(r["escalated"]) for r in rows),
        slow_acknowledge=sum(v > ACKNOWLEDGE_LIMIT for v in spans["acknowledge"]),
        slow_decision=sum(v > DECISION_LIMIT for v in spans["decision"]),
        by_month=[group(k, months[k]) for k in sorted(months)],
        by_site=[group(k, by_site[k]) for k in sorted(by_site)],
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


