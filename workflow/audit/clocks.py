"""The audit dashboard's per-referral clocks, as one numpy record per referral.

PostgreSQL: the trigger-kept `audit_facts` rows (see models/audit_facts.py) already
hold each referral's record packed; a date range is one index range and one
``string_agg``, read straight into numpy. SQLite: the same records are made here in
Python from `referrals`. Both give the same array, so the numbers are computed once,
the same way, on either database.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
from sqlalchemy import LargeBinary, func, literal, select

from extensions import db
from models import AuditFact, Referral, Specialty
from workflow.referrals.states import Outcome

# The packed layout of audit_facts.clocks (big-endian, as PostgreSQL sends it).
CLOCKS = np.dtype([
    ("created", ">i8"), ("first_page", ">i8"), ("acknowledged", ">i8"),
    ("first_image", ">i8"), ("decided", ">i8"), ("departed", ">i8"),
    ("transfer_arrived", ">i8"), ("stroke_onset", ">i8"),
    ("site", ">i4"), ("flags", ">i4"),
])
MISSING = np.iinfo(np.int64).min  # a NULL time (PostgreSQL's -infinity)
EPOCH = datetime(2000, 1, 1, tzinfo=UTC)  # PostgreSQL's timestamp zero
TRANSFER, UNANSWERED, ESCALATED = 1, 2, 4
ONSET_KNOWN = ("precise", "estimated")


def microseconds(at: datetime | None) -> int:
    """An aware datetime as microseconds since 2000-01-01 UTC (MISSING for None)."""
    if at is None:
        return int(MISSING)
    return (at - EPOCH) // timedelta(microseconds=1)


def from_facts(conditions: list) -> np.ndarray:
    """PostgreSQL: the records of the `audit_facts` rows matching ``conditions``."""
    packed = db.session.scalar(
        select(func.string_agg(AuditFact.clocks, literal(b"", LargeBinary)))
        .where(*conditions))
    return np.frombuffer(packed or b"", dtype=CLOCKS)


def _record(r, stroke_id: int | None) -> tuple:
    transfer = r.outcome == Outcome.TRANSFER
    stroke_onset = r.onset_at if (r.specialty_id == stroke_id
                                  and r.onset_certainty in ONSET_KNOWN) else None
    flags = ((TRANSFER if transfer else 0) | (UNANSWERED if r.unanswered_at else 0)
             | (ESCALATED if r.escalated else 0))
    times = (r.created_at, r.first_paged_at, r.acknowledged_at, r.first_image_viewed_at,
             r.decided_at, r.departed_at, r.arrived_at if transfer else None, stroke_onset)
    return (*(microseconds(t) for t in times), r.referring_hospital_id, flags)


def record_columns() -> tuple:
    return (Referral.id, Referral.created_at, Referral.first_paged_at,
            Referral.acknowledged_at, Referral.first_image_viewed_at, Referral.decided_at,
            Referral.departed_at, Referral.arrived_at, Referral.onset_at,
            Referral.onset_certainty, Referral.specialty_id, Referral.outcome,
            Referral.unanswered_at, Referral.escalated, Referral.referring_hospital_id)


def from_referrals(conditions: list) -> np.ndarray:
    """Any database: the records of the referrals matching ``conditions``, made in Python
    (fine for a development database; PostgreSQL reads audit_facts instead)."""
    stroke_id = db.session.scalar(select(Specialty.id).where(Specialty.code == "stroke"))
    rows = db.session.execute(select(*record_columns()).where(*conditions))
    return np.array([_record(r, stroke_id) for r in rows], dtype=CLOCKS)


def mismatched_facts(limit: int = 20, referral_ids: list[int] | None = None) -> list[int]:
    """PostgreSQL: ids of referrals whose `audit_facts` row is missing or differs from
    the record made here in Python from the referral, in id order (at most ``limit``;
    [] when all agree, and always on other databases). Reads every referral, or only
    ``referral_ids``."""
    if db.engine.dialect.name != "postgresql":
        return []
    if referral_ids is not None:
        bad: list[int] = []
        for start in range(0, len(referral_ids), 1000):
            bad += _mismatched(limit - len(bad), referral_ids[start:start + 1000])
            if len(bad) >= limit:
                break
        return bad
    return _mismatched(limit, None)


def _mismatched(limit: int, referral_ids: list[int] | None) -> list[int]:
    stroke_id = db.session.scalar(select(Specialty.id).where(Specialty.code == "stroke"))
    kept = (AuditFact.raised_at, AuditFact.specialty_id, AuditFact.referring_hospital_id,
            AuditFact.hub_service_id, AuditFact.outcome, AuditFact.state, AuditFact.clocks)
    query = select(*record_columns(), Referral.hub_service_id, Referral.state,
                   *(c.label(f"kept_{c.key}") for c in kept)) \
        .outerjoin(AuditFact, AuditFact.referral_id == Referral.id) \
        .order_by(Referral.id).execution_options(yield_per=5000)
    if referral_ids is not None:
        query = query.where(Referral.id.in_(referral_ids))
    bad = []
    for r in db.session.execute(query):
        expected = (r.created_at, r.specialty_id, r.referring_hospital_id, r.hub_service_id,
                    r.outcome, r.state,
                    np.array([_record(r, stroke_id)], dtype=CLOCKS).tobytes())
        found = (r.kept_raised_at, r.kept_specialty_id, r.kept_referring_hospital_id,
                 r.kept_hub_service_id, r.kept_outcome, r.kept_state,
                 bytes(r.kept_clocks) if r.kept_clocks is not None else None)
        if found != expected:
            bad.append(r.id)
            if len(bad) >= limit:
                break
    return bad  # no row without its referral: the foreign key cascades deletes


def verify_facts(referral_ids: list[int] | None = None) -> tuple[int, list[str]]:
    """`flask audit verify` and the nightly check: the dashboard's facts equal the
    referrals (only those of ``referral_ids`` when given)."""
    bad = mismatched_facts(referral_ids=referral_ids)
    count = db.session.scalar(select(func.count(AuditFact.referral_id))) \
        if db.engine.dialect.name == "postgresql" else 0
    return count, [f"audit facts of referral {referral_id} differ from the referral (the "
                   "dashboard would count it wrongly): any update of the referral row "
                   "rewrites them" for referral_id in bad]
