"""Escalation: from a hub service's policy to due pages, step by step.

When a referral is raised its service's policy is copied onto it (an `Escalation`)
and the first step is written as a due `Page`. The sweep (workflow/paging/sweep.py) sends
due pages and, in the same transaction that claims a step, schedules the next one,
so a crash after the claim can never stop the escalation. Acknowledging cancels
every page still due. Pages carry no patient identifiers.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from flask import current_app
from sqlalchemy import func, select, update

from extensions import db
from models import (
    Escalation,
    EscalationPolicy,
    Hospital,
    Page,
    Referral,
    ReferralEvent,
    Role,
    User,
)
from workflow.errors import ValidationFailed
from workflow.paging import push, reply_codes, rota
from workflow.paging.pages import (
    ASKING,
    ESCALATING,
    OUT_OF_BAND_STEP,
    ROUND,
    STOPPED_BY_ANSWER,
    PageKind,
    PageStatus,
)
from workflow.referrals import labels
from workflow.referrals.states import State

CHANNELS = ("sms", "voice", "email", "webpush", "in_app")
# A page asking someone to accept (a step, a handover) by SMS or voice also goes by push
# to each browser its person subscribed, unless its step says "also_push": false. The
# push is extra: it never replaces the step's channels, and it never holds a step back
# when they failed (delivery.step_failed). Notices and alarms keep their own channels
# (the service worker's notification asks its reader to accept).
PUSH_BESIDE = ("sms", "voice")
WHO_FIXED = ("tier1", "tier2", "tier3", "duty_manager")
DEFAULT_STEPS: list[dict[str, Any]] = [
    {"who": "tier1", "channels": ["sms", "voice"], "wait_minutes": 5, "repeat": 0},
    {"who": "tier2", "channels": ["sms", "voice"], "wait_minutes": 5, "repeat": 0},
    {"who": "duty_manager", "channels": ["sms", "voice", "email"], "wait_minutes": 5,
     "repeat": 0},
]
PAGEABLE = (State.SUBMITTED, State.AWAITING_SPECIALIST)


def check_steps(steps: Any) -> list[dict]:
    """Validate a policy's steps. Raises ValidationFailed naming each bad step field."""
    errors: dict[str, str] = {}
    if not isinstance(steps, list) or not steps:
        raise ValidationFailed({"steps": "A policy needs at least one step."})
    clean = []
    for i, step in enumerate(steps):
        path = f"steps[{i}]"
        if not isinstance(step, dict):
            errors[path] = "Each step is an object with who, channels, wait_minutes, repeat."
            continue
        who = step.get("who")
        if not (who in WHO_FIXED or (isinstance(who, str) and who.startswith("user:")
                                     and who[5:].isdigit())):
            errors[f"{path}.who"] = f"who must be one of {', '.join(WHO_FIXED)} or user:<id>."
        channels = step.get("channels")
        if not isinstance(channels, list) or not channels or \
                any(c not in CHANNELS for c in channels):
            errors[f"{path}.channels"] = f"channels must be a list from {', '.join(CHANNELS)}."
        wait = step.get("wait_minutes")
        if not isinstance(wait, int) or isinstance(wait, bool) or not 1 <= wait <= 120:
            errors[f"{path}.wait_minutes"] = "wait_minutes must be a whole number from 1 to 120."
        repeat = step.get("repeat", 0)
        if not isinstance(repeat, int) or isinstance(repeat, bool) or not 0 <= repeat <= 5:
            errors[f"{path}.repeat"] = "repeat must be a whole number from 0 to 5."
        also_push = step.get("also_push", True)
        if not isinstance(also_push, bool):
            errors[f"{path}.also_push"] = "also_push must be true or false."
        clean.append({"who": who, "channels": channels, "wait_minutes": wait,
                      "repeat": repeat, **({} if also_push is True else
                                           {"also_push": also_push})})
    if errors:
        raise ValidationFailed(errors)
    return clean


