"""Rota cover: every stretch in the next 72 hours when a hub service's tier would page
nobody, and telling the duty manager and admins once per stretch.

A rota that runs out fails silently: the referral raised then pages nobody at that
tier. The check looks at every tier a service's escalation policy pages and finds
where no shift covers it, or only deactivated people do, or only people without a
phone number. `record_gaps` keeps each gap as a row (a gap seen again is the same
gap, extended if it grew; one no longer seen is resolved); `notify_gaps` claims the
gaps nobody was told about, commits, then emails, so a crash can never send twice.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import joinedload

from extensions import db
from integrations.pager.base import PageMessage, TransportError
from models import HubService, Role, RotaGap, RotaShift, User
from workflow.paging.escalation import policy_steps
from workflow.times import format_local

HORIZON = timedelta(hours=72)
REASONS = {
    "no_shift": "nobody is on the rota",
    "deactivated": "only deactivated people are on the rota",
    "no_phone": "the people on the rota have no phone number",
}


@dataclass(frozen=True)
class Gap:
    """When ``tier`` of ``service`` reaches nobody, and why (keys of REASONS)."""

    service_id: int
    service_name: str
    tier: int
    starts_at: datetime
    ends_at: datetime
    reasons: tuple[str, ...]

    def describe(self) -> str:
        """One line for a page, an email or the command line; no patient data."""
        why = "; ".join(REASONS[r] for r in self.reasons)
        return (f"{self.service_name}, tier {self.tier}: {format_local(self.starts_at)} "
                f"to {format_local(self.ends_at)} ({why})")


def paged_tiers(service_id: int) -> list[int]:
    """The rota tiers the service's escalation policy pages, in order."""
    tiers = [int(s["who"][4:]) for s in policy_steps(service_id) if s["who"].startswith("tier")]
    return sorted(set(tiers))


def _why_uncovered(covering: list[RotaShift]) -> str | None:
    """None when someone reachable holds the tier; otherwise the reason."""
    people = [s.user for s in covering]
    if any(u.active and u.phone.strip() for u in people):
        return None
    if any(u.active for u in people):
        return "no_phone"
    return "deactivated" if people else "no_shift"


def _gaps_of(service: HubService, tier: int, shifts: list[RotaShift], start: datetime,
             end: datetime) -> list[Gap]:
    cuts = sorted({start, end, *(s.starts_at for s in shifts if start < s.starts_at < end),
                   *(s.ends_at for s in shifts if start < s.ends_at < end)})
    gaps: list[Gap] = []
    for a, b in zip(cuts, cuts[1:], strict=False):
        reason = _why_uncovered([s for s in shifts if s.starts_at <= a and s.ends_at >= b])
        if reason is None:
            continue
        last = gaps[-1] if gaps else None
        if last is not None and last.ends_at == a:
            reasons = last.reasons + ((reason,) if reason not in last.reasons else ())
            gaps[-1] = Gap(last.service_id, last.service_name, tier, last.starts_at, b, reasons)
        else:
            gaps.append(Gap(service.id, service.name, tier, a, b, (reason,)))
    return gaps


def find_gaps(at: datetime, horizon: timedelta = HORIZON) -> list[Gap]:
    """Every gap from ``at`` to ``at + horizon``, by service, tier and time."""
    end = at + horizon
    shifts: dict[tuple[int, int], list[RotaShift]] = defaultdict(list)
    for shift in db.session.scalars(
            select(RotaShift).options(joinedload(RotaShift.user))
            .where(RotaShift.starts_at < end, RotaShift.ends_at > at)):
        shifts[shift.hub_service_id, shift.tier].append(shift)
    gaps = []
    for service in db.session.scalars(select(HubService).order_by(HubService.id)):
        for tier in paged_tiers(service.id):
            gaps += _gaps_of(service, tier, shifts[service.id, tier], at, end)
    return gaps


def kept_row(gap: Gap, rows: list[RotaGap]) -> RotaGap | None:
    """The kept gap of the same service and tier that overlaps ``gap``: the same gap."""
    return next((r for r in rows if r.hub_service_id == gap.service_id and r.tier == gap.tier
                 and r.starts_at < gap.ends_at and gap.starts_at < r.ends_at), None)


