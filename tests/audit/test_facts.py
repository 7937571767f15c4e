"""The dashboard's per-referral records: the trigger-kept audit_facts rows on PostgreSQL
equal what they are derived from, and both databases count the same way."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select, text, update

from extensions import db
from models import AuditFact, Hospital, Referral
from tests.audit.conftest import at
from workflow.audit import clocks as audit_clocks

# audit_facts is kept by a PostgreSQL trigger (SQLite reads referrals): these tests
from workflow.audit import stats as audit_stats

# run on PostgreSQL only, chosen here rather than skipped on SQLite.
postgres_only = pytest.mark.parametrize("database_url", ["postgres"], indirect=True)


@pytest.fixture
def on_postgres(app):
    assert db.engine.dialect.name == "postgresql"


def facts_count() -> int:
    return len(db.session.scalars(select(AuditFact.referral_id)).all())


@pytest.mark.postgres
@postgres_only
def test_every_referral_has_a_facts_row_equal_to_it_after_inserts_and_updates(
        on_postgres, audit_set):
    assert facts_count() == 5
    assert audit_clocks.mismatched_facts() == []
    a2, a3 = audit_set["A2"], audit_set["A3"]
    # the writers' own shape: conditional Core UPDATEs of milestones and state
    db.session.execute(update(Referral).where(Referral.id == a2.id)
                       .values(first_image_viewed_at=at("2026-01-20T10:05"), escalated=True))
    db.session.execute(update(Referral).where(Referral.id == a3.id)
                       .values(state="decided", outcome="advice_only"))
    db.session.commit()
    assert audit_clocks.mismatched_facts() == []
    records = {r.referral_id: r for r in db.session.scalars(select(AuditFact))}
    assert records[a3.id].outcome == "advice_only" and records[a3.id].state == "decided"


@pytest.mark.postgres
@postgres_only
def test_an_edited_or_missing_facts_row_is_named(on_postgres, audit_set, app):
    a1, a4 = audit_set["A1"], audit_set["A4"]
    db.session.execute(text("UPDATE audit_facts SET clocks = set_byte(clocks, 19, "
                            "get_byte(clocks, 19) # 1) WHERE referral_id = :id"), {"id": a1.id})
    db.session.execute(text("DELETE FROM audit_facts WHERE referral_id = :id"), {"id": a4.id})
    db.session.commit()
    assert audit_clocks.mismatched_facts() == [a1.id, a4.id]
    verify = app.test_cli_runner().invoke(args=["audit", "verify"])
    assert verify.exit_code == 1
    assert f"audit facts of referral {a1.id} differ from the referral" in verify.output
    assert f"audit facts of referral {a4.id} differ" in verify.output


@pytest.mark.postgres
@postgres_only
def test_postgres_facts_and_python_records_give_the_same_dashboard_to_the_microsecond(
        on_postgres, make_referral):
    for n in range(7):
        created = at("2026-03-28T22:00") + timedelta(hours=7 * n, microseconds=123457 * n)
        referral = make_referral(created, page=1, ack=3 + n, decision=11 + 2 * n,
                                 outcome="transfer", door_in=-25, departed=9 + n,
                                 onset=-70, image=[4])
        db.session.execute(update(Referral).where(Referral.id == referral.id).values(
            acknowledged_at=referral.acknowledged_at + timedelta(microseconds=987 * n)))
    db.session.commit()
    from_facts = audit_clocks.from_facts([])
    from_python = audit_clocks.from_referrals([])
    assert sorted(from_facts.tobytes()[i:i + 72] for i in range(0, 7 * 72, 72)) == \
        sorted(from_python.tobytes()[i:i + 72] for i in range(0, 7 * 72, 72))
    assert audit_stats.dashboard(audit_stats.Filters()) == \
        audit_stats._dashboard(from_python, dict(db.session.execute(
            select(Hospital.id, Hospital.code)).all()))


def test_months_are_london_months_so_a_late_spring_evening_in_utc_is_next_month(
        make_referral):
    make_referral(at("2026-03-31T23:30"), page=1, ack=5)  # 00:30 on 1 April, BST
    make_referral(at("2026-03-29T00:30"), page=1, ack=7)  # 00:30 on 29 March, GMT
    board = audit_stats.dashboard(audit_stats.Filters())
    assert [(g.key, g.referrals, g.median_acknowledge) for g in board.by_month] == [
        ("2026-03", 1, 7), ("2026-04", 1, 5)]


@pytest.mark.postgres
def test_the_migrated_trigger_is_the_one_the_models_create(postgres_server, tmp_path):
    """The migration keeps its own copy of the trigger SQL (a migration must not change
    when the model does): the database migrations build must run the same functions
    and trigger as the one ``create_all`` builds from models/audit_facts.py."""
    from flask_migrate import upgrade

    from tests.conftest import make_app

    definitions = text(
        "SELECT p.proname, pg_get_functiondef(p.oid) FROM pg_proc p "
        "JOIN pg_namespace n ON n.oid = p.pronamespace "
        "WHERE n.nspname = 'public' AND p.proname IN ('audit_clocks', 'keep_audit_facts') "
        "UNION ALL SELECT tgname, pg_get_triggerdef(oid) FROM pg_trigger "
        "WHERE tgname = 'referrals_keep_audit_facts' ORDER BY 1")
    built = {}
    for how in ("migrated", "created"):
        app = make_app(postgres_server.create_database(f"gh_facts_{how}"), tmp_path / how)
        with app.app_context():
            upgrade() if how == "migrated" else db.create_all()
            built[how] = db.session.execute(definitions).all()
            db.session.remove()
            db.engine.dispose()
    assert [name for name, _ in built["created"]] == [
        "audit_clocks", "keep_audit_facts", "referrals_keep_audit_facts"]
    assert built["migrated"] == built["created"]
