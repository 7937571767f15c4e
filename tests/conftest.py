"""Fixtures: an app on a real, throw-away database (SQLite and PostgreSQL), clients
that carry the CSRF token like a browser does, and factories for people."""

from __future__ import annotations

import contextvars
import os
import re

import pytest
from flask import has_app_context
from flask.testing import FlaskClient
from hypothesis import settings as hypothesis_settings
from sqlalchemy import text

from tests.clock import SUITE_NIGHT

pytest_plugins = [
    "tests.services.postgres",
    "tests.services.prism",
    "tests.services.smtp",
    "tests.services.push",
    "tests.services.orthanc",
    "tests.services.oidc",
]

TEST_PASSWORD = "correct horse battery"



def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "clock(at=SUITE_NIGHT, tick=False): freeze time at `at` before any other fixture "
        "runs, so every seed (people, rota, policies, tokens) reads the test's own clock")


@pytest.fixture(autouse=True)
def clock(request):
    """The test's clock: a time_machine traveller, or None on the wall clock.

    With `@pytest.mark.clock(at, tick=False)` time moves to ``at`` (default
    SUITE_NIGHT) before any other fixture of the test runs: autouse fixtures run
    first, so `network`, `make_user` and every other seed takes its "now" from the
    clock the test then moves with `clock.shift()` or `clock.move_to()`. A test that
    moves time by hand after seeding would depend on the day the suite runs; the
    date-shifted run (`make test-dates`) catches that.
    """
    marker = request.node.get_closest_marker("clock")
    if marker is None:
        return None
    at = marker.kwargs.get("at", marker.args[0] if marker.args else SUITE_NIGHT)
    traveller = request.getfixturevalue("time_machine")
    traveller.move_to(at, tick=marker.kwargs.get("tick", False))
    return traveller

# Property tests (the workflow state machine, schemathesis) explore new random cases on
# every developer run; CI replays a fixed set, so a landing never hangs on a draw. A
# case a developer's run finds is a bug to fix, then it stays green in CI too.
hypothesis_settings.register_profile("ci", derandomize=True)
if os.environ.get("CI") == "true":
    hypothesis_settings.load_profile("ci")


class BrowserClient(FlaskClient):
    """A test client that sends the CSRF token with form and JSON posts, as a page would.

    `post(..., csrf=False)` sends nothing, to prove a forged post is refused.

    Each request runs in a fresh context, as it would in a server: it gets its own
    app context, `g` and database session, not the test's. The test's own session
    ends its transaction first (a SQLite write lock held by the test would otherwise
    block the request) and sees fresh rows afterwards.
    """

    csrf_token: str | None = None

    def open(self, *args, csrf: bool = True, **kwargs):
        method = (kwargs.get("method") or "GET").upper()
        if csrf and method not in {"GET", "HEAD", "OPTIONS"}:
            token = self.fetch_csrf_token()
            headers = dict(kwargs.pop("headers", None) or {})
            headers.setdefault("X-CSRFToken", token)
            kwargs["headers"] = headers
        if has_app_context():
            from extensions import db

            db.session.commit()
        return contextvars.Context().run(super().open, *args, **kwargs)

    def fetch_csrf_token(self) -> str:
        if self.csrf_token is None:
            page = self.open("/login", method="GET").get_data(as_text=True)
            match = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page) or \
                re.search(r'name="csrf_token" value="([^"]+)"', page)
            assert match, "no CSRF token on the sign-in page"
            self.csrf_token = match.group(1)
        return self.csrf_token

    def login(self, email: str, password: str = TEST_PASSWORD):
        self.csrf_token = None
        response = self.post("/login", data={"email": email, "password": password})
        self.csrf_token = None  # the session was renewed: take a new token
        return response

    def logout(self):
        return self.post("/logout")


def stamp_migrations_head() -> None:
    """The tests make the schema with create_all: stamp it as `flask db upgrade` would
    (for /ready, which compares alembic_version with the migrations' head)."""
    from extensions import db
    from workflow.readiness import migrations_head

    db.session.execute(text("CREATE TABLE IF NOT EXISTS alembic_version "
                            "(version_num VARCHAR(32) NOT NULL)"))
    db.session.execute(text("DELETE FROM alembic_version"))
    db.session.execute(text("INSERT INTO alembic_version VALUES (:v)"),
                       {"v": migrations_head()})
    db.session.commit()


