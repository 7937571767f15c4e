import pytest
from sqlalchemy import text

from config import ConfigError, load_config
from tests.conftest import TEST_PASSWORD, make_app


def test_it_defaults_to_a_sqlite_file_under_instance(tmp_path):
    config = load_config({}, tmp_path)
    assert config["SQLALCHEMY_DATABASE_URI"] == f"sqlite:///{tmp_path / 'goldenhour.sqlite3'}"


def test_it_generates_and_keeps_a_development_secret_key(tmp_path):
    first = load_config({}, tmp_path)["SECRET_KEY"]
    assert len(first) >= 32
    assert load_config({}, tmp_path)["SECRET_KEY"] == first
    assert (tmp_path / "secret_key").stat().st_mode & 0o077 == 0


def test_production_refuses_to_start_without_a_secret_key(tmp_path):
    with pytest.raises(ConfigError, match="SECRET_KEY is required"):
        load_config({"GOLDENHOUR_ENV": "production"}, tmp_path)


def test_production_refuses_a_short_secret_key(tmp_path):
    with pytest.raises(ConfigError, match="at least 32"):
        load_config({"GOLDENHOUR_ENV": "production", "SECRET_KEY": "short"}, tmp_path)


@pytest.mark.parametrize(
    "url, message",
    [
        ("not a url", "DATABASE_URL is not a database URL"),
        ("mysql://u@h/db", "goldenhour runs on sqlite or postgresql"),
        ("postgresql://u@127.0.0.1:5432", "names no database"),
        ("postgresql://u@127.0.0.1:fivefour/gh", "DATABASE_URL is not a database URL"),
        ("postgresql://u@[::1/gh", "DATABASE_URL is not a database URL"),
        ("postgresql://u@127.0.0.1:99999/gh", "has the port 99999; a port is 1 to 65535"),
        ("postgresql+asyncpg://u@127.0.0.1/gh", "asks for the driver 'postgresql\\+asyncpg'"),
        ("sqlite://", "names no SQLite file"),
        ("sqlite:///:memory:", "names no SQLite file"),
        ("sqlite:////no/such/folder/gh.sqlite3", "'/no/such/folder', which is not a directory"),
    ],
)
def test_a_malformed_database_url_is_named(tmp_path, url, message):
    with pytest.raises(ConfigError, match=message):
        load_config({"DATABASE_URL": url}, tmp_path)


def test_a_sqlite_file_in_an_existing_folder_is_accepted(tmp_path):
    url = f"sqlite:///{tmp_path / 'gh.sqlite3'}"
    assert load_config({"DATABASE_URL": url}, tmp_path)["SQLALCHEMY_DATABASE_URI"] == url


def test_postgres_urls_use_the_psycopg3_driver(tmp_path):
    config = load_config({"DATABASE_URL": "postgres://gh:pw@127.0.0.1/goldenhour"}, tmp_path)
    assert config["SQLALCHEMY_DATABASE_URI"].startswith("postgresql+psycopg://gh:pw@")


@pytest.mark.parametrize(
    "env, message",
    [
        ({"PUBLIC_BASE_URL": "goldenhour.nhs.uk"}, "PUBLIC_BASE_URL must be an absolute"),
        ({"IDLE_TIMEOUT_MINUTES": "soon"}, "IDLE_TIMEOUT_MINUTES must be a whole number"),
        ({"IDLE_TIMEOUT_MINUTES": "0"}, "at least 1"),
        ({"SCHEDULER_IN_PROCESS": "maybe"}, "SCHEDULER_IN_PROCESS must be true or false"),
        ({"GOLDENHOUR_ENV": "staging"}, "GOLDENHOUR_ENV must be"),
    ],
)
def test_each_bad_setting_is_named(tmp_path, env, message):
    with pytest.raises(ConfigError, match=message):
        load_config(env, tmp_path)


def test_the_session_cookie_is_secure_behind_https(tmp_path):
    config = load_config({"PUBLIC_BASE_URL": "https://gh.example.nhs.uk"}, tmp_path)
    assert config["SESSION_COOKIE_SECURE"] is True
    assert config["SESSION_COOKIE_HTTPONLY"] is True
    assert config["SESSION_COOKIE_SAMESITE"] == "Lax"
    assert load_config({}, tmp_path)["SESSION_COOKIE_SECURE"] is False


def test_create_app_stops_with_the_config_error(monkeypatch):
    from app import create_app

    monkeypatch.setenv("DATABASE_URL", "mysql://nope/db")
    with pytest.raises(ConfigError, match="sqlite or postgresql"):
        create_app()


def test_the_health_check_answers(client):
    response = client.get("/health")
    assert (response.status_code, response.json) == (200, {"status": "ok"})


def _session_cookie_header(app) -> str:
    from extensions import db
    from workflow.accounts.accounts import create_user

    with app.app_context():
        db.create_all()
        create_user(email="cookie@test.nhs.uk", name="C", password=TEST_PASSWORD,
                    roles=["referrer"])
        response = app.test_client().login("cookie@test.nhs.uk")
        db.engine.dispose()
    assert response.status_code == 302
    return next(h for h in response.headers.getlist("Set-Cookie")
                if h.startswith("goldenhour_session="))


def test_the_app_sets_a_secure_session_cookie_when_its_public_url_is_https(tmp_path):
    url = f"sqlite:///{tmp_path / 'gh.sqlite3'}"
    https = make_app(url, tmp_path, PUBLIC_BASE_URL="https://gh.example.nhs.uk")
    assert "; Secure" in _session_cookie_header(https)
    plain = make_app(f"sqlite:///{tmp_path / 'plain.sqlite3'}", tmp_path)
    assert "; Secure" not in _session_cookie_header(plain)


def test_every_sqlite_connection_uses_wal_a_busy_timeout_and_foreign_keys(tmp_path):
    from extensions import db

    app = make_app(f"sqlite:///{tmp_path / 'gh.sqlite3'}", tmp_path)
    with app.app_context():
        for _ in range(2):  # each new connection, not only the first
            with db.engine.connect() as conn:
                assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
                assert conn.execute(text("PRAGMA busy_timeout")).scalar() == 30000
                assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1
            db.engine.dispose()


def test_passwords_are_hashed_with_scrypt_unless_a_test_asks_otherwise(tmp_path):
    from workflow.accounts.accounts import hash_password

    app = make_app(f"sqlite:///{tmp_path / 'gh.sqlite3'}", tmp_path)
    del app.config["PASSWORD_HASH_METHOD"]  # the test suite's fast setting
    with app.app_context():
        stored = hash_password("a long enough password")
    assert stored.startswith("scrypt:") and "a long enough password" not in stored


def test_the_instance_folder_can_be_moved_to_an_absolute_path(tmp_path):
    from config import instance_path

    assert instance_path({}) is None
    assert instance_path({"GOLDENHOUR_INSTANCE_PATH": str(tmp_path)}) == str(tmp_path)
    with pytest.raises(ConfigError, match="GOLDENHOUR_INSTANCE_PATH must be an absolute path"):
        instance_path({"GOLDENHOUR_INSTANCE_PATH": "instance"})
