"""The integrity check behind `flask audit verify`: every event chain, every record hash."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import select

from extensions import db
from models import Referral, ReferralEvent
from workflow import access_log
from workflow.audit import anchors, derived, records
from workflow.audit import clocks as audit_clocks
from workflow.referrals.chain import verify_chain


@dataclass
class IntegrityReport:
    referrals_checked: int = 0
    events_checked: int = 0
    problems: list[str] = field(default_factory=list)
    full: bool = True  # the whole walk, or the nightly check since an anchor (`nightly`)

    @property
    def ok(self) -> bool:
        return not self.problems


EVENT_COLUMNS = tuple(getattr(ReferralEvent, name) for name in (
    "id", "referral_id", "seq", "kind", "at", "actor_id", "actor_label", "from_state",
    "to_state", "reason", "data", "prev_hash", "hash"))


# What else is kept that must not change: each returns (rows checked, [problem, ...]).
RECORD_CHECKS = (records.verify_records, audit_clocks.verify_facts, access_log.verify,
                 anchors.verify_published)


REFERRAL_READ = (Referral.id, Referral.version, Referral.state,
                 *(getattr(Referral, name) for name in derived.REFERRAL_COLUMNS))


def check_referrals(referrals: list, report: IntegrityReport, codes: dict[int, str],
                    ids: list[int] | None = None) -> None:
    """Check a batch of referral rows (REFERRAL_READ, by id): each one's event chain, then
    the columns and rows copied from it (`derived`). The events and records are read
    for the id range of the batch, or for exactly ``ids`` (scattered referrals).
    Adds to ``report``; raises only what the database raises."""
    if not referrals:
        return
    first, last = referrals[0].id, referrals[-1].id
    events: dict[int, list] = {r.id: [] for r in referrals}
    where = (ReferralEvent.referral_id.in_(ids) if ids is not None
             else ReferralEvent.referral_id.between(first, last))
    for event in db.session.execute(
            select(*EVENT_COLUMNS).where(where)
            .order_by(ReferralEvent.referral_id, ReferralEvent.id)):
        # A referral id in the range but not in `referrals` is an orphan: found apart.
        events.get(event.referral_id, []).append(event)
    decisions, kept = derived.load(first, last, ids)
    for referral in referrals:
        report.referrals_checked += 1
        report.events_checked += len(events[referral.id])
        # The chain first: only an intact chain can be replayed against the columns.
        problem = verify_chain(referral, events[referral.id]) or derived.verify_derived(
            referral, events[referral.id], decisions.get(referral.id),
            kept.get(referral.id, []), codes)
        if problem:
            report.problems.append(str(problem))


def verify_all(batch: int = 2000) -> IntegrityReport:
    """Walk every referral's event chain (in id batches) and replay it against the
    columns copied from it (`derived`), then every stored record's hashes and the
    dashboard's audit facts (RECORD_CHECKS).

    The walk reads plain rows, not ORM objects: a million referrals have about eight
    million events. Raises only what the database raises.
    """
    report = IntegrityReport()
    codes = derived.hospital_codes()
    last_id = 0
    while True:
        referrals = db.session.execute(
            select(*REFERRAL_READ).where(Referral.id > last_id).order_by(Referral.id)
            .limit(batch)).all()
        if not referrals:
            break
        check_referrals(referrals, report, codes)
        last_id = referrals[-1].id
    # NOT EXISTS, not NOT IN: PostgreSQL runs NOT IN over a million ids as a nested
    # scan (it had not finished after 10 minutes at 1M referrals); this is an anti-join.
    orphans = db.session.scalars(
        select(ReferralEvent.referral_id).where(
            ~select(Referral.id).where(Referral.id == ReferralEvent.referral_id).exists())
        .distinct())
    for referral_id in orphans:
        report.problems.append(f"events exist for referral {referral_id}, which is missing")
    for check in RECORD_CHECKS:
        count, problems = check()
        report.problems.extend(problems)
    return report
