"""Tamper evidence: each referral event stores SHA-256(previous hash + its own content).

Editing, deleting, reordering or inserting an event row breaks the chain at that
row; `verify_referral()` names the first bad one.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select

from extensions import db
from models import Referral, ReferralEvent

GENESIS = "0" * 64


def _at(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def canonical_json(content: dict) -> str:
    """``content`` as canonical JSON: sorted keys, no spaces, text as it is (not escaped);
    what the event chain and the decision records hash."""
    return json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      default=str)


def canonical(event: ReferralEvent) -> str:
    """The event's content as canonical JSON (UTC times)."""
    return canonical_json(
        {
            "referral_id": event.referral_id,
            "seq": event.seq,
            "kind": event.kind,
            "at": _at(event.at),
            "actor_id": event.actor_id,
            "actor_label": event.actor_label,
            "from_state": event.from_state,
            "to_state": event.to_state,
            "reason": event.reason,
            "data": event.data,
        }
    )


def seal(event: ReferralEvent, prev_hash: str) -> None:
    """Set the event's prev_hash and hash (call before it is first flushed)."""
    event.prev_hash = prev_hash
    event.hash = hashlib.sha256((prev_hash + canonical(event)).encode()).hexdigest()


@dataclass(frozen=True)
class ChainProblem:
    referral_id: int
    seq: int | None
    event_id: int | None
    message: str

    def __str__(self) -> str:
        if self.event_id:
            where = f"event {self.event_id} (seq {self.seq})"
        else:
            where = f"event seq {self.seq}" if self.seq else "its events"
        return f"referral {self.referral_id}: {where}: {self.message}"


def verify_events(referral_id: int, events: list[ReferralEvent]) -> ChainProblem | None:
    """Check one referral's events in id order; return the first problem or None."""
    prev = GENESIS
    for expected_seq, event in enumerate(events, start=1):
        if event.seq != expected_seq:
            return ChainProblem(referral_id, event.seq, event.id,
                                f"expected seq {expected_seq}: an event was deleted, "
                                "inserted or reordered")
        if event.prev_hash != prev:
            return ChainProblem(referral_id, event.seq, event.id,
                                "does not follow the event before it (deleted, inserted or "
                                "reordered)")
        recomputed = hashlib.sha256((prev + canonical(event)).encode()).hexdigest()
        if recomputed != event.hash:
            return ChainProblem(referral_id, event.seq, event.id,
                                "its content was changed after it was written")
        prev = event.hash
    return None


def verify_chain(referral: Referral, events: list[ReferralEvent]) -> ChainProblem | None:
    """The first problem with a referral's events (chain, count, final state), or None.

    ``events`` are the referral's rows in id order. Both may be ORM objects or plain
    rows with the same column names (the nightly walk reads rows).
    """
    if not events:
        return ChainProblem(referral.id, None, None, "has no events at all")
    problem = verify_events(referral.id, events)
    if problem:
        return problem
    # A chain is only as long as its rows: every transition bumps the referral's version
    # once and writes one event, so the count catches a deleted or appended last event.
    last = events[-1]
    if last.seq > referral.version:
        extra = events[referral.version]
        return ChainProblem(referral.id, extra.seq, extra.id,
                            f"the referral has made only {referral.version} moves: this "
                            "event was inserted")
    if last.seq < referral.version:
        return ChainProblem(referral.id, last.seq + 1, None,
                            f"missing: the referral has made {referral.version} moves but "
                            f"its events end at seq {last.seq} (deleted)")
    if last.to_state != referral.state:
        return ChainProblem(referral.id, last.seq, last.id,
                            f"ends in {last.to_state} but the referral is {referral.state}")
    return None


def verify_referral(referral_id: int) -> ChainProblem | None:
    """The first problem with one referral's events, or None."""
    events = list(db.session.scalars(
        select(ReferralEvent).where(ReferralEvent.referral_id == referral_id)
        .order_by(ReferralEvent.id)
    ))
    referral = db.session.get(Referral, referral_id)
    if referral is None:
        return verify_events(referral_id, events) if events else None
    return verify_chain(referral, events)
