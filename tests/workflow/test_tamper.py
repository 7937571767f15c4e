"""Editing, deleting, reordering or inserting event rows behind the app's back is caught."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import delete, select, update

from extensions import db
from models import MessageReceipt, ReferralEvent
from tests.tampering import as_owner, tamper
from tests.workflow.helpers import REFERRER, STROKE_SPECIALISTS, stroke_payload, user
from workflow.referrals import actions as referrals
from workflow.referrals import chain

COLUMNS = ("seq", "kind", "at", "actor_id", "actor_label", "from_state", "to_state", "reason",
           "data", "prev_hash", "hash")

# The suite's night, with the clock running.
pytestmark = pytest.mark.clock(tick=True)


@pytest.fixture
def story(network):
    """A referral with five events (seq 1-5); returns the event ids by seq."""
    rid = referrals.raise_referral(user(REFERRER), stroke_payload()).id
    referrals.system_event(rid, "page_sent")
    specialist = user(STROKE_SPECIALISTS[0])
    referrals.acknowledge(rid, specialist)
    referrals.request_info(rid, specialist, {"question": "Any anticoagulant?"})
    referrals.provide_info(rid, user(REFERRER), {"text": "None"})
    ids = dict(db.session.execute(select(ReferralEvent.seq, ReferralEvent.id)
                                  .where(ReferralEvent.referral_id == rid)).all())
    assert sorted(ids) == [1, 2, 3, 4, 5]
    assert chain.verify_referral(rid) is None
    return rid, ids


def _row(event_id) -> dict:
    event = db.session.get(ReferralEvent, event_id)
    return {c: getattr(event, c) for c in COLUMNS}


def _sql(statement) -> None:
    """Tamper as the table's owner: past the append-only trigger."""
    tamper(statement.execution_options(synchronize_session=False))
    db.session.expire_all()


def _problem(rid):
    problem = chain.verify_referral(rid)
    assert problem is not None, "the tampering went unnoticed"
    return problem


@pytest.mark.parametrize("seq, change", [
    (4, {"reason": "No anticoagulant, honest"}),
    (1, {"kind": "decide"}),
    (5, {"to_state": "decided"}),
    (3, {"data": {"via": "pager"}}),
    (3, {"actor_label": "Someone Else"}),
    (5, {"at": datetime(2026, 11, 29, 2, 0, tzinfo=UTC)}),
    (2, {"seq": 9}),
    (1, {"hash": "f" * 64}),
])
def test_an_edited_event_is_named(story, seq, change):
    rid, ids = story
    _sql(update(ReferralEvent).where(ReferralEvent.id == ids[seq]).values(**change))
    problem = _problem(rid)
    assert (problem.event_id, problem.seq) == (ids[seq], change.get("seq", seq)), str(problem)


def test_an_edited_actor_is_named(story):
    rid, ids = story
    _sql(update(ReferralEvent).where(ReferralEvent.id == ids[3])
         .values(actor_id=user(STROKE_SPECIALISTS[1]).id))
    assert _problem(rid).event_id == ids[3]


def test_an_edit_with_a_recomputed_hash_breaks_the_next_event(story):
    rid, ids = story
    event = db.session.get(ReferralEvent, ids[2])
    with as_owner():
        event.reason = "rewritten"
        chain.seal(event, event.prev_hash)
    assert _problem(rid).event_id == ids[3]


@pytest.mark.parametrize("seq", [1, 3, 5])
def test_a_deleted_event_is_named(story, seq):
    rid, ids = story
    # a message's receipts point at it: whoever deletes the event deletes them first
    _sql(delete(MessageReceipt).where(MessageReceipt.event_id == ids[seq]))
    _sql(delete(ReferralEvent).where(ReferralEvent.id == ids[seq]))
    problem = _problem(rid)
    if seq == 5:  # nothing follows the last event: the referral's count says one is missing
        assert (problem.event_id, problem.seq) == (None, 5), str(problem)
    else:
        assert problem.event_id == ids[seq + 1], str(problem)


@pytest.mark.parametrize("a, b", [(1, 2), (2, 4), (4, 5)])
def test_two_swapped_events_are_named_at_the_first(story, a, b):
    rid, ids = story
    row_a, row_b = _row(ids[a]), _row(ids[b])
    # Move a out of the way of the unique (referral, seq), then swap the contents.
    _sql(update(ReferralEvent).where(ReferralEvent.id == ids[a]).values(seq=-1))
    _sql(update(ReferralEvent).where(ReferralEvent.id == ids[b]).values(**row_a))
    _sql(update(ReferralEvent).where(ReferralEvent.id == ids[a]).values(**row_b))
    assert _problem(rid).event_id == ids[a]


@pytest.mark.parametrize("a, b", [(2, 3), (1, 5)])
def test_two_swapped_sequence_numbers_are_named_at_the_first(story, a, b):
    rid, ids = story
    _sql(update(ReferralEvent).where(ReferralEvent.id == ids[a]).values(seq=-1))
    _sql(update(ReferralEvent).where(ReferralEvent.id == ids[b]).values(seq=a))
    _sql(update(ReferralEvent).where(ReferralEvent.id == ids[a]).values(seq=b))
    assert _problem(rid).event_id == ids[a]


def _forge(rid, seq, after_hash, **over) -> ReferralEvent:
    event = ReferralEvent(referral_id=rid, seq=seq, kind="message",
                          at=datetime(2026, 11, 29, 2, 59, tzinfo=UTC), actor_id=None,
                          actor_label="goldenhour", from_state="under_review",
                          to_state="under_review", reason="forged", data={}, **over)
    chain.seal(event, after_hash)
    return event


def test_an_inserted_event_at_the_end_is_named(story):
    rid, ids = story
    last = db.session.get(ReferralEvent, ids[5])
    forged = _forge(rid, 6, last.hash)  # a perfect link, but the referral never moved
    db.session.add(forged)
    db.session.commit()
    problem = _problem(rid)
    assert problem.event_id == forged.id, str(problem)


def test_an_inserted_event_in_the_middle_is_named(story):
    rid, ids = story
    # Shift the later events up by one, then put the forged event in the gap.
    for seq in (5, 4, 3):
        _sql(update(ReferralEvent).where(ReferralEvent.id == ids[seq]).values(seq=seq + 1))
    forged = _forge(rid, 3, db.session.get(ReferralEvent, ids[2]).hash)
    db.session.add(forged)
    db.session.commit()
    problem = _problem(rid)
    # Rows are checked in id order: the first to break the chain is the shifted seq-3 event.
    assert problem.event_id == ids[3], str(problem)


def test_an_event_moved_from_another_referral_is_named(story, clock):
    rid, ids = story
    other = referrals.raise_referral(user(REFERRER), stroke_payload()).id
    referrals.post_message(other, user(REFERRER), {"text": "hello"})
    moved = db.session.scalar(select(ReferralEvent.id).where(
        ReferralEvent.referral_id == other, ReferralEvent.seq == 2))
    _sql(update(ReferralEvent).where(ReferralEvent.id == moved).values(referral_id=rid, seq=6))
    assert _problem(rid).event_id == moved
    assert _problem(other).seq == 2  # and the referral it came from is missing one
