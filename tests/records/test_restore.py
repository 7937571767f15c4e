"""`make restore-test` on the suite's PostgreSQL: a pg_dump of a database with referrals,
events and access-log rows restores into a new cluster where `flask audit verify`
passes and every table holds as many rows; a tampered event is caught after restore."""

from __future__ import annotations

import pytest

from extensions import db
from scripts.restore_test import restore_and_verify
from tests.conftest import make_app
from tests.paging.helpers import raise_stroke, run_sweep, user
from tests.tampering import tamper
from workflow import access_log
from workflow.referrals import actions as referrals
from workflow.seed import seed_demo

pytestmark = [pytest.mark.postgres, pytest.mark.slow]
SPECIALIST = "stroke.night@qmc.demo.nhs.uk"


@pytest.fixture
def source(postgres_server, tmp_path):
    """A database with the demo network, two referrals (one accepted) and their trail."""
    url = postgres_server.create_database("gh_backup")
    app = make_app(url, tmp_path)
    with app.app_context():
        db.create_all()
        seed_demo()
        first, second = raise_stroke(), raise_stroke()
        run_sweep()
        referrals.acknowledge(first.id, user(SPECIALIST))
        access_log.record("referral.view", "ok", user=user(SPECIALIST), referral_id=second.id)
        yield url
        db.session.remove()
        db.engine.dispose()


def test_a_restored_dump_passes_audit_verify_with_every_row(source, tmp_path):
    result = restore_and_verify(source, tmp_path)
    assert result.ok, result.problems
    assert result.verify_output.startswith("OK: 2 referrals")
    assert result.tables["referral_events"][1] >= 4 and result.tables["access_log"][1] >= 1
    assert all(before == after for before, after in result.tables.values())


def test_a_dump_of_a_tampered_chain_fails_the_restore_test(source, tmp_path):
    tamper("UPDATE referral_events SET reason = 'edited' "
           "WHERE id = (SELECT min(id) FROM referral_events)")
    result = restore_and_verify(source, tmp_path)
    assert not result.ok
    assert "TAMPERED" in result.verify_output
    assert any("flask audit verify failed" in p for p in result.problems)