def record_gaps(at: datetime) -> list[RotaGap]:
    """Bring the kept gaps up to date with what the rota says now; commit.

    A gap that overlaps an open one of the same service and tier is that gap (it may
    have grown); an open gap no longer found is resolved (filled, or over). Returns the
    gaps first found now.
    """
    found = find_gaps(at)
    still_open = list(db.session.scalars(select(RotaGap).where(RotaGap.resolved_at.is_(None))))
    seen, new = set(), []
    for gap in found:
        row = kept_row(gap, still_open)
        if row is None:
            row = RotaGap(hub_service_id=gap.service_id, tier=gap.tier,
                          starts_at=gap.starts_at, ends_at=gap.ends_at, found_at=at,
                          reasons=",".join(gap.reasons), email_result="")
            db.session.add(row)
            new.append(row)
        else:
            row.ends_at = max(row.ends_at, gap.ends_at)
            known = row.reasons.split(",")
            row.reasons = ",".join(known + [r for r in gap.reasons if r not in known])
        seen.add(id(row))
    for row in still_open:
        if id(row) not in seen:
            row.resolved_at = at
    db.session.commit()
    return new


def open_gaps() -> list[RotaGap]:
    """The kept gaps not yet resolved, soonest first (for the status page)."""
    return list(db.session.scalars(
        select(RotaGap).options(joinedload(RotaGap.hub_service))
        .where(RotaGap.resolved_at.is_(None)).order_by(RotaGap.starts_at, RotaGap.id)))


def _recipients(service: HubService) -> list[User]:
    """The service's hospital's duty managers (every duty manager when it has none) and
    every admin: active people with an email address."""
    people = [u for u in db.session.scalars(select(User).where(User.active.is_(True))
                                            .order_by(User.id)) if u.email]
    managers = [u for u in people if u.has_role(Role.DUTY_MANAGER)]
    local = [u for u in managers if u.hospital_id == service.hospital_id]
    chosen = (local or managers) + [u for u in people if u.has_role(Role.ADMIN)]
    return list({u.id: u for u in chosen}.values())


def _claim_unsent(at: datetime) -> list[int]:
    """Mark the open gaps nobody was told about as told now; commit; return their ids.
    Two schedulers cannot both claim one: the update only counts where it changed."""
    claimed = []
    ids = db.session.scalars(select(RotaGap.id).where(RotaGap.emailed_at.is_(None),
                                                      RotaGap.resolved_at.is_(None)))
    for gap_id in list(ids):
        result = db.session.execute(update(RotaGap).where(
            RotaGap.id == gap_id, RotaGap.emailed_at.is_(None)).values(emailed_at=at))
        if result.rowcount == 1:
            claimed.append(gap_id)
    db.session.commit()
    return claimed


def notify_gaps(channels: Mapping, base_url: str, at: datetime) -> int:
    """Email each gap nobody was told about to its duty managers and the admins, once.

    Claims first and commits, then sends outside any transaction; what each send gave
    is kept on the gap (``email_result``), for the status page. A failed email is not
    retried (the status page still shows the gap). Returns the number of gaps told.
    """
    claimed = _claim_unsent(at)
    for gap_id in claimed:
        row = db.session.get(RotaGap, gap_id)
        gap = Gap(row.hub_service_id, row.hub_service.name, row.tier, row.starts_at,
                  row.ends_at, tuple(row.reasons.split(",")))
        text = (f"Rota gap: {gap.describe()}. A referral raised then pages nobody at this "
                "tier. Add shifts on the rota page.")
        recipients = [u.email for u in _recipients(row.hub_service)]
        db.session.rollback()  # no transaction held while the mail server answers
        results = []
        for email in recipients:
            try:
                channels["email"].notify(PageMessage(to=email, text=text,
                                                     link=f"{base_url}/admin/rota",
                                                     reference=f"rota-gap-{gap_id}"))
                results.append(f"sent to {email}")
            except TransportError as exc:
                results.append(f"not sent to {email}: {exc}")
        db.session.execute(update(RotaGap).where(RotaGap.id == gap_id).values(
            email_result=("; ".join(results) or "nobody to tell: no duty manager or admin")
            [:500]))
        db.session.commit()
    return len(claimed)