def _truncate_all(db) -> None:
    tables = ", ".join(f'"{t.name}"' for t in reversed(db.metadata.sorted_tables))
    with db.engine.begin() as conn:
        # Whatever the finished test left connected to this worker's database (a browser
        # request or a background job still in a transaction) would deadlock with the
        # TRUNCATE below: it ends here.
        conn.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                          "WHERE datname = current_database() AND pid <> pg_backend_pid()"))
        # The evidence tables refuse TRUNCATE (models/append_only.py); the suite's
        # superuser turns their triggers off for this one transaction.
        conn.execute(text("SET LOCAL session_replication_role = replica"))
        conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
        # stamp_migrations_head's table is not in the models: without this, a later test
        # on this worker's database would find the schema stamped at head
        conn.execute(text("DROP TABLE IF EXISTS alembic_version"))


@pytest.fixture(scope="session")
def _postgres_schema_url(request):
    """One database per worker with the schema created once; tests truncate after use."""
    server = request.getfixturevalue("postgres_server")
    return server.create_database("gh_app")


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'goldenhour.sqlite3'}"
    return request.getfixturevalue("_postgres_schema_url")


def make_app(database_url: str, instance_path, **overrides):
    from app import create_app

    config = {
        "TESTING": True,
        "GOLDENHOUR_ENV": "test",
        "SECRET_KEY": "test-secret-key-that-is-long-enough-0123456789",
        "SQLALCHEMY_DATABASE_URI": database_url,
        "PASSWORD_HASH_METHOD": "pbkdf2:sha256:1000",
        "SCHEDULER_IN_PROCESS": False,
        "PUBLIC_BASE_URL": "http://127.0.0.1:5000",
        # Tests sign in specialists, audit leads and admins by password; a test of
        # two-factor sign-in asks for the requirement through `app_config`.
        "REQUIRE_2FA_ROLES": frozenset(),
    }
    config.update(overrides)
    app = create_app(config)
    app.instance_path = str(instance_path)
    app.test_client_class = BrowserClient
    return app


@pytest.fixture
def app_config() -> dict:
    """Extra settings for the `app` fixture; override it in a test module."""
    return {}


@pytest.fixture
def app(database_url, tmp_path, app_config):
    from extensions import db
    from workflow.imaging.frames import wait_for_prefetch

    app = make_app(database_url, tmp_path, **app_config)
    with app.app_context():
        db.create_all()
        yield app
        # A prefetch still warming images would take a connection after the dispose
        # below and leave it open (a ResourceWarning in some later test). The test's own
        # transaction ends first: on SQLite (every transaction IMMEDIATE) it would hold
        # the write lock, and the prefetch's bookkeeping would wait out the busy timeout.
        db.session.remove()
        wait_for_prefetch()
        db.session.remove()
        if db.engine.dialect.name == "postgresql":
            _truncate_all(db)
        for engine in db.engines.values():  # the primary and a replica, if configured
            engine.dispose()


@pytest.fixture
def client(app) -> BrowserClient:
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


@pytest.fixture
def network(app):
    """The demo network (hospitals, hubs, travel times, users, rota) in the database."""
    from workflow.seed import seed_demo

    seed_demo()
    return app


@pytest.fixture
def make_user(app):
    """Factory: make_user(roles=["referrer"], hospital="PIL", specialties=[...]) -> User."""
    from workflow.accounts.accounts import create_user

    counter = iter(range(1, 10_000))

    def make(roles=("referrer",), hospital=None, specialties=(), email=None, **kw):
        n = next(counter)
        return create_user(
            email=email or f"user{n}@test.nhs.uk", name=kw.pop("name", f"Test User {n}"),
            password=kw.pop("password", TEST_PASSWORD), roles=list(roles),
            hospital_code=hospital, specialties=list(specialties), **kw,
        )

    return make
