"""On PostgreSQL the evidence tables refuse UPDATE and DELETE (models/append_only.py),
except the one change the app makes to each after the INSERT; the migration installs
exactly what create_all does, and its downgrade removes it."""

from __future__ import annotations

from pathlib import Path

import pytest
from flask_migrate import downgrade, upgrade
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError

from extensions import db
from models import AccessLog, DecisionRecord, ReferralEvent
from tests.clock import SUITE_NIGHT
from tests.conftest import make_app
from tests.paging.helpers import raise_stroke, user
from tests.workflow.helpers import SIGNED
from workflow import access_log
from workflow.audit import records
from workflow.referrals import actions as referrals
from workflow.referrals.chain import verify_referral
from workflow.seed import seed_demo

SPECIALIST = "stroke.night@qmc.demo.nhs.uk"

pytestmark = [pytest.mark.postgres, pytest.mark.clock(at=SUITE_NIGHT)]
postgres_only = pytest.mark.parametrize("database_url", ["postgres"], indirect=True)

TRIGGERS = """
SELECT c.relname, t.tgname, p.proname FROM pg_trigger t
JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_proc p ON p.oid = t.tgfoid
WHERE NOT t.tgisinternal AND c.relname IN ('referral_events', 'decision_records',
                                           'access_log')
ORDER BY c.relname, t.tgname"""


def refused(sql: str, **params) -> str:
    """The error PostgreSQL gives for ``sql`` (which must fail); the session is reset."""
    with pytest.raises(DBAPIError) as caught:
        db.session.execute(text(sql), params)
        db.session.flush()
    db.session.rollback()
    return str(caught.value.orig)


def decided_and_rendered() -> DecisionRecord:
    referral = raise_stroke()
    referrals.acknowledge(referral.id, user(SPECIALIST))
    referrals.perform("decide", referral.id, user(SPECIALIST), {
        "outcome": "transfer", "destination_hospital": "QMC",
        "rationale": "M1 occlusion on CTA.", **SIGNED})
    assert records.render_pending() == 1  # the one update a record gets, let through
    db.session.expire_all()
    return records.latest(referral.id)


@postgres_only
def test_an_event_cannot_be_updated_or_deleted_and_the_next_one_is_inserted(network):
    referral = raise_stroke()
    first = db.session.scalar(select(ReferralEvent.id)
                              .where(ReferralEvent.referral_id == referral.id))
    assert "referral_events is append-only: UPDATE refused" in refused(
        "UPDATE referral_events SET reason = 'edited' WHERE id = :id", id=first)
    assert "referral_events is append-only: DELETE refused" in refused(
        "DELETE FROM referral_events WHERE id = :id", id=first)
    referrals.acknowledge(referral.id, user(SPECIALIST))
    assert db.session.scalar(select(func.count()).where(
        ReferralEvent.referral_id == referral.id)) == 2
    assert verify_referral(referral.id) is None


@postgres_only
def test_a_stored_record_keeps_its_pdf_and_no_record_changes_what_was_signed(network):
    record = decided_and_rendered()
    assert record.status == "ready" and record.pdf.startswith(b"%PDF")
    assert f"decision_records is append-only: record {record.id} is already ready" in \
        refused("UPDATE decision_records SET pdf = :pdf WHERE id = :id", pdf=b"%PDF forged",
                id=record.id)
    assert "is already ready" in refused(
        "UPDATE decision_records SET status = 'pending' WHERE id = :id", id=record.id)
    assert f"decision_records is append-only: record {record.id} was signed as it is" in \
        refused("UPDATE decision_records SET content_sha256 = :h WHERE id = :id",
                h="0" * 64, id=record.id)
    assert "decision_records is append-only: DELETE refused" in refused(
        "DELETE FROM decision_records WHERE id = :id", id=record.id)
    db.session.expire_all()
    assert records.verify_records() == (1, [])


@postgres_only
def test_a_record_notes_the_first_anchor_that_covered_it_once(network):
    record = decided_and_rendered()
    head = [(record.referral_id, record.event_seq, record.content["event_hash"])]
    assert records.note_anchor(head, "aa" * 32, SUITE_NIGHT) == 1
    assert records.note_anchor(head, "bb" * 32, SUITE_NIGHT) == 0  # the first one stays
    assert f"decision_records is append-only: record {record.id} was anchored already" in \
        refused("UPDATE decision_records SET anchored_root = :r WHERE id = :id",
                r="bb" * 32, id=record.id)
    db.session.expire_all()
    assert db.session.get(DecisionRecord, record.id).anchored_root == "aa" * 32


