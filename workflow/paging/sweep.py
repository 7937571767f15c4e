"""The scheduler's job: claim due pages, send them, escalate. Safe to run in many processes.

A page is claimed by a conditional UPDATE (status due -> claimed, rowcount checked)
after picking it with `FOR UPDATE SKIP LOCKED` on PostgreSQL (SQLite transactions
are already exclusive). In the claim transaction the sweep also re-reads the
referral under a lock — so an acknowledge that commits first always stops the page —
writes the deliveries and schedules the next step. Sending happens after commit,
outside any transaction, and each result is recorded in its own short transaction.
A delivery left "sending" by a crashed sweep is sent again after a lease (a late
duplicate is better than a missed page).
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from flask import current_app
from sqlalchemy import func, select, update
from sqlalchemy.orm import joinedload

from extensions import db
from integrations.pager.base import FAILED, DeliveryStatus
from models import Delivery, Escalation, Page, Referral, SchedulerHeartbeat
from workflow import events
from workflow.errors import Conflict
from workflow.paging import delivery as sender
from workflow.paging import escalation, leadership, workers
from workflow.paging.pages import ASKING, ESCALATING, PageKind, PageStatus
from workflow.referrals import actions as referrals
from workflow.referrals import receipts
from workflow.referrals.states import State
from workflow.times import now as utcnow

log = logging.getLogger(__name__)

LEASE = timedelta(seconds=60)
WORKER = f"{socket.gethostname()}:{os.getpid()}"


@dataclass
class SweepResult:
    claimed: int = 0
    sent: int = 0
    failed: int = 0
    cancelled: int = 0
    resent: int = 0
    errors: list[str] = field(default_factory=list)


def heartbeat(name: str = "sweep", at: datetime | None = None, detail: str = "") -> None:
    at = at or utcnow()
    row = db.session.get(SchedulerHeartbeat, name)
    if row is None:
        db.session.add(SchedulerHeartbeat(name=name, beat_at=at, detail=detail[:200]))
    else:
        row.beat_at, row.detail = at, detail[:200]
    db.session.commit()


def _pick_due_page(now: datetime) -> Page | None:
    query = (select(Page).where(Page.status == PageStatus.DUE, Page.due_at <= now)
             .order_by(Page.due_at, Page.id).limit(1))
    if db.engine.dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    return db.session.scalar(query)


def _lock_referral(referral_id: int) -> Referral:
    """Re-read the referral, locked against a concurrent acknowledge until we commit."""
    query = select(Referral).where(Referral.id == referral_id) \
        .options(joinedload(Referral.hub_service, innerjoin=True)) \
        .execution_options(populate_existing=True)
    if db.engine.dialect.name == "postgresql":
        query = query.with_for_update(of=Referral)
    return db.session.scalar(query)


def _record_milestones(referral_id: int, milestones: tuple, page: Page, paged: bool,
                       now: datetime) -> None:
    """Audit milestones on the (locked) referral: the first escalation page that
    reached someone, and whether escalation went past its first step.
    ``milestones`` is (first_paged_at, escalated) as read under the lock."""
    first_paged_at, escalated = milestones
    values = {}
    if paged and first_paged_at is None:
        values["first_paged_at"] = now
    if page.step >= 1 and not escalated:
        values["escalated"] = True
    if values:
        db.session.execute(update(Referral).where(Referral.id == referral_id).values(**values)
                           .execution_options(synchronize_session=False))


def claim_next(now: datetime, worker: str = WORKER) -> tuple[Page | None, list[int]]:
    """Claim one due page and write its deliveries; return (page, delivery ids to send).

    Returns (None, []) when nothing is due or this process no longer leads the
    scheduler (fencing: see workflow/paging/leadership.py). Commits.
    """
    if not leadership.may_claim():
        db.session.rollback()
        return None, []
    page = _pick_due_page(now)
    if page is None:
        db.session.rollback()
        return None, []
    referral = _lock_referral(page.referral_id)
    milestones = (referral.first_paged_at, referral.escalated)
    claimed = db.session.execute(
        update(Page).where(Page.id == page.id, Page.status == PageStatus.DUE)
        .values(status=PageStatus.CLAIMED, claimed_at=now, claimed_by=worker[:64])
        .execution_options(synchronize_session=False)
    ).rowcount
    if claimed != 1:
        db.session.rollback()
        return None, []
    needs_open = page.kind in (*ESCALATING, PageKind.HANDOVER)
    if needs_open and referral.state not in escalation.PAGEABLE + (State.UNANSWERED,):
        db.session.execute(update(Page).where(Page.id == page.id)
                           .values(status=PageStatus.CANCELLED))
        db.session.commit()
        return page, []
    if page.kind == PageKind.REALARM and referral.state != State.UNANSWERED:
        # Accepted, cancelled or paged again since: no more repeat alarms.
        db.session.execute(update(Page).where(Page.id == page.id)
                           .values(status=PageStatus.CANCELLED))
        db.session.commit()
        return page, []
    if page.kind == PageKind.EXHAUSTED:
        if referral.state == State.AWAITING_SPECIALIST:
            referrals.transition(referral.id, "escalation_exhausted", None, now=now,
                                 commit=False,
                                 updates={"unanswered_at": referral.unanswered_at or now})
        db.session.commit()
        return page, []
    if page.kind == PageKind.ESCALATION and referral.state == State.UNANSWERED:
        db.session.execute(update(Page).where(Page.id == page.id)
                           .values(status=PageStatus.CANCELLED))
        db.session.commit()
        return page, []
    if page.kind == PageKind.ESCALATION and referral.state == State.SUBMITTED:
        referrals.transition(referral.id, "page_sent", None, now=now, commit=False,
                             data={"step": page.step, "who": page.who})
    people = escalation.recipients(page, referral, now)
    steps = db.session.scalar(select(Escalation.steps)
                              .where(Escalation.referral_id == referral.id))
    deliveries = []
    for person in people:
        for channel in escalation.channels_for(page, person, steps):
            deliveries.append(Delivery(
                page_id=page.id, referral_id=referral.id, recipient_id=person.id,
                channel=channel, text=page.text, status=DeliveryStatus.SENDING, claimed_at=now,
                send_attempts=1, updated_at=now))
    if not people:
        deliveries.append(Delivery(
            page_id=page.id, referral_id=referral.id, recipient_id=None, channel="none",
            text=page.text, status=DeliveryStatus.FAILED, updated_at=now, permanent_failure=True,
            error=f"nobody to page for {page.who.replace('_', ' ')} (check the rota)"))
    db.session.add_all(deliveries)
    if people:  # whoever this page brings in can read the thread so far
        receipts.catch_up(referral)
    if page.kind == PageKind.REALARM:
        # Scheduled in the claim's own transaction: a crash after it cannot stop them.
        escalation.schedule_realarm(page, now)
    if page.kind == PageKind.ESCALATION:
        _record_milestones(referral.id, milestones, page, bool(people), now)
        escalation.schedule_after(page, steps, now)
        if not people:
            db.session.flush()
            escalation.move_on_now(referral.id, now)
    db.session.flush()
    to_send = [d.id for d in deliveries if d.status == DeliveryStatus.SENDING]
    db.session.commit()
    if people and page.kind in ASKING:
        # A specialist is about to tap the link: whatever reacts (warming their first
        # images) runs after the claim has committed, never inside it.
        events.committed(events.SPECIALIST_PAGED, referral.id)
    return page, to_send


def _claim_stale(now: datetime) -> list[int]:
    """Deliveries a crashed sweep left in 'sending': take them over for a resend
    (none when this process no longer leads the scheduler)."""
    if not leadership.may_claim():
        db.session.rollback()
        return []
    stale = list(db.session.scalars(
        select(Delivery.id).where(Delivery.status == DeliveryStatus.SENDING,
                                  Delivery.claimed_at < now - LEASE).limit(20)))
    taken = []
    for delivery_id in stale:
        if db.session.execute(
            update(Delivery).where(Delivery.id == delivery_id,
                                   Delivery.status == DeliveryStatus.SENDING,
                                   Delivery.claimed_at < now - LEASE)
            .values(claimed_at=now, send_attempts=Delivery.send_attempts + 1)
            .execution_options(synchronize_session=False)
        ).rowcount == 1:
            taken.append(delivery_id)
    db.session.commit()
    return taken


def _claim_resends(now: datetime) -> list[int]:
    """Failed deliveries the provider never took whose resend time has come: take them
    back to 'sending' (none when this process no longer leads the scheduler). A page
    asking for acceptance is not sent again once the referral is accepted or closed."""
    if not leadership.may_claim():
        db.session.rollback()
        return []
    waiting = db.session.execute(
        select(Delivery.id, Delivery.referral_id, Page.kind).join(Page, Page.id == Delivery.page_id)
        .where(Delivery.retry_at <= now, Delivery.status == DeliveryStatus.FAILED)
        .order_by(Delivery.retry_at).limit(20)).all()
    taken = []
    for delivery_id, referral_id, kind in waiting:
        referral = _lock_referral(referral_id)
        still_open = referral.state in escalation.PAGEABLE + (State.UNANSWERED,)
        values = {"retry_at": None}
        if still_open or kind not in (*ESCALATING, PageKind.HANDOVER):
            values.update(status=DeliveryStatus.SENDING, claimed_at=now, error="",
                          send_attempts=Delivery.send_attempts + 1)
        if db.session.execute(
            update(Delivery).where(Delivery.id == delivery_id, Delivery.retry_at <= now,
                                   Delivery.status == DeliveryStatus.FAILED)
            .values(**values).execution_options(synchronize_session=False)
        ).rowcount == 1 and "status" in values:
            taken.append(delivery_id)
    db.session.commit()
    return taken


def run_once(channels: Mapping, *, now: datetime | None = None, limit: int = 100,
             worker: str = WORKER) -> SweepResult:
    """One sweep: resend stale deliveries, then claim and send up to ``limit`` due pages.

    On PostgreSQL several claim-and-send loops run side by side (SEND_WORKERS, see
    workflow.paging.workers); the sweep returns when all have finished. ``now`` pins
    the clock for every claim (tests); by default each claim reads it. Raises what a
    loop raised (a database error), after every loop has finished.
    """
    result = SweepResult()
    pinned = now is not None
    now = now or utcnow()
    heartbeat(at=now, detail=worker)
    for delivery_id in _claim_stale(now) + _claim_resends(now):
        result.resent += 1
        _count(result, sender.send(delivery_id, channels))
    budget = workers.Budget(limit)

    def loop() -> SweepResult:
        mine = SweepResult()
        while budget.take():
            try:
                # Each claim takes the clock afresh: sends take time, and a claim stamped
                # with the sweep's start would lose its lease early (a duplicate send from
                # another sweep), schedule the next step early, and leave pages that fell
                # due meanwhile for the next tick.
                page, delivery_ids = claim_next(now if pinned else utcnow(), worker)
            except Conflict as exc:
                db.session.rollback()
                mine.errors.append(str(exc))
                continue
            if page is None:
                break
            mine.claimed += 1
            if not delivery_ids and page.status == PageStatus.CANCELLED:
                mine.cancelled += 1
            for delivery_id in delivery_ids:
                _count(mine, sender.send(delivery_id, channels))
        db.session.commit()
        return mine

    loops = workers.workers_for(current_app.config, db.engine.dialect.name)
    if loops > 1:
        # No more loops than pages due: an idle tick starts no threads at all.
        loops = min(loops, limit, _due_count(now if pinned else utcnow(), loops))
    for mine in workers.run_loops(loops, loop):
        result.claimed += mine.claimed
        result.sent += mine.sent
        result.failed += mine.failed
        result.cancelled += mine.cancelled
        result.errors.extend(mine.errors)
    return result


def _due_count(now: datetime, at_most: int) -> int:
    """How many pages are due now, counting no further than ``at_most``."""
    due = select(Page.id).where(Page.status == PageStatus.DUE, Page.due_at <= now).limit(at_most)
    count = db.session.scalar(select(func.count()).select_from(due.subquery()))
    db.session.commit()
    return count


def _count(result: SweepResult, outcome) -> None:
    if outcome.status in FAILED:
        result.failed += 1
    else:
        result.sent += 1


def next_due() -> datetime | None:
    """When the earliest page still waiting, or delivery to be sent again, falls due
    (None: nothing is waiting)."""
    page = db.session.scalar(select(func.min(Page.due_at)).where(Page.status == PageStatus.DUE))
    resend = db.session.scalar(select(func.min(Delivery.retry_at))
                               .where(Delivery.status == DeliveryStatus.FAILED))
    db.session.commit()
    # SQLite's min() skips the column type
    due = [d if d.tzinfo else d.replace(tzinfo=UTC) for d in (page, resend) if d is not None]
    return min(due, default=None)
