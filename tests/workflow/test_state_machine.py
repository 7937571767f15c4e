"""The referral workflow as a hypothesis state machine: legal and illegal events, any actor.

The model keeps its own idea of each referral (state, assigned specialist, decision
outcome, number of events) and predicts every step from the transition table alone;
the workflow functions must agree, refuse exactly the moves the table refuses, and
leave no trace of a refusal.
"""

from __future__ import annotations

import pytest
from hypothesis import event as note_event
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy import func, select

from extensions import db
from models import Decision, Referral, ReferralEvent
from tests.workflow.helpers import (
    AUDIT,
    DUTY_MANAGER,
    OTHER_REFERRER,
    REFERRER,
    SIGNED,
    STROKE_SPECIALISTS,
    VASCULAR,
    stroke_payload,
    user,
)
from workflow.audit.integrity import verify_all
from workflow.errors import DomainError
from workflow.referrals import actions as referrals
from workflow.referrals import chain, states
from workflow.referrals.states import FINAL, State

EVENTS = sorted(states.EVENTS)
ACTORS = ["referrer", "other_referrer", *STROKE_SPECIALISTS, VASCULAR, "duty_manager",
          "audit", "system"]
EMAILS = {"referrer": REFERRER, "other_referrer": OTHER_REFERRER, "duty_manager": DUTY_MANAGER,
          "audit": AUDIT, **{e: e for e in (*STROKE_SPECIALISTS, VASCULAR)}}
DECISIONS = {
    "transfer": {"outcome": "transfer", "destination_hospital": "QMC",
                 "rationale": "M1 occlusion: thrombectomy"},
    "treat_locally": {"outcome": "treat_locally", "advice": "Aspirin 300 mg",
                      "rationale": "Small lacunar stroke"},
    "advice_only": {"outcome": "advice_only", "advice": "Repeat CT in 24 h",
                    "rationale": "Mimic likely"},
    "not_accepted": {"outcome": "not_accepted", "rationale": "Outside every window"},
}


class Model:
    """What the table says a referral should be."""

    def __init__(self, referral_id: int):
        self.id = referral_id
        self.state = State.SUBMITTED
        self.assigned: str | None = None
        self.outcome: str | None = None
        self.events = 1
        self.decision: tuple | None = None


def expected_kinds(actor: str, model: Model) -> frozenset[str]:
    """The actor's capacities, worked out independently of workflow.referrals.access."""
    if actor == "system":
        return frozenset({states.SYSTEM})
    if actor == "referrer":
        return frozenset({states.REFERRER})
    if actor == "duty_manager":
        return frozenset({states.DUTY_MANAGER})
    if actor in STROKE_SPECIALISTS:
        kinds = {states.HUB_SPECIALIST}
        if model.assigned == actor:
            kinds.add(states.ASSIGNED)
        return frozenset(kinds)
    return frozenset()  # a referrer elsewhere, another service's specialist, the audit lead


def decision_row(referral_id: int) -> tuple | None:
    d = db.session.scalar(select(Decision).where(Decision.referral_id == referral_id))
    if d is None:
        return None
    return (d.outcome, d.destination_hospital_id, d.destination_unit, d.transfer_urgency,
            d.advice, d.rationale, d.decided_by_id, d.decided_at)


