"""`flask audit verify` names the first tampered event, and the admin page shows the last check."""

import pytest
from sqlalchemy import select

from extensions import db
from models import ReferralEvent
from tests.paging.helpers import raise_stroke, user
from tests.tampering import tamper
from workflow.referrals import actions as referrals
from workflow.scheduler import nightly_integrity_check

SPECIALIST = "stroke.night@qmc.demo.nhs.uk"


def three_events():
    referral = raise_stroke()
    referrals.acknowledge(referral.id, user(SPECIALIST))
    referrals.post_message(referral.id, user(SPECIALIST), {"text": "Looking now."})
    ids = list(db.session.scalars(select(ReferralEvent.id).where(
        ReferralEvent.referral_id == referral.id).order_by(ReferralEvent.id)))
    return referral.id, ids


def run_sql(sql, **params):
    """Tamper as the tables' owner: past the append-only triggers."""
    tamper(sql, **params)


@pytest.mark.parametrize("case", ["edit", "delete", "reorder", "insert"])
def test_each_kind_of_tampering_is_named(network, runner, case):
    referral_id, (first, second, third) = three_events()
    assert runner.invoke(args=["audit", "verify"]).exit_code == 0
    if case == "edit":
        run_sql("UPDATE referral_events SET reason = 'nothing to see' WHERE id = :id", id=second)
        expected = f"event {second} (seq 2): its content was changed"
    elif case == "delete":
        run_sql("DELETE FROM referral_events WHERE id = :id", id=second)
        expected = f"event {third} (seq 3)"
    elif case == "reorder":
        run_sql("UPDATE referral_events SET seq = 99 WHERE id = :id", id=second)
        run_sql("UPDATE referral_events SET seq = 2 WHERE id = :id", id=third)
        run_sql("UPDATE referral_events SET seq = 3 WHERE id = :id", id=second)
        expected = f"event {second} (seq 3)"
    else:
        row = db.session.get(ReferralEvent, third)
        run_sql("INSERT INTO referral_events (referral_id, seq, kind, at, actor_id, actor_label,"
                " from_state, to_state, reason, data, prev_hash, hash) VALUES (:r, 4, 'message',"
                " :at, NULL, 'x', 'under_review', 'under_review', 'forged', '{}', :p, :h)",
                r=referral_id, at=row.at.replace(tzinfo=None), p=row.hash, h="f" * 64)
        expected = "seq 4"
    result = runner.invoke(args=["audit", "verify"])
    assert result.exit_code == 1
    assert f"referral {referral_id}" in result.output and expected in result.output


def test_the_nightly_check_result_shows_on_the_admin_page(network, client):
    referral_id, (first, _second, _third) = three_events()
    assert nightly_integrity_check().startswith("OK")
    client.login("admin@em.demo.nhs.uk", "goldenhour-demo")
    assert "intact" in client.get("/admin/status").get_data(as_text=True)
    run_sql("UPDATE referral_events SET actor_label = 'Someone else' WHERE id = :id", id=first)
    assert nightly_integrity_check().startswith("TAMPERED")
    page = client.get("/admin/status").get_data(as_text=True)
    assert "TAMPERING FOUND" in page and f"referral {referral_id}" in page


def delete_behind_the_apps_back(referral_id: int) -> None:
    """Delete the referral row with foreign keys switched off, as a tamperer would."""
    raw = db.engine.raw_connection()  # outside SQLAlchemy's transaction: PRAGMA needs that
    try:
        cursor = raw.cursor()
        if db.engine.dialect.name == "sqlite":
            cursor.execute("PRAGMA foreign_keys=OFF")
            cursor.execute("DELETE FROM referrals WHERE id = ?", (referral_id,))
        else:
            cursor.execute("SET session_replication_role = replica")
            cursor.execute("DELETE FROM referrals WHERE id = %s", (referral_id,))
        raw.commit()
    finally:
        raw.invalidate()  # never hand this connection, settings changed, to the app


def test_the_walk_crosses_batches_and_names_a_deleted_referral(network):
    from workflow.audit.integrity import verify_all

    made = [three_events() for _ in range(5)]
    clean = verify_all(batch=2)
    assert (clean.referrals_checked, clean.events_checked, clean.problems) == (5, 15, [])
    (edited, (_, second, _)), (deleted, _) = made[2], made[3]
    run_sql("UPDATE referral_events SET reason = 'nothing to see' WHERE id = :id", id=second)
    delete_behind_the_apps_back(deleted)
    db.session.expire_all()
    report = verify_all(batch=2)
    assert report.referrals_checked == 4
    assert report.problems == [
        f"referral {edited}: event {second} (seq 2): its content was changed after it was "
        "written",
        f"events exist for referral {deleted}, which is missing"]