def policy_steps(hub_service_id: int) -> list[dict]:
    policy = db.session.scalar(select(EscalationPolicy)
                               .where(EscalationPolicy.hub_service_id == hub_service_id))
    return list(policy.steps) if policy else [dict(s) for s in DEFAULT_STEPS]


def page_text(referral: Referral, kind: str = PageKind.ESCALATION) -> str:
    """What a page says: service, referring hospital, urgency. Never who the patient is."""
    service = referral.specialty.name
    hospital = referral.referring_hospital.name
    if kind == PageKind.NOTICE:
        return ""
    prefix = "URGENT" if referral.urgency == "emergency" else "Urgent"
    if kind == PageKind.ALARM:
        return (f"UNANSWERED {service} referral from {hospital}: every escalation step "
                f"was paged and nobody accepted. Open goldenhour now.")
    if kind == PageKind.REALARM:
        return (f"STILL UNANSWERED {service} referral {referral.reference} from {hospital}: "
                f"nobody has accepted it yet. Open goldenhour or call the referrer now.")
    code = reply_codes.reply_code(referral.id)
    return (f"{prefix} {service} referral from {hospital}. Open the link or reply 1 or "
            f"{code} to accept {referral.reference}.")


def _add_page(referral: Referral, *, kind: PageKind, attempt: int, who: str,
              channels: list[str], due_at: datetime, step: int | None = None,
              wait_minutes: int = 0, text: str | None = None) -> Page:
    """A due page; out-of-band kinds take their fixed step (``step`` is for escalation)."""
    step = OUT_OF_BAND_STEP[kind] if step is None else step
    page = Page(referral_id=referral.id, kind=kind, step=step, attempt=attempt, who=who,
                channels=list(channels), wait_minutes=wait_minutes, due_at=due_at,
                text=page_text(referral, kind) if text is None else text)
    db.session.add(page)
    return page


def start(referral: Referral, _event: ReferralEvent | None = None) -> None:
    """Snapshot the policy and write the first step as due now (inside the raise txn)."""
    steps = policy_steps(referral.hub_service_id)
    db.session.add(Escalation(referral_id=referral.id, steps=steps))
    first = steps[0]
    _add_page(referral, kind=PageKind.ESCALATION, step=0, attempt=0, who=first["who"],
              channels=first["channels"], wait_minutes=first["wait_minutes"],
              due_at=referral.created_at)


def schedule_after(page: Page, steps: list[dict], at: datetime) -> Page | None:
    """Write the page that follows ``page`` (a repeat, the next step, or exhaustion)."""
    if page.kind != PageKind.ESCALATION:
        return None
    referral = db.session.get(Referral, page.referral_id)
    due = at + timedelta(minutes=page.wait_minutes)
    current = steps[page.step]
    if page.attempt % ROUND < current.get("repeat", 0):
        return _add_page(referral, kind=PageKind.ESCALATION, step=page.step,
                         attempt=page.attempt + 1,
                         who=current["who"], channels=current["channels"],
                         wait_minutes=current["wait_minutes"], due_at=due, text=page.text)
    if page.step + 1 < len(steps):
        nxt = steps[page.step + 1]
        return _add_page(referral, kind=PageKind.ESCALATION, step=page.step + 1,
                         attempt=page.attempt - page.attempt % ROUND,
                         who=nxt["who"], channels=nxt["channels"],
                         wait_minutes=nxt["wait_minutes"], due_at=due, text=page.text)
    return _add_page(referral, kind=PageKind.EXHAUSTED, step=len(steps),
                     attempt=page.attempt - page.attempt % ROUND, who="none",
                     channels=[], due_at=due, text="")


def recipients(page: Page, referral: Referral, at: datetime) -> list[User]:
    """The people a page goes to at ``at`` (the rota decides tiers)."""
    who = page.who
    service = referral.hub_service
    if who.startswith("tier"):
        return rota.on_call(service, int(who[4:]), at)
    if who == "duty_manager":
        return duty_managers(service)
    if who == "unanswered":  # the duty manager and the consultant on call
        people = duty_managers(service) + consultant_on_call(service, at)
        return list({u.id: u for u in people}.values())
    if who.startswith("user:"):
        user = db.session.get(User, int(who[5:]))
        return [user] if user is not None and user.active else []
    return []