class ReferralWorkflow(RuleBasedStateMachine):
    referral_ids = Bundle("referral_ids")

    def __init__(self):
        super().__init__()
        self.models: dict[int, Model] = {}

    @initialize(target=referral_ids)
    def raise_first(self):
        return self._raise()

    @rule(target=referral_ids)
    def raise_another(self):
        return self._raise()

    def _raise(self) -> int:
        referral = referrals.raise_referral(user(REFERRER), stroke_payload())
        self.models[referral.id] = Model(referral.id)
        return referral.id

    @rule(referral_id=referral_ids, event=st.sampled_from(EVENTS),
          actor=st.sampled_from(ACTORS), outcome=st.sampled_from(sorted(DECISIONS)),
          handover_to=st.sampled_from(STROKE_SPECIALISTS))
    def fire(self, referral_id, event, actor, outcome, handover_to):
        model = self.models[referral_id]
        move = states._BY_KEY.get((model.state, event))
        allowed = move is not None and move.permits(expected_kinds(actor, model), model.outcome)
        if event == "hand_over" and handover_to == model.assigned:
            handover_to = next(s for s in STROKE_SPECIALISTS if s != model.assigned)
        try:
            self._call(referral_id, event, actor, outcome, handover_to)
        except DomainError as exc:
            db.session.rollback()
            assert not allowed, f"{actor} was refused {event} from {model.state}: {exc}"
            return
        assert allowed, f"{actor} could {event} from {model.state}"
        assert model.state not in FINAL or move.target == model.state, \
            f"{event} left the final state {model.state}"
        db.session.expire_all()
        last = db.session.scalars(select(ReferralEvent).where(
            ReferralEvent.referral_id == referral_id).order_by(ReferralEvent.seq.desc())).first()
        assert (last.seq, last.kind, last.from_state, last.to_state) == \
            (model.events + 1, event, model.state, move.target), "the event is not this move"
        model.events += 1
        if event == "acknowledge":
            model.assigned = actor
        if event == "hand_over" and model.state not in (State.AWAITING_SPECIALIST,
                                                        State.UNANSWERED):
            model.assigned = handover_to
        if event == "decide":
            model.outcome = outcome
            model.decision = decision_row(referral_id)
            assert model.decision is not None and model.decision[0] == outcome
        model.state = move.target
        note_event(f"reached {model.state}")

    @rule(referral_id=referral_ids, data=st.data())
    def fire_a_legal_move(self, referral_id, data):
        """Steer towards the deep states: pick an event and actor the table allows now."""
        model = self.models[referral_id]
        legal = {m.event: [a for a in ACTORS if m.permits(expected_kinds(a, model), model.outcome)]
                 for m in states.MOVES if m.source == model.state}
        legal = {event: actors for event, actors in legal.items() if actors}
        if not legal:
            return
        event = data.draw(st.sampled_from(sorted(legal)))
        actor = data.draw(st.sampled_from(legal[event]))
        self.fire(referral_id, event, actor, data.draw(st.sampled_from(sorted(DECISIONS))),
                  data.draw(st.sampled_from(STROKE_SPECIALISTS)))

    def _call(self, referral_id, event, actor, outcome, handover_to):
        if actor == "system":
            referrals.transition(referral_id, event, None)
            return
        who = user(EMAILS[actor])
        text = {"question": "Any anticoagulant?", "text": "Apixaban at 08:00",
                "reason": "Symptoms resolved", "note": "Taking over", **SIGNED}
        if event == "acknowledge":
            referrals.acknowledge(referral_id, who)
        elif event == "decide":
            referrals.decide(referral_id, who, {**DECISIONS[outcome], **SIGNED})
        elif event == "hand_over":
            referrals.hand_over(referral_id, who, {**text, "to": handover_to})
        elif event in ("studies_linked", "page_sent", "escalation_exhausted"):
            referrals.transition(referral_id, event, who)  # no user-facing action
        else:
            action = {"request_info": "request-info", "provide_info": "provide-info",
                      "hand_over": "hand-over", "message": "messages",
                      "page_again": "page-again"}.get(event, event)
            referrals.ACTIONS[action](referral_id, who, text)

    @invariant()
    def the_database_agrees_with_the_table(self):
        db.session.expire_all()
        for model in self.models.values():
            referral = db.session.get(Referral, model.id)
            assert referral.state == model.state
            assigned = referral.assigned_specialist.email if referral.assigned_specialist \
                else None
            assert assigned == model.assigned
            assert referral.outcome == model.outcome, "the decision outcome changed"
            assert decision_row(model.id) == model.decision, "the decision row changed"
            events = db.session.scalar(select(func.count()).select_from(ReferralEvent)
                                       .where(ReferralEvent.referral_id == model.id))
            assert events == model.events, "not exactly one event per transition"
            problem = chain.verify_referral(model.id)
            assert problem is None, str(problem)

    def teardown(self):
        # Whatever the story, `audit verify` finds every copied column equal to its chain.
        problems = verify_all().problems
        assert problems == [], problems


def test_the_table_has_no_way_out_of_closed_or_cancelled():
    for move in states.MOVES:
        if move.source in FINAL:
            assert move.target == move.source, move


def _run(max_examples: int, steps: int) -> None:
    run_state_machine_as_test(ReferralWorkflow, settings=settings(
        max_examples=max_examples, stateful_step_count=steps, deadline=None,
        database=None))


@pytest.mark.clock(tick=True)
def test_the_workflow_follows_the_table(network, request):
    postgres = request.node.callspec.params["database_url"] == "postgres"
    _run(max_examples=10 if postgres else 25, steps=30)


def test_every_event_the_table_does_not_allow_is_refused_naming_state_and_event():
    for state in State:
        for event in sorted(states.EVENTS):
            if (state, event) in states._BY_KEY:
                assert states.move_for(state, event).event == event
                continue
            with pytest.raises(states.IllegalTransition) as refused:
                states.move_for(state, event)
            message = str(refused.value)
            assert event.replace("_", " ") in message and state.replace("_", " ") in message
            assert refused.value.status == 409  # the API's conflict
