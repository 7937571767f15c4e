"""The schema is made by migrations; they must produce exactly what the models say."""

from datetime import UTC, datetime

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from flask_migrate import downgrade, upgrade

from tests.conftest import make_app


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def empty_database_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'migrated.sqlite3'}"
    return request.getfixturevalue("postgres_server").create_database("gh_migrate")


def _diff(db):
    with db.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        return compare_metadata(context, db.metadata)


def test_migrations_produce_exactly_the_models_schema(empty_database_url, tmp_path):
    from extensions import db

    app = make_app(empty_database_url, tmp_path)
    with app.app_context():
        upgrade()
        assert _diff(db) == []
        db.engine.dispose()


def test_migrations_downgrade_to_nothing_and_up_again(empty_database_url, tmp_path):
    from sqlalchemy import inspect

    from extensions import db

    app = make_app(empty_database_url, tmp_path)
    with app.app_context():
        upgrade()
        downgrade(revision="base")
        assert set(inspect(db.engine).get_table_names()) <= {"alembic_version"}
        upgrade()
        assert _diff(db) == []
        db.engine.dispose()


@pytest.mark.clock
def test_the_taken_at_migration_reads_each_linked_study_as_the_audit_does(
        empty_database_url, tmp_path):
    """Studies linked before linked_studies.taken_at existed get the time the
    door-in-door-out chart would read from their StudyDate and StudyTime."""
    import sqlalchemy as sa

    from extensions import db
    from models import LinkedStudy
    from tests.paging.helpers import raise_stroke
    from workflow.audit import dido
    from workflow.seed import seed_demo

    app = make_app(empty_database_url, tmp_path)
    with app.app_context():
        upgrade(revision="d2a4c6e8f0b3")
        seed_demo()
        referral = raise_stroke()
        old = sa.table("linked_studies", *(sa.column(c) for c in (
            "referral_id", "hospital_id", "study_uid", "description", "study_date",
            "modalities", "series_count", "instance_count", "linked_at")),
            sa.column("snapshot", sa.JSON))
        studies = [("20261025", {"study_time": "013000"}), ("20260701", {"study_time": "0930.5"}),
                   ("2026XX01", {"study_time": "0930"}), ("", {"study_time": "0930"}),
                   ("20261129", {})]
        db.session.execute(old.insert(), [
            {"referral_id": referral.id, "hospital_id": referral.referring_hospital_id,
             "study_uid": f"1.2.3.{n}", "description": "", "study_date": day, "modalities": "CT",
             "series_count": 1, "instance_count": 1, "linked_at": referral.created_at,
             "snapshot": snapshot} for n, (day, snapshot) in enumerate(studies)])
        db.session.commit()
        db.session.remove()
        upgrade()
        found = db.session.scalars(sa.select(LinkedStudy.taken_at)
                                   .order_by(LinkedStudy.study_uid)).all()
        expected = [dido.study_time(day, snapshot.get("study_time", ""))
                    for day, snapshot in studies]
        assert found == expected
        assert expected[0] == datetime(2026, 10, 25, 0, 30, tzinfo=UTC)
        assert expected[2:4] == [None, None]
        db.session.remove()
        db.engine.dispose()