def channels_for(page: Page, person: User, steps: list[dict] | None) -> list[str]:
    """The channels ``page`` goes to ``person`` by: its own, and "webpush" beside SMS or
    voice when the page asks them to accept, they have a browser that takes pushes, and
    the page's step (in the escalation's snapshot ``steps``) does not say "also_push":
    false. Raises nothing."""
    channels = list(page.channels)
    if page.kind not in ASKING or "webpush" in channels \
            or not set(channels) & set(PUSH_BESIDE):
        return channels
    if page.kind == PageKind.ESCALATION and steps and page.step < len(steps) \
            and steps[page.step].get("also_push", True) is False:
        return channels
    return channels + ["webpush"] if push.targets(person.id) else channels


def move_on_now(referral_id: int, at: datetime) -> int:
    """Bring the referral's next due escalation page forward to ``at`` (a page failed)."""
    result = db.session.execute(
        update(Page)
        .where(Page.referral_id == referral_id, Page.status == PageStatus.DUE,
               Page.kind.in_(ESCALATING),
               Page.due_at > at)
        .values(due_at=at)
        .execution_options(synchronize_session=False)
    )
    return result.rowcount


def stop(referral: Referral, event: ReferralEvent) -> None:
    """Accepted or cancelled: cancel every escalation page still due, stop the escalation."""
    # Skip pages a sweep has locked: it is waiting for this referral's lock and
    # will find it acknowledged. Waiting for them instead could deadlock.
    due = select(Page.id).where(Page.referral_id == referral.id, Page.status == PageStatus.DUE,
                                Page.kind.in_(STOPPED_BY_ANSWER))
    if db.engine.dialect.name == "postgresql":
        due = due.with_for_update(skip_locked=True)
    ids = list(db.session.scalars(due))
    if ids:
        db.session.execute(
            update(Page).where(Page.id.in_(ids)).values(status=PageStatus.CANCELLED)
            .execution_options(synchronize_session=False))
    db.session.execute(
        update(Escalation).where(Escalation.referral_id == referral.id,
                                 Escalation.stopped_at.is_(None))
        .values(stopped_at=event.at, stopped_reason=event.kind)
        .execution_options(synchronize_session=False))


def page_colleague(referral: Referral, event: ReferralEvent) -> None:
    """Handed over while the referral is still being paged: page the colleague."""
    if event.from_state in PAGEABLE + (State.UNANSWERED,):
        _add_page(referral, kind=PageKind.HANDOVER, attempt=event.seq,
                  who=f"user:{event.data['to_user_id']}", channels=["sms", "voice"],
                  due_at=event.at)


def tell_referrer(referral: Referral, event: ReferralEvent) -> None:
    """Accepted or decided: an SMS and in-app notice to the referrer. A transfer names
    the destination hospital and unit (no patient identifiers, as in every SMS)."""
    if event.kind == "acknowledge":
        what = "accepted by " + (event.actor_label or "the specialist")
    else:
        what = f"decided: {labels.outcome(event.data.get('outcome')).lower()}"
        if code := event.data.get("destination_hospital"):
            hospital = db.session.scalar(select(Hospital.name).where(Hospital.code == code))
            unit = event.data.get("destination_unit")
            what += f" to {hospital or code}" + (f", {unit}" if unit else "")
    notify(referral, referral.referrer_id, event,
           f"Your {referral.specialty.name} referral {referral.reference} was "
           f"{what}. Open goldenhour for details.")


def notify(referral: Referral, user_id: int, event: ReferralEvent, text: str) -> Page:
    """A notice (SMS and in-app) to one user about ``event``, due at once."""
    return _add_page(referral, kind=PageKind.NOTICE, attempt=event.seq,
                     who=f"user:{user_id}", channels=["sms", "in_app"], due_at=event.at,
                     text=text)


