"""Columns derived from the chain: what a referral's events say must be what its rows say.

The event chain is hash-checked (`referrals.chain`); everything copied from it is then
checked against it here, by replaying the events: the referral's outcome and milestones,
its patient identity (sealed in the raise event and in every decision record), the
`decisions` row (the decide event's data) and the decision records (one version per
decide or addendum event, each naming the event and the chain head it was signed at).
The deletion of a whole referral, or of a last event nothing else refers to, is left
to anchoring the chain heads outside the database.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import select

from extensions import db
from models import Decision, DecisionRecord, Hospital

PATIENT = ("nhs_number", "family_name", "given_name", "birth_date", "sex", "local_number")

# Each milestone column and the event kinds whose time it copies (the first such event).
MILESTONES = {
    "created_at": ("raise",),
    "acknowledged_at": ("acknowledge",),
    "decided_at": ("decide",),
    "departed_at": ("depart",),
    "arrived_at_hub": ("arrive",),
    "ended_at": ("cancel", "arrive", "close"),
}

REFERRAL_COLUMNS = ("outcome", *PATIENT, *MILESTONES)

DECISION_COLUMNS = tuple(getattr(Decision, name) for name in (
    "id", "referral_id", "outcome", "destination_hospital_id", "destination_unit",
    "transfer_urgency", "advice", "rationale", "decided_by_id", "decided_at", "signed_with"))

RECORDED = ("decide", "addendum")  # the event kinds that make a decision record version


def record_columns() -> tuple:
    """The record columns the check reads: its content's hash and the few content keys
    it compares, extracted in the database (the whole content is read once, by
    `records.verify_records`)."""
    content = DecisionRecord.content
    return (DecisionRecord.id, DecisionRecord.referral_id, DecisionRecord.version,
            DecisionRecord.event_seq, DecisionRecord.content_sha256,
            content["event_hash"].as_string().label("event_hash"),
            content["previous_record_sha256"].as_string().label("previous_sha256"),
            content["patient"].label("patient"))  # each extraction parses the content once


def load(first_id: int, last_id: int,
         ids: list[int] | None = None) -> tuple[dict[int, Any], dict[int, list]]:
    """The decisions rows and the decision records (in version order) of the referrals
    with ids first_id..last_id (or exactly ``ids``), by referral id: two queries."""
    def of(column):
        return column.in_(ids) if ids is not None else column.between(first_id, last_id)

    decisions = {row.referral_id: row for row in db.session.execute(
        select(*DECISION_COLUMNS).where(of(Decision.referral_id)))}
    records: dict[int, list] = {}
    for row in db.session.execute(
            select(*record_columns())
            .where(of(DecisionRecord.referral_id))
            .order_by(DecisionRecord.referral_id, DecisionRecord.version)):
        records.setdefault(row.referral_id, []).append(row)
    return decisions, records


def hospital_codes() -> dict[int, str]:
    return dict(db.session.execute(select(Hospital.id, Hospital.code)).all())


def _text(value: Any) -> str:
    return "none" if value is None else repr(str(value))


def _patient_value(referral: Any, name: str) -> str:
    value = getattr(referral, name)
    return value.isoformat() if hasattr(value, "isoformat") else value


def verify_derived(referral: Any, events: Sequence[Any], decision: Any | None,
                   records: Sequence[Any], codes: dict[int, str]) -> str | None:
    """The first column or row of a referral that disagrees with its (intact) chain, as
    "referral N: ...", or None. Call only once `chain.verify_chain` passed: ``events``
    are then the referral's true history, in seq order. Plain rows or ORM objects with
    the column names of REFERRAL_COLUMNS, DECISION_COLUMNS and `record_columns()`.
    Raises nothing."""
    problem = (_referral_columns(referral, events) or _decision_row(decision, events, codes)
               or _records(referral, records, events))
    return f"referral {referral.id}: {problem}" if problem else None


def _data(event: Any) -> dict:
    return event.data if isinstance(event.data, dict) else {}


def _first(events: Sequence[Any], kinds: tuple[str, ...]) -> Any | None:
    return next((e for e in events if e.kind in kinds), None)


def _referral_columns(referral: Any, events: Sequence[Any]) -> str | None:
    decide = _first(events, ("decide",))
    outcome = _data(decide).get("outcome") if decide else None
    if referral.outcome != outcome:
        said = (f"the chain's decide event (seq {decide.seq}) says {_text(outcome)}" if decide
                else "the chain has no decide event")
        return f"referrals.outcome says {_text(referral.outcome)} but {said}"
    for column, kinds in MILESTONES.items():
        event = _first(events, kinds)
        expected = event.at if event else None
        if getattr(referral, column) != expected:
            said = (f"the chain's {event.kind} event (seq {event.seq}) is at {expected}"
                    if event else f"the chain has no {'/'.join(kinds)} event")
            return f"referrals.{column} says {getattr(referral, column)} but {said}"
    sealed = _data(events[0]).get("patient")  # raise events before this have none
    for name in PATIENT if isinstance(sealed, dict) else ():
        if _patient_value(referral, name) != sealed.get(name):
            return (f"referrals.{name} says {_text(_patient_value(referral, name))} but the "
                    f"chain's raise event (seq {events[0].seq}) says {_text(sealed.get(name))}")
    return None


def _decision_row(decision: Any | None, events: Sequence[Any],
                  codes: dict[int, str]) -> str | None:
    decide = _first(events, ("decide",))
    if decide is None:
        return (f"decisions row {decision.id} exists but the chain has no decide event"
                if decision is not None else None)
    if decision is None:
        return f"the decisions row of its decide event (seq {decide.seq}) is missing"
    data = _data(decide)
    expected = {
        "outcome": data.get("outcome"), "rationale": decide.reason,
        "decided_by_id": decide.actor_id, "decided_at": decide.at,
        "destination_hospital": data.get("destination_hospital") or None,
        "destination_unit": data.get("destination_unit", ""),
        "transfer_urgency": data.get("transfer_urgency", ""), "advice": data.get("advice", ""),
        "signed_with": data.get("signed_with", ""),
    }
    for name, value in expected.items():
        found = codes.get(decision.destination_hospital_id) \
            if name == "destination_hospital" else getattr(decision, name)
        if found != value:
            return (f"decisions row {decision.id} says {name} {_text(found)} but the chain's "
                    f"decide event (seq {decide.seq}) says {_text(value)}")
    return None


def _records(referral: Any, records: Sequence[Any], events: Sequence[Any]) -> str | None:
    makers = [e for e in events if e.kind in RECORDED]
    previous = None
    for version, (maker, record) in enumerate(zip(makers, records, strict=False), start=1):
        where = f"decision record {record.id} (v{record.version})"
        if record.version != version:
            return (f"decision record v{version} is missing: the chain's {maker.kind} event "
                    f"(seq {maker.seq}) made it, and the next stored is v{record.version}")
        if record.event_seq != maker.seq:
            return (f"{where} was made by event seq {record.event_seq} but the chain's "
                    f"{maker.kind} event v{version} comes from is seq {maker.seq}")
        if record.event_hash != maker.hash:
            return (f"{where} was signed at chain head {record.event_hash} but the chain's "
                    f"{maker.kind} event (seq {maker.seq}) has hash {maker.hash}")
        if record.previous_sha256 != (previous.content_sha256 if previous else None):
            return f"{where} does not follow the record before it"
        signed_for = record.patient if isinstance(record.patient, dict) else {}
        for name in PATIENT:
            stored = signed_for.get(name)
            if stored is not None and _patient_value(referral, name) != stored:
                return (f"referrals.{name} says {_text(_patient_value(referral, name))} but "
                        f"{where} was signed for {_text(stored)}")
        previous = record
    if len(records) > len(makers):
        extra = records[len(makers)]
        last_seq = events[-1].seq
        if extra.event_seq > last_seq:
            return (f"decision record {extra.id} (v{extra.version}) was made by event seq "
                    f"{extra.event_seq}, but the chain ends at seq {last_seq}: the event was "
                    "deleted")
        return (f"decision record {extra.id} (v{extra.version}) has no decide or addendum "
                "event in the chain")
    if len(makers) > len(records):
        maker = makers[len(records)]
        return (f"decision record v{len(records) + 1} is missing: the chain's {maker.kind} "
                f"event (seq {maker.seq}) made it")
    return None
