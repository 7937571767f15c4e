"""`audit verify` replays each chain against the columns copied from it: an edit of a
referral, decision or record row that leaves the events alone is named all the same."""

from types import SimpleNamespace

import pytest
from sqlalchemy import select

from extensions import db
from models import DecisionRecord, Referral, ReferralEvent
from tests.paging.helpers import raise_stroke, user
from tests.tampering import tamper
from tests.workflow.helpers import SIGNED
from workflow.audit import derived
from workflow.audit.integrity import verify_all
from workflow.referrals import actions as referrals

pytestmark = pytest.mark.clock

SPECIALIST = "stroke.night@qmc.demo.nhs.uk"


def decided_and_amended() -> int:
    """A stroke referral decided (advice only) and amended once: records v1 and v2."""
    referral = raise_stroke()
    referrals.acknowledge(referral.id, user(SPECIALIST))
    referrals.perform("decide", referral.id, user(SPECIALIST), {
        "outcome": "advice_only", "advice": "Aspirin 300 mg.",
        "rationale": "Small infarct, no occlusion.", **SIGNED})
    referrals.add_addendum(referral.id, user(SPECIALIST),
                           {"text": "Repeat CT if worse.", **SIGNED})
    return referral.id


def run_sql(sql: str, **params) -> None:
    """Tamper as the tables' owner: past the append-only triggers."""
    tamper(sql, **params)
    db.session.expire_all()


def seq_of(referral_id: int, kind: str) -> int:
    return db.session.scalar(select(ReferralEvent.seq).where(
        ReferralEvent.referral_id == referral_id, ReferralEvent.kind == kind))


def problems() -> list[str]:
    return verify_all().problems


def test_an_untampered_referral_with_a_decision_and_two_records_verifies_clean(network):
    referral_id = decided_and_amended()
    versions = db.session.scalars(select(DecisionRecord.version).where(
        DecisionRecord.referral_id == referral_id).order_by(DecisionRecord.version))
    assert list(versions) == [1, 2]
    assert problems() == []


def test_deleting_the_last_event_and_decrementing_the_version_is_named(network):
    referral_id = decided_and_amended()
    addendum = seq_of(referral_id, "addendum")
    run_sql("DELETE FROM referral_events WHERE referral_id = :r AND seq = :s",
            r=referral_id, s=addendum)
    run_sql("UPDATE referrals SET version = version - 1 WHERE id = :r", r=referral_id)
    [problem] = problems()
    assert problem.startswith(f"referral {referral_id}: decision record ")
    assert f"(v2) was made by event seq {addendum}, but the chain ends at seq " \
           f"{addendum - 1}: the event was deleted" in problem


@pytest.mark.parametrize("column, value, shown", [
    ("rationale", "Large infarct.", "rationale 'Large infarct.'"),
    ("outcome", "transfer", "outcome 'transfer'"),
    ("decided_by_id", None, "decided_by_id"),
])
def test_an_edited_decisions_row_is_named_against_the_decide_event(network, column, value,
                                                                    shown):
    referral_id = decided_and_amended()
    if value is None:  # another user signed it
        value = user("referrer@pil.demo.nhs.uk").id
        shown = f"decided_by_id '{value}'"
    run_sql(f"UPDATE decisions SET {column} = :v WHERE referral_id = :r", v=value,
            r=referral_id)
    [problem] = problems()
    assert problem.startswith(f"referral {referral_id}: decisions row ")
    assert f"says {shown} but the chain's decide event (seq " \
           f"{seq_of(referral_id, 'decide')}) says" in problem


def test_a_deleted_decisions_row_is_named(network):
    referral_id = decided_and_amended()
    run_sql("DELETE FROM decisions WHERE referral_id = :r", r=referral_id)
    assert problems() == [
        f"referral {referral_id}: the decisions row of its decide event (seq "
        f"{seq_of(referral_id, 'decide')}) is missing"]


def test_a_destination_added_to_the_decisions_row_is_named(network):
    referral_id = decided_and_amended()
    run_sql("UPDATE decisions SET destination_hospital_id = (SELECT id FROM hospitals "
            "WHERE code = 'QMC') WHERE referral_id = :r", r=referral_id)
    [problem] = problems()
    assert problem.endswith(f"says destination_hospital 'QMC' but the chain's decide event "
                            f"(seq {seq_of(referral_id, 'decide')}) says none")