@postgres_only
def test_a_pending_record_cannot_change_what_was_signed_either(network):
    referral = raise_stroke()
    referrals.acknowledge(referral.id, user(SPECIALIST))
    referrals.perform("decide", referral.id, user(SPECIALIST), {
        "outcome": "advice_only", "advice": "Aspirin.", "rationale": "Small infarct.",
        **SIGNED})
    record = records.latest(referral.id)
    assert record.status == "pending"
    assert "was signed as it is" in refused(
        "UPDATE decision_records SET content = '{}' WHERE id = :id", id=record.id)


@postgres_only
def test_an_access_log_row_is_sealed_once_and_then_never_changes(network):
    row_id = access_log.record("referral.view", "ok", user=user(SPECIALIST),
                               detail="looked").id
    row = db.session.get(AccessLog, row_id)
    assert row.seq is not None  # sealed as it committed: the one update let through
    message = "access_log is append-only: only an unsealed row's seq, prev_hash and hash " \
              "may be set, once"
    assert message in refused("UPDATE access_log SET detail = 'nothing' WHERE id = :id",
                              id=row_id)
    assert message in refused("UPDATE access_log SET hash = :h WHERE id = :id",
                              h="0" * 64, id=row_id)
    assert "access_log is append-only: DELETE refused" in refused(
        "DELETE FROM access_log WHERE id = :id", id=row_id)
    assert access_log.verify()[1] == []


@postgres_only
def test_no_evidence_table_can_be_truncated_and_the_error_names_it(network):
    decided_and_rendered()
    access_log.record("referral.view", "ok", user=user(SPECIALIST), detail="looked")
    for table in ("referral_events", "decision_records", "access_log"):
        assert f"{table} is append-only: TRUNCATE refused" in refused(
            f"TRUNCATE {table} CASCADE")
    counts = [db.session.scalar(select(func.count()).select_from(model))
              for model in (ReferralEvent, DecisionRecord, AccessLog)]
    assert all(count > 0 for count in counts), counts


@postgres_only
def test_an_unsealed_row_may_be_sealed_but_not_rewritten(network):
    db.session.execute(text("INSERT INTO access_log (at, email, role, address, action, "
                            "outcome, detail) VALUES (now(), 'a@b', '', '', 'login', 'ok', "
                            "'x')"))
    db.session.commit()
    row_id = db.session.scalar(select(AccessLog.id).where(AccessLog.seq.is_(None)))
    assert "append-only" in refused(
        "UPDATE access_log SET seq = 99, detail = 'y' WHERE id = :id", id=row_id)
    db.session.execute(text("UPDATE access_log SET seq = 99, prev_hash = :h, hash = :h "
                            "WHERE id = :id"), {"h": "1" * 64, "id": row_id})
    db.session.commit()
    assert "append-only" in refused("UPDATE access_log SET seq = 100 WHERE id = :id",
                                    id=row_id)


