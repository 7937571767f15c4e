"""Referral actions: raise, acknowledge, request/provide info, decide, transfer, close...

Each action checks the transition table and the actor's capacity, then writes the new
state (by a conditional UPDATE on state and version, so of two simultaneous actions
exactly one wins) and one hash-chained event, in one transaction. What reacts to an
event (paging starts on raise, stops on acknowledge; a decision makes a record) is
listed in workflow/wiring.py and run through workflow.events: in the transaction, and
after it commits.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

from flask import current_app
from sqlalchemy import select, update

from extensions import db
from models import (
    Decision,
    Hospital,
    HubService,
    Referral,
    ReferralEvent,
    Specialty,
    TravelTime,
    User,
)
from workflow import events
from workflow.accounts import accounts, policy
from workflow.errors import Conflict, NotAllowed, NotFound, ValidationFailed
from workflow.referrals import chain, duplicates, states
from workflow.referrals import input as referral_input
from workflow.referrals.access import actor_kinds, find, get_referral, get_visible
from workflow.referrals.checks import Errors, storable, text
from workflow.referrals.states import State
from workflow.times import now as utcnow


def _hub_for(specialty: Specialty, referring: Hospital, hub_code: str | None) -> HubService:
    query = select(HubService).where(HubService.specialty_id == specialty.id)
    if hub_code:
        service = db.session.scalar(query.join(Hospital).where(Hospital.code == hub_code))
        if service is None:
            raise ValidationFailed({"hub": f"{hub_code} is not a {specialty.name} hub."})
        return service
    services = list(db.session.scalars(query))
    if not services:
        raise ValidationFailed({"specialty": f"No hub in the network takes {specialty.name} "
                                             "referrals."})

    def minutes(service: HubService) -> int:
        if service.hospital_id == referring.id:
            return 0
        travel = db.session.scalar(select(TravelTime.minutes).where(
            TravelTime.from_hospital_id == referring.id,
            TravelTime.to_hospital_id == service.hospital_id))
        return travel if travel is not None else 10_000

    return min(services, key=lambda s: (minutes(s), s.id))


def _append_event(referral: Referral, kind: str, actor: User | None, from_state: str | None,
                  to_state: str, at: datetime, reason: str = "",
                  data: dict | None = None) -> ReferralEvent:
    last = db.session.execute(
        select(ReferralEvent.seq, ReferralEvent.hash)
        .where(ReferralEvent.referral_id == referral.id)
        .order_by(ReferralEvent.seq.desc()).limit(1)
    ).first()
    event = ReferralEvent(
        referral_id=referral.id, seq=(last.seq + 1) if last else 1, kind=kind,
        at=at, actor_id=actor.id if actor else None,
        actor_label=actor.name if actor else "goldenhour", from_state=from_state,
        to_state=to_state, reason=reason, data=data or {},
    )
    chain.seal(event, last.hash if last else chain.GENESIS)
    db.session.add(event)
    return event


def raise_referral(user: User, payload: Any, now: datetime | None = None, *,
                   hold_duplicates: bool = False) -> Referral:
    """Raise a referral from ``payload`` (API field names) and commit it.

    With ``hold_duplicates`` (the form and the API), a second open referral for the same
    NHS number and specialty is refused unless ``payload["separate_referral"]`` is true.

    Raises NotAllowed if the user is not a referrer, ValidationFailed naming every bad
    field (including a referring hospital other than the user's own), DuplicateReferral
    (a Conflict naming the open referrals).
    """
    if not policy.allowed(user, "referral.raise"):
        raise NotAllowed("only referrers can raise referrals")
    now = now or utcnow()
    specialties = {s.code: s for s in db.session.scalars(select(Specialty))}
    hospitals = {h.code: h for h in db.session.scalars(select(Hospital))}
    data = referral_input.parse_new_referral(payload, now, set(specialties), set(hospitals))
    referring = hospitals[data.referring_hospital]
    if user.hospital_id != referring.id:
        own = user.hospital.code if user.hospital else "none"
        raise ValidationFailed({"referring_hospital": f"You can only refer from your own "
                                                      f"hospital ({own})."})
    specialty = specialties[data.specialty]
    service = _hub_for(specialty, referring, data.hub)
    p = data.patient
    if hold_duplicates:
        duplicates.hold(p["nhs_number"], specialty.code, payload)
    referral = Referral(
        state=State.SUBMITTED, specialty=specialty, hub_service=service,
        referring_hospital=referring, referrer=user, urgency=data.urgency,
        nhs_number=p["nhs_number"], family_name=p["family_name"], given_name=p["given_name"],
        birth_date=p["birth_date"], sex=p["sex"], local_number=p["local_number"],
        onset_at=data.onset_at, onset_certainty=data.onset_certainty,
        arrived_at=data.arrived_at, question=data.question, clinical=data.clinical,
        created_at=now,
    )
    db.session.add(referral)
    db.session.flush()
    code = current_app.config.get("NETWORK_CODE", "EM")
    referral.reference = f"{code}-{now.year}-{referral.id:06d}"
    event = _append_event(referral, "raise", user, None, State.SUBMITTED, now,
                          data={"reference": referral.reference, "specialty": specialty.code,
                                "hub_service_id": service.id,
                                "referring_hospital": referring.code,
                                # sealed, so that `audit verify` can tell an edited patient
                                "patient": {**p, "birth_date": p["birth_date"].isoformat()}})
    events.recorded(referral, event)
    db.session.commit()
    events.committed("raise", referral.id)
    return referral


def check(referral_id: int, event: str, actor: User | None) -> Referral:
    """The referral, if the table lets ``actor`` (None: the system) apply ``event`` now.

    Called before an action reads its input, so that a move the user may not make is
    refused as such (403 / 409) whatever the body says. Raises NotFound,
    IllegalTransition (not from this state, or not after this decision outcome) or
    NotAllowed (the actor's capacity does not permit the move).
    """
    referral = get_referral(referral_id)
    move = states.move_for(referral.state, event)
    kinds = frozenset({states.SYSTEM}) if actor is None else actor_kinds(actor, referral)
    if not move.permits(kinds, referral.outcome):
        if move.outcomes is not None and referral.outcome not in move.outcomes:
            raise states.IllegalTransition(
                f"cannot {event.replace('_', ' ')} after a {referral.outcome} decision")
        raise NotAllowed(f"your role does not allow you to {event.replace('_', ' ')} "
                         "this referral")
    return referral


def transition(referral_id: int, event: str, actor: User | None, *, reason: str = "",
               data: dict | None = None, updates: dict | None = None,
               now: datetime | None = None, before_commit=None,
               commit: bool = True) -> Referral:
    """Apply ``event`` to a referral as ``actor`` (None: the system) and commit
    (``commit=False``: the caller's transaction commits it).

    Raises NotFound, NotAllowed (the actor's capacity does not permit the move),
    IllegalTransition (not from this state) or Conflict (someone else changed the
    referral between our read and our write).
    """
    now = now or utcnow()
    referral = check(referral_id, event, actor)
    move = states.move_for(referral.state, event)
    from_state, version = referral.state, referral.version
    values = {"state": move.target, "version": version + 1, **(updates or {})}
    result = db.session.execute(
        update(Referral)
        .where(Referral.id == referral_id, Referral.state == from_state,
               Referral.version == version)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:
        if not commit:
            raise Conflict("the referral changed while the scheduler was working on it")
        db.session.rollback()
        current = db.session.get(Referral, referral_id)
        raise Conflict(f"someone else changed this referral first; it is now "
                       f"{current.state.replace('_', ' ')}")
    db.session.refresh(referral)
    record = _append_event(referral, event, actor, from_state, move.target, now, reason, data)
    if before_commit:
        before_commit(referral, record)
    events.recorded(referral, record)
    if commit:
        db.session.commit()
        events.committed(event, referral_id)
    return referral


def _reason(payload: Any, key: str, label: str, required: bool = True) -> str:
    errors = Errors()
    value = text(payload if isinstance(payload, dict) else {}, key, key, errors,
                 required=required, label=label)
    errors.raise_if_any()
    return value


def acknowledge(referral_id: int, user: User, via: str = "web") -> Referral:
    """Accept the referral: the user becomes its assigned specialist; paging stops.

    Raises Conflict when someone else accepted it first (naming them), NotFound,
    NotAllowed (not a specialist of its service) or IllegalTransition.
    """
    referral = get_referral(referral_id)
    if referral.state == State.UNDER_REVIEW \
            and referral.assigned_specialist:
        raise Conflict(f"{referral.assigned_specialist.name} accepted this referral first")
    now = utcnow()
    try:
        return transition(referral_id, "acknowledge", user, data={"via": via},
                          updates={"assigned_specialist_id": user.id, "acknowledged_at": now},
                          now=now)
    except Conflict:
        db.session.rollback()
        referral = db.session.get(Referral, referral_id)
        if referral.assigned_specialist:
            raise Conflict(f"{referral.assigned_specialist.name} accepted this referral "
                           "first") from None
        raise


def request_info(referral_id: int, user: User, payload: Any) -> Referral:
    """The assigned specialist asks the referrer a ``question``; the referral waits for
    the answer. Raises NotFound, NotAllowed, IllegalTransition, ValidationFailed (no
    question, or one too long) or Conflict."""
    check(referral_id, "request_info", user)
    question = _reason(payload, "question", "information you need")
    return transition(referral_id, "request_info", user, reason=question)


def provide_info(referral_id: int, user: User, payload: Any) -> Referral:
    """The referrer answers (``text``); the referral is under review again. Raises
    NotFound, NotAllowed, IllegalTransition, ValidationFailed or Conflict."""
    check(referral_id, "provide_info", user)
    answer = _reason(payload, "text", "information")
    return transition(referral_id, "provide_info", user, reason=answer)


T = TypeVar("T")


def _signed(user: User, payload: Any, what: str, read: Callable[[], T]) -> tuple[T, str]:
    """``read()`` the input and verify the signer's own signature (``payload["signature"]``),
    naming every problem of both at once. Returns what was read and how it was signed.

    Raises ValidationFailed, SignatureRefused when the signature is wrong, or
    SigningThrottled after too many wrong ones."""
    errors: dict[str, str] = {}
    value = signed_with = None
    raised: type[ValidationFailed] = ValidationFailed
    try:
        value = read()
    except ValidationFailed as exc:
        errors.update(exc.errors)
    secret = payload.get("signature") if isinstance(payload, dict) else None
    try:
        signed_with = accounts.verify_signature(user, secret, what)
    except ValidationFailed as exc:
        errors.update(exc.errors)
        raised = type(exc)  # SignatureRefused or SigningThrottled stay what they are
    if errors:
        raise raised(errors)
    return value, signed_with


def decide(referral_id: int, user: User, payload: Any) -> Referral:
    """Record the decision, signed with the decider's own password (or TOTP code) in
    ``payload["signature"]``, whatever the client. Raises NotFound, NotAllowed,
    IllegalTransition or Conflict before the input is read; then ValidationFailed (no
    rationale, a transfer without destination, no signature...) or SignatureRefused."""
    check(referral_id, "decide", user)
    hospitals = {h.code: h for h in db.session.scalars(select(Hospital))}
    choice, signature = _signed(user, payload, "decision",
                                lambda: referral_input.parse_decision(payload, set(hospitals)))
    now = utcnow()
    destination = hospitals.get(choice.destination_hospital) if choice.destination_hospital \
        else None

    def write_decision(referral: Referral, _event: ReferralEvent) -> None:
        db.session.add(Decision(
            referral_id=referral.id, outcome=choice.outcome, destination_hospital=destination,
            destination_unit=choice.destination_unit, transfer_urgency=choice.transfer_urgency,
            advice=choice.advice, rationale=choice.rationale, decided_by_id=user.id,
            decided_at=now, signed_with=signature,
        ))

    return transition(
        referral_id, "decide", user, reason=choice.rationale, now=now,
        data={"outcome": choice.outcome,
              "destination_hospital": choice.destination_hospital,
              "destination_unit": choice.destination_unit,
              "transfer_urgency": choice.transfer_urgency, "advice": choice.advice,
              "signed_with": signature},
        updates={"outcome": choice.outcome, "decided_at": now},
        before_commit=write_decision,
    )


def add_addendum(referral_id: int, user: User, payload: Any) -> Referral:
    """A correction or addition to the signed decision (``text``), as an event of its
    own, signed like the decision (``payload["signature"]``): the decision row never
    changes. Raises NotFound, NotAllowed, IllegalTransition, ValidationFailed,
    SignatureRefused or Conflict."""
    check(referral_id, "addendum", user)
    addendum, signature = _signed(user, payload, "addendum",
                                  lambda: _reason(payload, "text", "addendum"))
    return transition(referral_id, "addendum", user, reason=addendum,
                      data={"signed_with": signature})


def cancel(referral_id: int, user: User, payload: Any) -> Referral:
    """Cancel an undecided or decided referral, with a ``reason``; the clocks stop.
    Raises NotFound, NotAllowed, IllegalTransition, ValidationFailed or Conflict."""
    check(referral_id, "cancel", user)
    reason = _reason(payload, "reason", "reason for cancelling")
    now = utcnow()
    return transition(referral_id, "cancel", user, reason=reason, now=now,
                      updates={"ended_at": now})


def depart(referral_id: int, user: User, payload: Any = None) -> Referral:
    """The patient leaves for the hub after a transfer decision (optional ``note``).
    Raises NotFound, NotAllowed, IllegalTransition (also after any other outcome),
    ValidationFailed or Conflict."""
    check(referral_id, "depart", user)
    now = utcnow()
    return transition(referral_id, "depart", user, now=now, updates={"departed_at": now},
                      reason=_reason(payload or {}, "note", "note", required=False))


def arrive(referral_id: int, user: User, payload: Any = None) -> Referral:
    """The patient has arrived at the hub; the referral closes (optional ``note``).
    Raises NotFound, NotAllowed, IllegalTransition, ValidationFailed or Conflict."""
    check(referral_id, "arrive", user)
    now = utcnow()
    return transition(referral_id, "arrive", user, now=now,
                      updates={"arrived_at_hub": now, "ended_at": now},
                      reason=_reason(payload or {}, "note", "note", required=False))


def close(referral_id: int, user: User, payload: Any = None) -> Referral:
    """Close a referral decided other than transfer (optional ``note``). Raises NotFound,
    NotAllowed, IllegalTransition (also after a transfer decision), ValidationFailed or
    Conflict."""
    check(referral_id, "close", user)
    now = utcnow()
    return transition(referral_id, "close", user, now=now, updates={"ended_at": now},
                      reason=_reason(payload or {}, "note", "note", required=False))


def hand_over(referral_id: int, user: User, payload: Any) -> Referral:
    """Hand the referral (or the page) to another specialist of the same service.

    ``to`` is the colleague's user id or email. Raises NotFound, NotAllowed,
    IllegalTransition, Conflict, or ValidationFailed when the colleague is unknown or
    not of this service.
    """
    referral = check(referral_id, "hand_over", user)
    payload = payload if isinstance(payload, dict) else {}
    target = None
    to = payload.get("to")
    if isinstance(to, str) and to.strip().isascii() and to.strip().isdigit():
        to = int(to.strip())
    if isinstance(to, int) and not isinstance(to, bool):
        target = find(User, to)
    elif isinstance(to, str) and storable(to):
        target = db.session.scalar(select(User).where(User.email == to.strip().lower()))
    if target is None or states.HUB_SPECIALIST not in actor_kinds(target, referral):
        raise ValidationFailed({"to": "Choose a specialist of this hub service to hand over to."})
    if target.id == referral.assigned_specialist_id:
        raise ValidationFailed({"to": f"{target.name} already holds this referral."})
    note = _reason(payload, "note", "note", required=False)
    updates = {"assigned_specialist_id": target.id}
    if referral.state in (State.AWAITING_SPECIALIST, State.UNANSWERED):
        updates = {}  # taking the page: the colleague is paged, and accepts themselves
    return transition(referral_id, "hand_over", user, reason=note,
                      data={"to_user_id": target.id, "to": target.name}, updates=updates)


def post_message(referral_id: int, user: User, payload: Any) -> Referral:
    """A message (``text``) in the thread between referrer and specialists, from any
    state before the referral ends. Raises NotFound, NotAllowed, IllegalTransition,
    ValidationFailed or Conflict."""
    check(referral_id, "message", user)
    return transition(referral_id, "message", user, reason=_reason(payload, "text", "message"))


def page_again(referral_id: int, user: User, payload: Any = None) -> Referral:
    """Nobody answered: page the hub again from the first escalation step (optional
    ``note``); the repeat alarms stop. Raises NotFound, NotAllowed (only the referrer),
    IllegalTransition (only when unanswered), ValidationFailed or Conflict."""
    check(referral_id, "page_again", user)
    return transition(referral_id, "page_again", user,
                      reason=_reason(payload or {}, "note", "note", required=False))


def system_event(referral_id: int, event: str, data: dict | None = None,
                 reason: str = "") -> Referral:
    """An event raised by the scheduler (page sent, escalation exhausted).

    Raises NotFound, IllegalTransition or Conflict."""
    return transition(referral_id, event, None, data=data, reason=reason)


ACTIONS = {
    "acknowledge": lambda rid, user, payload: acknowledge(rid, user),
    "request-info": request_info,
    "provide-info": provide_info,
    "decide": decide,
    "addendum": add_addendum,
    "cancel": cancel,
    "depart": depart,
    "arrive": arrive,
    "close": close,
    "hand-over": hand_over,
    "messages": post_message,
    "page-again": page_again,
}


def perform(action: str, referral_id: int, user: User, payload: Any) -> Referral:
    """Run a named action (API path segment) after checking the user may see the referral.

    Raises NotFound for an unknown action or referral, NotAllowed, ValidationFailed,
    IllegalTransition or Conflict.
    """
    if action not in ACTIONS:
        raise NotFound(f"no action {action!r}")
    get_visible(user, referral_id)
    return ACTIONS[action](referral_id, user, payload)


