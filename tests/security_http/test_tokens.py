"""API tokens expire (90 days unless configured): an expired one gets a 401 that says
so, and the token listing shows when each expires."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from flask_migrate import upgrade
from sqlalchemy import select, text

from extensions import db
from models import ApiToken
from tests.clock import SUITE_NIGHT
from tests.conftest import make_app
from workflow.accounts.accounts import issue_token

pytestmark = pytest.mark.clock


def _bearer(token):
    return {"Authorization": f"Bearer {token}"}


def test_a_token_works_for_90_days_then_gets_a_401_saying_it_expired(app, make_user, clock,
                                                                     runner):
    make_user(email="bot@test.nhs.uk")
    token = issue_token("bot@test.nhs.uk", "PACS bot")
    row = db.session.scalar(select(ApiToken))
    assert row.expires_at == SUITE_NIGHT + timedelta(days=90)
    api = app.test_client()
    clock.move_to(SUITE_NIGHT + timedelta(days=90) - timedelta(seconds=1))
    assert api.get("/api/v1/referrals", headers=_bearer(token)).status_code == 200
    clock.move_to(SUITE_NIGHT + timedelta(days=90))
    refused = api.get("/api/v1/referrals", headers=_bearer(token))
    assert refused.status_code == 401
    assert refused.json == {"error": "This API token expired on 2027-02-27 03:00 UTC; ask an "
                                     "admin for a new one (flask users token EMAIL)."}
    assert api.get("/", headers=_bearer(token)).status_code == 401  # pages too
    unknown = api.get("/api/v1/referrals", headers=_bearer("gh_unknown"))
    assert unknown.status_code == 401 and "expired" not in unknown.json["error"]
    db.session.commit()
    listing = runner.invoke(args=["users", "tokens", "bot@test.nhs.uk"])
    assert listing.output == ("PACS bot: created 2026-11-29 03:00, expires 2027-02-27 03:00, "
                              "last used 2027-02-27 02:59, expired\n")


@pytest.mark.parametrize("app_config", [{"API_TOKEN_DAYS": 7}])
def test_the_lifetime_is_configurable(app, make_user, tmp_path):
    from config import ConfigError, load_config

    make_user(email="bot@test.nhs.uk")
    issue_token("bot@test.nhs.uk")
    assert db.session.scalar(select(ApiToken.expires_at)) == SUITE_NIGHT + timedelta(days=7)
    assert load_config({}, tmp_path)["API_TOKEN_DAYS"] == 90
    assert load_config({"GOLDENHOUR_API_TOKEN_DAYS": "30"}, tmp_path)["API_TOKEN_DAYS"] == 30
    with pytest.raises(ConfigError, match="GOLDENHOUR_API_TOKEN_DAYS must be at least 1"):
        load_config({"GOLDENHOUR_API_TOKEN_DAYS": "0"}, tmp_path)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def empty_database_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'migrated.sqlite3'}"
    return request.getfixturevalue("postgres_server").create_database("gh_tokens_migrate")


def test_the_migration_gives_existing_tokens_90_days_from_when_they_were_made(
        empty_database_url, tmp_path):
    app = make_app(empty_database_url, tmp_path)
    made = datetime(2026, 10, 1, 12, 30)
    with app.app_context():
        upgrade(revision="19a77ecdab3c")
        with db.engine.begin() as conn:
            conn.execute(text(
                "INSERT INTO users (id, email, name, phone, password_hash, active, "
                "totp_secret, created_at) VALUES (1, 'old@test.nhs.uk', 'Old', '', 'x', "
                "true, '', :made)"), {"made": made})
            conn.execute(text(
                "INSERT INTO api_tokens (user_id, token_hash, label, created_at) "
                "VALUES (1, :hash, 'old', :made)"), {"hash": "a" * 64, "made": made})
        upgrade(revision="b0d1e5cafe02")
        row = db.session.scalar(select(ApiToken))
        assert row.expires_at == made.replace(tzinfo=UTC) + timedelta(days=90)
        db.session.remove()
        db.engine.dispose()
