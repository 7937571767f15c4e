"""The referral state machine: one table of every allowed move.

A row says: in state S, event E by an actor of one of these kinds moves the referral
to state T (optionally only for a given decision outcome). Anything not in the table
raises `IllegalTransition`. The table is also rendered as a diagram in
docs/STATES.md by `flask docs states`, so the document cannot drift from the code.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from workflow.errors import Conflict


class State(enum.StrEnum):
    SUBMITTED = "submitted"
    AWAITING_SPECIALIST = "awaiting_specialist"
    UNDER_REVIEW = "under_review"
    INFO_REQUESTED = "info_requested"
    DECIDED = "decided"
    IN_TRANSFER = "in_transfer"
    CLOSED = "closed"
    CANCELLED = "cancelled"
    UNANSWERED = "unanswered"


class Outcome(enum.StrEnum):
    TRANSFER = "transfer"
    TREAT_LOCALLY = "treat_locally"
    ADVICE_ONLY = "advice_only"
    NOT_ACCEPTED = "not_accepted"


FINAL = frozenset({State.CLOSED, State.CANCELLED})
OPEN_BEFORE_DECISION = (
    State.SUBMITTED, State.AWAITING_SPECIALIST, State.UNDER_REVIEW, State.INFO_REQUESTED,
    State.UNANSWERED,
)

# Actor kinds, worked out for a user and a referral by workflow.referrals.access.actor_kinds():
REFERRER = "referrer"          # a referrer at the referring hospital
HUB_SPECIALIST = "hub_specialist"  # a specialist of the target hub service
ASSIGNED = "assigned"          # the specialist who accepted (or was handed) the referral
DUTY_MANAGER = "duty_manager"  # the hub hospital's duty manager
SYSTEM = "system"              # the scheduler (paging, escalation)


@dataclass(frozen=True)
class Move:
    event: str
    source: State
    target: State
    actors: frozenset[str]
    outcomes: frozenset[str] | None = None  # None: any (or no) decision outcome

    def permits(self, actor_kinds: set[str] | frozenset[str], outcome: str | None) -> bool:
        if self.outcomes is not None and outcome not in self.outcomes:
            return False
        return bool(self.actors & actor_kinds)


def _moves() -> list[Move]:
    S = State
    specialists = frozenset({HUB_SPECIALIST, ASSIGNED})
    clinicians = frozenset({REFERRER, HUB_SPECIALIST, ASSIGNED, DUTY_MANAGER})
    moves = [
        Move("page_sent", S.SUBMITTED, S.AWAITING_SPECIALIST, frozenset({SYSTEM})),
        Move("escalation_exhausted", S.AWAITING_SPECIALIST, S.UNANSWERED, frozenset({SYSTEM})),
        # Nobody answered: the referrer starts the escalation again from its first step.
        Move("page_again", S.UNANSWERED, S.AWAITING_SPECIALIST, frozenset({REFERRER})),
        Move("request_info", S.UNDER_REVIEW, S.INFO_REQUESTED, frozenset({ASSIGNED})),
        Move("provide_info", S.INFO_REQUESTED, S.UNDER_REVIEW, frozenset({REFERRER})),
        Move("decide", S.UNDER_REVIEW, S.DECIDED, frozenset({ASSIGNED})),
        Move("depart", S.DECIDED, S.IN_TRANSFER, frozenset({REFERRER}),
             frozenset({Outcome.TRANSFER})),
        Move("arrive", S.IN_TRANSFER, S.CLOSED,
             frozenset({HUB_SPECIALIST, ASSIGNED, DUTY_MANAGER})),
        Move("close", S.DECIDED, S.CLOSED, frozenset({REFERRER, ASSIGNED}),
             frozenset({Outcome.TREAT_LOCALLY, Outcome.ADVICE_ONLY, Outcome.NOT_ACCEPTED})),
    ]
    for source in (S.SUBMITTED, S.AWAITING_SPECIALIST, S.UNANSWERED):
        moves.append(Move("acknowledge", source, S.UNDER_REVIEW, specialists))
    for source in OPEN_BEFORE_DECISION:
        moves.append(Move("cancel", source, S.CANCELLED, frozenset({REFERRER, ASSIGNED})))
    moves.append(Move("cancel", S.DECIDED, S.CANCELLED, frozenset({REFERRER, ASSIGNED})))
    # Moves that leave the state as it is but are still events on the record.
    for source in (S.AWAITING_SPECIALIST, S.UNANSWERED, S.UNDER_REVIEW, S.INFO_REQUESTED):
        moves.append(Move("hand_over", source, source, frozenset({ASSIGNED, HUB_SPECIALIST,
                                                                  DUTY_MANAGER})))
    for source in (S.DECIDED, S.IN_TRANSFER, S.CLOSED):
        moves.append(Move("addendum", source, source, frozenset({ASSIGNED})))
    for source in (*OPEN_BEFORE_DECISION, S.DECIDED, S.IN_TRANSFER):
        moves.append(Move("message", source, source, clinicians))
    for source in (*OPEN_BEFORE_DECISION, S.DECIDED, S.IN_TRANSFER):
        moves.append(Move("studies_linked", source, source, frozenset({REFERRER, ASSIGNED})))
    return moves


MOVES: tuple[Move, ...] = tuple(_moves())
EVENTS: frozenset[str] = frozenset(m.event for m in MOVES)
_BY_KEY: dict[tuple[State, str], Move] = {(m.source, m.event): m for m in MOVES}
assert len(_BY_KEY) == len(MOVES), "two moves share a (state, event)"


class IllegalTransition(Conflict):
    """The event is not allowed from the referral's current state."""


def move_for(state: str, event: str) -> Move:
    """The move for ``event`` from ``state``.

    Raises IllegalTransition naming both when the table has no such move.
    """
    move = _BY_KEY.get((State(state), event))
    if move is None:
        raise IllegalTransition(
            f"cannot {event.replace('_', ' ')} a referral that is {state.replace('_', ' ')}"
        )
    return move


def mermaid() -> str:
    """The table as a Mermaid state diagram (state changes only)."""
    lines = ["stateDiagram-v2", "    [*] --> submitted: raise"]
    for m in MOVES:
        if m.source == m.target:
            continue
        label = m.event + (f" [{'/'.join(sorted(m.outcomes))}]" if m.outcomes else "")
        lines.append(f"    {m.source} --> {m.target}: {label} ({', '.join(sorted(m.actors))})")
    for final in sorted(FINAL):
        lines.append(f"    {final} --> [*]")
    return "\n".join(lines) + "\n"
