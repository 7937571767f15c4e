"""What the referral page shows of its paging: every page, who it reached, how, and
every failure with the reason an admin can act on.

Read-only; the rows are written by workflow.paging.escalation and workflow.paging.sweep.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import selectinload

from extensions import db
from integrations.pager.base import FAILED
from models import Delivery, Page, Referral, User
from workflow.paging import escalation
from workflow.paging.pages import ROUND, PageKind, PageStatus
from workflow.referrals import labels
from workflow.referrals.states import State

CHANNEL_PREFIXES = {"sms", "call", "voice", "voice call", "email", "push"}


@dataclass(frozen=True)
class DeliveryLine:
    recipient: str
    channel: str
    status: str
    at: datetime | None
    failed: bool
    problem: str  # the reason, for failures ("invalid phone number ...")
    acknowledged_here: bool  # the link in this page, or a reply to it, accepted


@dataclass(frozen=True)
class PageLine:
    what: str  # "Step 1: tier 1 on call", "Hand-over", "Referrer told: accepted", ...
    status: str  # "waiting until 03:10", "sent", "stopped (accepted)"
    due_at: datetime
    claimed_at: datetime | None
    upcoming: bool
    deliveries: list[DeliveryLine]


def _who(who: str, people: dict[int, str]) -> str:
    if who.startswith("tier"):
        return f"tier {who[4:]} on call"
    if who == "duty_manager":
        return "duty manager"
    if who.startswith("user:"):
        return people.get(int(who[5:]) if who[5:].isdigit() else 0, "a named colleague")
    return who


def _what(page: Page, people: dict[int, str]) -> str:
    who = _who(page.who, people)
    if page.kind == PageKind.ESCALATION:
        repeat = f" (repeat {page.attempt % ROUND})" if page.attempt % ROUND else ""
        again = " (paged again)" if page.attempt >= ROUND else ""
        return f"Step {page.step + 1}{repeat}{again}: {who}"
    if page.kind == PageKind.REALARM:
        return f"Repeat alarm {page.attempt % ROUND}: duty manager and consultant on call"
    return {"handover": f"Hand-over to {who}", "notice": f"Notice to {who}",
            "alarm": f"Unanswered alarm to {who}",
            "exhausted": "Every step paged"}.get(page.kind, page.kind)


def _reason(error: str) -> str:
    """The channel's error without its "SMS: " / "Voice call: " prefix (the line names it)."""
    head, sep, rest = error.partition(": ")
    return rest if sep and head.lower() in CHANNEL_PREFIXES else error


def _delivery(d: Delivery, people: dict[int, str]) -> DeliveryLine:
    failed = d.status in FAILED
    status = labels.in_sentence(labels.delivery_status(d.channel, d.status))
    return DeliveryLine(
        recipient=people.get(d.recipient_id, "nobody") if d.recipient_id else "nobody",
        channel=labels.in_sentence(labels.channel(d.channel)),
        status=status,
        at=d.sent_at or d.updated_at, failed=failed,
        problem=(_reason(d.error) or status) if failed else "",
        acknowledged_here=d.link_used_at is not None)


def page_history(referral: Referral) -> list[PageLine]:
    """Every page of the referral, oldest first, with its deliveries."""
    open_for_paging = referral.state in escalation.PAGEABLE + (State.UNANSWERED,)
    pages = db.session.scalars(
        select(Page).where(Page.referral_id == referral.id)
        .options(selectinload(Page.deliveries))
        .order_by(Page.due_at, Page.id)).all()
    ids = {d.recipient_id for p in pages for d in p.deliveries if d.recipient_id}
    ids |= {int(p.who[5:]) for p in pages if p.who.startswith("user:") and p.who[5:].isdigit()}
    people = dict(db.session.execute(select(User.id, User.name).where(User.id.in_(ids))).all()) \
        if ids else {}
    lines = []
    for page in pages:
        upcoming = page.status == PageStatus.DUE and (
            open_for_paging or page.kind == PageKind.NOTICE)
        if upcoming:
            status = "due"
        elif page.status == PageStatus.DUE:
            status = "will not be sent: the referral has been answered"
        elif page.status == PageStatus.CANCELLED:
            status = "not sent: the referral had moved on"
        else:
            status = "sent"
        lines.append(PageLine(
            what=_what(page, people), status=status, due_at=page.due_at,
            claimed_at=page.claimed_at, upcoming=upcoming,
            deliveries=[_delivery(d, people) for d in sorted(page.deliveries,
                                                             key=lambda d: d.id)]))
    return lines


def failures(lines: list[PageLine]) -> list[DeliveryLine]:
    return [d for line in lines for d in line.deliveries if d.failed]
