"""The schema is made by migrations; they must produce exactly what the models say."""

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
