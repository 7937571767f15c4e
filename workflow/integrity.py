"""The integrity check behind `flask audit verify`: every event chain, every record hash."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import select

from extensions import db
from models import Referral, ReferralEvent
from workflow.chain import verify_chain


@dataclass
class IntegrityReport:
    referrals_checked: int = 0
    events_checked: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


_record_checks: list = []


def record_check(check):
    """Register ``check() -> (count, [problem, ...])`` for stored records (decision PDFs)."""
    _record_checks.append(check)
    return check


def verify_all(batch: int = 500) -> IntegrityReport:
    """Walk every referral's event chain (in id batches) and every registered record check."""
    report = IntegrityReport()
    last_id = 0
    while True:
        batch_referrals = list(db.session.scalars(
            select(Referral).where(Referral.id > last_id).order_by(Referral.id).limit(batch)))
        if not batch_referrals:
            break
        ids = [r.id for r in batch_referrals]
        events: dict[int, list[ReferralEvent]] = {i: [] for i in ids}
        for event in db.session.scalars(select(ReferralEvent)
                                        .where(ReferralEvent.referral_id.in_(ids))
                                        .order_by(ReferralEvent.referral_id, ReferralEvent.id)):
            events[event.referral_id].append(event)
        for referral in batch_referrals:
            report.referrals_checked += 1
            report.events_checked += len(events[referral.id])
            problem = verify_chain(referral, events[referral.id])
            if problem:
                report.problems.append(str(problem))
        last_id = ids[-1]
        db.session.expunge_all()
    orphans = db.session.scalars(
        select(ReferralEvent.referral_id).where(
            ReferralEvent.referral_id.not_in(select(Referral.id))).distinct())
    for referral_id in orphans:
        report.problems.append(f"events exist for referral {referral_id}, which is missing")
    for check in _record_checks:
        count, problems = check()
        report.problems.extend(problems)
    return report
