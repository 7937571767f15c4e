"""The nightly check verifies only what changed since the anchor the last clean check
verified (workflow/audit/nightly.py), yet an edit to an old referral that has not
moved since that anchor is still caught; `flask audit verify --full` walks it all."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from extensions import db
from models import IntegrityRun, ReferralEvent
from tests.audit.test_anchors import (  # noqa: F401 - fixtures
    anchor,
    app_config,
    referral_with_three_events,
    signing_key,
)
from tests.paging.helpers import user
from tests.tampering import as_owner, tamper
from workflow.audit import nightly
from workflow.referrals import actions as referrals
from workflow.referrals.chain import GENESIS, seal

SPECIALIST = "stroke.night@qmc.demo.nhs.uk"
pytestmark = pytest.mark.clock()
postgres_only = pytest.mark.parametrize("database_url", [
    pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True)


def events_of(referral_id: int) -> list[ReferralEvent]:
    return db.session.scalars(select(ReferralEvent).where(
        ReferralEvent.referral_id == referral_id).order_by(ReferralEvent.seq)).all()


def check() -> nightly.IntegrityReport:
    db.session.expire_all()
    return nightly.run()


@pytest.fixture
def three_verified(app, network) -> list[int]:
    """Three referrals, anchored, and a clean full check against that anchor."""
    made = [referral_with_three_events() for _ in range(3)]
    anchor(app)
    first = check()
    assert (first.full, first.ok, first.referrals_checked) == (True, True, 3)
    return made


@postgres_only
def test_the_next_night_walks_only_the_referral_that_moved(app, three_verified):
    moved = three_verified[0]
    referrals.post_message(moved, user(SPECIALIST), {"text": "Crew on the way."})
    latest = anchor(app)["tree_head"]["root"]
    report = check()
    assert (report.full, report.problems, report.referrals_checked,
            report.events_checked) == (False, [], 1, 4)
    kept = db.session.scalars(select(IntegrityRun).order_by(IntegrityRun.id)).all()
    assert [(run.full, run.problems) for run in kept] == [(True, 0), (False, 0)]
    assert kept[1].anchor_root == latest != kept[0].anchor_root  # tomorrow's baseline
    assert kept[1].xid >= kept[0].xid


@postgres_only
def test_an_edit_in_place_to_an_old_unmoved_referral_is_caught(app, three_verified):
    old = three_verified[1]
    second = events_of(old)[1]
    tamper("UPDATE referral_events SET reason = 'nothing to see' WHERE id = :id",
           id=second.id)
    report = check()
    assert report.full is False
    assert report.problems == [f"referral {old}: event {second.id} (seq 2): its content was "
                               "changed after it was written"]


@postgres_only
def test_a_resealed_old_unmoved_referral_differs_from_its_anchored_head(app, three_verified):
    old = three_verified[2]
    with as_owner():
        events = events_of(old)
        events[1].reason = "a better story"
        prev = GENESIS
        for event in events:  # every hash recomputed: the chain alone looks intact
            seal(event, prev)
            prev = event.hash
    report = check()
    assert report.full is False
    assert report.problems == [f"referral {old}: event seq 3 differs from the head anchored "
                               "at 2026-11-29T03:00:00.000000Z: its chain was rewritten"]


@postgres_only
def test_a_change_after_the_anchor_is_walked_and_a_forged_event_in_it_named(
        app, three_verified):
    changed = three_verified[0]
    referrals.post_message(changed, user(SPECIALIST), {"text": "After the anchor."})
    fourth = events_of(changed)[3]
    tamper("UPDATE referral_events SET reason = 'forged' WHERE id = :id", id=fourth.id)
    report = check()
    assert (report.full, report.referrals_checked) == (False, 1)
    assert report.problems == [f"referral {changed}: event {fourth.id} (seq 4): its content "
                               "was changed after it was written"]


@postgres_only
def test_a_middle_event_deleted_from_an_unmoved_referral_is_named(app, three_verified):
    old = three_verified[1]
    third = events_of(old)[2]
    tamper("DELETE FROM referral_events WHERE referral_id = :r AND seq = 2", r=old)
    report = check()
    assert report.full is False
    assert report.problems == [f"referral {old}: event {third.id} (seq 3): expected seq 2: an "
                               "event was deleted, inserted or reordered"]


@postgres_only
def test_a_referral_deleted_with_its_rows_is_named(app, three_verified):
    gone = three_verified[2]
    raw = db.engine.raw_connection()  # the tamperer removes every trace, keys off
    try:
        cursor = raw.cursor()
        cursor.execute("SET session_replication_role = replica")
        for table in ("referral_events", "pages", "decisions", "decision_records",
                      "referrals"):
            column = "id" if table == "referrals" else "referral_id"
            cursor.execute(f"DELETE FROM {table} WHERE {column} = {gone}")  # noqa: S608
        raw.commit()
    finally:
        raw.invalidate()
    report = check()
    assert report.full is False
    assert report.problems == [
        f"referral {gone}: anchored at 2026-11-29T03:00:00.000000Z (head seq 3) but is now "
        "missing",
        # keys off, its facts row was not deleted with it
        "audit facts: 3 rows for 2 referrals: a row was deleted or added (`flask audit "
        "verify --full` names it)"]


@postgres_only
def test_a_baseline_anchor_removed_from_the_file_is_named_and_the_night_walks_in_full(
        app, three_verified):
    Path(app.config["ANCHOR_LOG"]).write_text("")
    report = check()
    assert report.full is True
    assert report.problems[0].startswith("anchors: the anchor of 2026-11-29T03:00:00.000000Z")
    assert report.problems[0].endswith("is no longer in the anchors file")


def test_verify_full_walks_everything_and_sqlite_always_does(app, three_verified, runner):
    result = runner.invoke(args=["audit", "verify", "--full"])
    assert result.exit_code == 0, result.output
    assert "OK: 3 referrals, 9 events, chains intact\n" == result.output
    plain = runner.invoke(args=["audit", "verify"])
    assert plain.exit_code == 0, plain.output
    if db.engine.dialect.name == "postgresql":
        assert plain.output.startswith("OK: 0 referrals, 0 events, chains intact since the "
                                       "last verified anchor")
    else:  # no xmin to see edits in place by: the whole walk, every night
        assert plain.output == "OK: 3 referrals, 9 events, chains intact\n"


@postgres_only
def test_the_dashboards_facts_of_an_old_referral_edited_or_deleted_are_caught(
        app, three_verified):
    edited, deleted = three_verified[0], three_verified[1]
    tamper("UPDATE audit_facts SET outcome = 'transfer' WHERE referral_id = :r", r=edited)
    tamper("DELETE FROM audit_facts WHERE referral_id = :r", r=deleted)
    report = check()
    assert report.full is False
    assert report.problems == [
        f"audit facts of referral {edited} differ from the referral (the dashboard would "
        "count it wrongly): any update of the referral row rewrites them",
        "audit facts: 2 rows for 3 referrals: a row was deleted or added (`flask audit "
        "verify --full` names it)"]


@postgres_only
def test_a_record_decided_since_and_noted_with_a_root_that_does_not_cover_it_is_named(
        app, three_verified):
    from tests.records.test_decision_record import decided
    from workflow.audit import records

    before = anchor(app)["tree_head"]["root"]  # the night's first anchor, before it
    referral_id = decided()
    anchor(app)
    record = records.latest(referral_id)
    tamper("UPDATE decision_records SET anchored_root = :r WHERE id = :id",
           r=before, id=record.id)
    report = check()
    assert report.full is False
    assert report.problems == [
        f"decision record {record.id} (v1) of referral {referral_id}: noted as anchored in "
        f"root {before} (2026-11-29T03:00:00.000000Z), whose tree does not cover its event "
        f"seq {record.event_seq}"]
