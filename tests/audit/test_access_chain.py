"""The access log's chain under concurrent writers, and the migration that seals the
rows written before it existed."""

from __future__ import annotations

import threading

import pytest
from flask_migrate import upgrade
from sqlalchemy import select, text

from extensions import db
from models import AccessLog
from tests.clock import SUITE_NIGHT
from tests.conftest import make_app
from workflow import access_log

pytestmark = pytest.mark.clock()
WRITERS, ROWS_EACH = 4, 10


def test_concurrent_writers_make_one_gap_free_chain(app):
    start = threading.Barrier(WRITERS)
    failures: list[BaseException] = []

    def write(writer: int) -> None:
        with app.app_context():
            try:
                start.wait(timeout=30)
                for n in range(ROWS_EACH):
                    # Half commit with the row, half leave it to a later commit, as a
                    # request that logs and then acts does.
                    access_log.record("referral.view", "ok", email=f"w{writer}@test.nhs.uk",
                                      detail=f"{writer}/{n}", commit=n % 2 == 0)
                    if n % 2:
                        db.session.commit()
            except BaseException as error:  # noqa: BLE001 - reported by the test below
                failures.append(error)
            finally:
                db.session.remove()

    threads = [threading.Thread(target=write, args=(w,)) for w in range(WRITERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert failures == []
    seqs = db.session.scalars(select(AccessLog.seq).order_by(AccessLog.seq)).all()
    assert seqs == list(range(1, WRITERS * ROWS_EACH + 1))
    assert access_log.verify() == (WRITERS * ROWS_EACH, [])


def test_a_rolled_back_row_leaves_no_gap(app):
    access_log.record("referral.view", "ok", email="a@test.nhs.uk", commit=False)
    db.session.rollback()
    access_log.record("referral.view", "ok", email="b@test.nhs.uk")
    assert access_log.verify() == (1, [])


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def empty_database_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'migrated.sqlite3'}"
    return request.getfixturevalue("postgres_server").create_database("gh_access_chain")


def test_the_migration_seals_the_rows_already_in_the_log(empty_database_url, tmp_path):
    app = make_app(empty_database_url, tmp_path)
    with app.app_context():
        upgrade(revision="f3b8d5c0e2a4")  # the revision before the chain
        for n in range(3):
            db.session.execute(text(
                "INSERT INTO access_log (at, user_id, email, role, address, action, outcome,"
                " referral_id, detail) VALUES (:at, NULL, :email, '', '10.0.0.1',"
                " 'referral.view', 'ok', :referral, 'café')"),
                {"at": SUITE_NIGHT.replace(tzinfo=None, microsecond=n * 1000),
                 "email": f"old{n}@test.nhs.uk", "referral": n or None})
        db.session.commit()
        upgrade()
        assert access_log.verify() == (3, [])
        access_log.record("login", "ok", email="new@test.nhs.uk")
        assert access_log.verify() == (4, [])
        db.session.remove()
        db.engine.dispose()