def test_the_migration_installs_what_create_all_does_and_its_downgrade_removes_it(
        postgres_server, app, tmp_path):
    if db.engine.dialect.name != "postgresql":
        assert db.session.execute(text("SELECT count(*) FROM sqlite_master "
                                       "WHERE type = 'trigger'")).scalar() == 0
        return
    made = db.session.execute(text(TRIGGERS)).all()
    assert [tuple(row) for row in made] == [
        ("access_log", "access_log_append_only", "refuse_evidence_change"),
        ("access_log", "access_log_no_truncate", "refuse_evidence_change"),
        ("access_log", "access_log_sealed", "keep_access_log_sealed"),
        ("decision_records", "decision_records_append_only", "refuse_evidence_change"),
        ("decision_records", "decision_records_no_truncate", "refuse_evidence_change"),
        ("decision_records", "decision_records_sealed", "keep_decision_record_sealed"),
        ("referral_events", "referral_events_append_only", "refuse_evidence_change"),
        ("referral_events", "referral_events_no_truncate", "refuse_evidence_change"),
    ]
    functions = "SELECT proname, prosrc FROM pg_proc WHERE proname IN " \
                "('refuse_evidence_change', 'keep_access_log_sealed', " \
                "'keep_decision_record_sealed') ORDER BY proname"
    from_models = db.session.execute(text(functions)).all()
    migrated = make_app(postgres_server.create_database("gh_append"), tmp_path / "m")
    with migrated.app_context():
        upgrade()
        assert db.session.execute(text(TRIGGERS)).all() == made
        assert db.session.execute(text(functions)).all() == from_models
        db.session.commit()
        downgrade(revision="c4e6a8b0d2f4")  # before the TRUNCATE guard: only it goes
        assert [tuple(row) for row in db.session.execute(text(TRIGGERS))] == [
            row for row in made if not row[1].endswith("_no_truncate")]
        db.session.commit()
        downgrade(revision="c3d5e7f9a1b2")
        assert db.session.execute(text(TRIGGERS)).all() == []
        assert db.session.execute(text(functions)).all() == []
        db.session.remove()
        db.engine.dispose()


def deploy_grants() -> list[str]:
    """The grants block of docs/DEPLOY.md, **Database roles**, one statement each."""
    deploy = (Path(__file__).parents[2] / "docs" / "DEPLOY.md").read_text(encoding="utf-8")
    section = deploy.split("## Database roles\n", 1)[1].split("\n## ", 1)[0]
    block = section.split("```sql\n", 1)[1].split("```", 1)[0]
    lines = [line for line in block.splitlines() if not line.lstrip().startswith("--")]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]


def make_role(name: str) -> None:
    db.session.execute(text(f"DO $$ BEGIN CREATE ROLE {name} LOGIN; "
                            "EXCEPTION WHEN duplicate_object THEN NULL; END $$"))


@pytest.mark.clock(at=SUITE_NIGHT)
def test_the_roles_of_deploy_md_run_the_app_but_the_app_cannot_rewrite_evidence(
        postgres_server, tmp_path):
    """The owner migrates and grants as DEPLOY.md says; the app, as goldenhour_app, seeds,
    raises, decides, renders the record and logs, but is refused every rewrite."""
    if postgres_server.external_url:
        pytest.skip("makes roles: needs the suite's own cluster, where it is superuser")
    superuser = make_app(postgres_server.url(), tmp_path / "su")
    with superuser.app_context():
        make_role("goldenhour_owner")
        make_role("goldenhour_app")
        db.session.commit()
        url = postgres_server.create_database("gh_roles")
        name = url.rsplit("/", 1)[1]
        db.session.execute(text(f'ALTER DATABASE "{name}" OWNER TO goldenhour_owner'))
        db.session.commit()
        db.engine.dispose()
    owner = make_app(url.replace("//postgres@", "//goldenhour_owner@"), tmp_path / "owner")
    with owner.app_context():
        upgrade()
        for _ in range(2):  # running the grants again changes nothing
            for statement in deploy_grants():
                db.session.execute(text(statement))
            db.session.commit()
        db.engine.dispose()
    app = make_app(url.replace("//postgres@", "//goldenhour_app@"), tmp_path / "app")
    with app.app_context():
        seed_demo()
        record = decided_and_rendered()
        assert record.status == "ready"
        assert access_log.verify()[1] == []
        for sql, words in (
                ("UPDATE referral_events SET reason = 'x'", "permission denied for table "
                                                            "referral_events"),
                ("DELETE FROM referral_events", "permission denied for table referral_events"),
                ("UPDATE decision_records SET content_sha256 = 'x'",
                 "permission denied for table decision_records"),
                ("TRUNCATE access_log", "permission denied for table access_log"),
                ("UPDATE access_log SET detail = 'x'", "permission denied for table access_log"),
                ("ALTER TABLE referral_events DISABLE TRIGGER USER",
                 "must be owner of table referral_events"),
                ("DROP TRIGGER access_log_sealed ON access_log",
                 "must be owner of relation access_log"),
                ("UPDATE alembic_version SET version_num = 'x'",
                 "permission denied for table alembic_version")):
            assert words in refused(sql), sql
        db.session.remove()
        db.engine.dispose()