@pytest.mark.parametrize("column, value", [
    ("nhs_number", "4010232137"), ("family_name", "Jones"), ("given_name", "Bea")])
def test_an_edited_patient_identity_is_named_against_the_raise_event(network, column, value):
    referral_id = decided_and_amended()
    run_sql(f"UPDATE referrals SET {column} = :v WHERE id = :r", v=value, r=referral_id)
    [problem] = problems()
    assert problem.startswith(f"referral {referral_id}: referrals.{column} says '{value}' "
                              "but the chain's raise event (seq 1) says ")


def test_a_patient_edited_in_the_event_too_is_caught_by_the_chain(network):
    referral_id = decided_and_amended()
    run_sql("UPDATE referrals SET family_name = 'Jones' WHERE id = :r", r=referral_id)
    run_sql("UPDATE referral_events SET data = :d WHERE referral_id = :r AND seq = 1",
            d='{"patient": {"family_name": "Jones"}}', r=referral_id)
    [problem] = problems()
    assert problem.startswith(f"referral {referral_id}: event ")
    assert "(seq 1): its content was changed after it was written" in problem


def test_an_edited_outcome_is_named_against_the_decide_event(network):
    referral_id = decided_and_amended()
    run_sql("UPDATE referrals SET outcome = 'transfer' WHERE id = :r", r=referral_id)
    [problem] = problems()
    assert problem == (f"referral {referral_id}: referrals.outcome says 'transfer' but the "
                       f"chain's decide event (seq {seq_of(referral_id, 'decide')}) says "
                       "'advice_only'")


def test_an_edited_milestone_is_named_against_its_event(network):
    referral_id = decided_and_amended()
    run_sql("UPDATE referrals SET decided_at = NULL WHERE id = :r", r=referral_id)
    [problem] = problems()
    assert problem.startswith(f"referral {referral_id}: referrals.decided_at says None but "
                              f"the chain's decide event (seq {seq_of(referral_id, 'decide')})"
                              " is at ")


def test_a_deleted_latest_record_version_is_named(network):
    referral_id = decided_and_amended()
    run_sql("DELETE FROM decision_records WHERE referral_id = :r AND version = 2",
            r=referral_id)
    assert problems() == [
        f"referral {referral_id}: decision record v2 is missing: the chain's addendum event "
        f"(seq {seq_of(referral_id, 'addendum')}) made it"]


def test_a_deleted_record_version_in_between_is_named(network):
    referral_id = decided_and_amended()
    referrals.add_addendum(referral_id, user(SPECIALIST), {"text": "And a statin.", **SIGNED})
    run_sql("UPDATE decision_records SET previous_id = (SELECT id FROM decision_records "
            "WHERE referral_id = :r AND version = 1) WHERE referral_id = :r AND version = 3",
            r=referral_id)
    run_sql("DELETE FROM decision_records WHERE referral_id = :r AND version = 2",
            r=referral_id)
    [problem] = problems()
    assert problem.startswith(f"referral {referral_id}: decision record v2 is missing: the "
                              "chain's addendum event (seq ")
    assert "and the next stored is v3" in problem


def test_a_patient_is_checked_against_the_records_when_the_raise_event_sealed_none(network):
    """Raise events written before the patient was sealed in them: the signed records
    (each hashed, so unchanged) still hold the patient the decision was made for."""
    referral_id = decided_and_amended()
    decisions, records = derived.load(referral_id, referral_id)
    events = [SimpleNamespace(**{c: getattr(e, c) for c in ("seq", "kind", "at", "actor_id",
                                                            "reason", "hash")},
                              data={} if e.seq == 1 else e.data)
              for e in db.session.scalars(select(ReferralEvent).where(
                  ReferralEvent.referral_id == referral_id).order_by(ReferralEvent.seq))]
    referral = db.session.get(Referral, referral_id)
    codes = derived.hospital_codes()
    args = (events, decisions[referral_id], records[referral_id], codes)
    assert derived.verify_derived(referral, *args) is None
    referral.family_name = "Jones"  # in memory only
    assert derived.verify_derived(referral, *args) == (
        f"referral {referral_id}: referrals.family_name says 'Jones' but decision record "
        f"{records[referral_id][0].id} (v1) was signed for 'Smith'")