def notify_in_app(referral: Referral, user_id: int, text: str, *, key: int,
                  at: datetime) -> Page:
    """An in-app notice to one user that no event caused (new images found in a PACS,
    say). ``key`` keeps it apart from event notices (whose attempt is the event's seq):
    give a number above 1,000,000 that is unique for the referral."""
    return _add_page(referral, kind=PageKind.NOTICE, attempt=key, who=f"user:{user_id}",
                     channels=["in_app"], due_at=at, text=text)


def duty_managers(service) -> list[User]:
    """The active duty managers of the service's hospital."""
    return [u for u in db.session.scalars(
        select(User).where(User.hospital_id == service.hospital_id,
                           User.active.is_(True)).order_by(User.id))
        if u.has_role(Role.DUTY_MANAGER)]


def consultant_on_call(service, at: datetime) -> list[User]:
    """The most senior tier on call for ``service`` at ``at`` (tier 3, else tier 2)."""
    for tier in (3, 2):
        people = rota.on_call(service, tier, at)
        if people:
            return people
    return []


def _round(referral_id: int) -> int:
    """How many times the referrer has paged again (0: the first escalation)."""
    return db.session.scalar(select(func.count(ReferralEvent.id)).where(
        ReferralEvent.referral_id == referral_id, ReferralEvent.kind == "page_again"))


def realarm_every() -> timedelta:
    return timedelta(minutes=current_app.config["UNANSWERED_REALARM_MINUTES"])


def raise_alarm(referral: Referral, event: ReferralEvent) -> None:
    """Every step paged and nobody accepted: alarm the duty manager and the referrer now,
    and schedule the first repeat alarm (duty manager and consultant on call) after
    UNANSWERED_REALARM_MINUTES; the sweep schedules each next one as it claims one."""
    base = _round(referral.id) * ROUND
    for who in ("duty_manager", f"user:{referral.referrer_id}"):
        _add_page(referral, kind=PageKind.ALARM,
                  attempt=base + (0 if who == "duty_manager" else 1), who=who,
                  channels=["sms", "voice", "in_app"], due_at=event.at)
    _add_page(referral, kind=PageKind.REALARM, attempt=base + 1, who="unanswered",
              channels=["sms", "voice", "in_app"], due_at=event.at + realarm_every())


def schedule_realarm(page: Page, at: datetime) -> Page | None:
    """The repeat alarm after ``page`` (claimed at ``at``, still unanswered); None when
    the round has used its attempt numbers (a week of alarms)."""
    if page.attempt % ROUND + 1 >= ROUND:
        return None
    referral = db.session.get(Referral, page.referral_id)
    return _add_page(referral, kind=PageKind.REALARM, attempt=page.attempt + 1, who=page.who,
                     channels=list(page.channels), due_at=at + realarm_every(),
                     text=page_text(referral, PageKind.REALARM))


def restart(referral: Referral, event: ReferralEvent) -> None:
    """The referrer paged again: the repeat alarms stop and the escalation starts over
    from its first step, due now, numbered as a new round (inside the event's txn)."""
    due = select(Page.id).where(Page.referral_id == referral.id, Page.status == PageStatus.DUE,
                                Page.kind.in_(STOPPED_BY_ANSWER))
    if db.engine.dialect.name == "postgresql":
        due = due.with_for_update(skip_locked=True)
    ids = list(db.session.scalars(due))
    if ids:
        db.session.execute(
            update(Page).where(Page.id.in_(ids)).values(status=PageStatus.CANCELLED)
            .execution_options(synchronize_session=False))
    steps = db.session.scalar(select(Escalation.steps)
                              .where(Escalation.referral_id == referral.id)) \
        or policy_steps(referral.hub_service_id)
    first = steps[0]
    _add_page(referral, kind=PageKind.ESCALATION, step=0, attempt=_round(referral.id) * ROUND,
              who=first["who"], channels=first["channels"],
              wait_minutes=first["wait_minutes"], due_at=event.at)
