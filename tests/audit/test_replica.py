"""DATABASE_REPLICA_URL: the audit dashboard and the exports read from the replica (here
the suite's database through sessions with default_transaction_read_only=on, as a hot
standby refuses writes), while their access-log rows are written to the primary."""

from __future__ import annotations

import csv
import io

import pytest
from sqlalchemy import event, select, text
from sqlalchemy.exc import DBAPIError

from config import ConfigError, load_config
from extensions import REPLICA, db
from models import AccessLog

pytestmark = pytest.mark.postgres
AUDIT = "audit@em.demo.nhs.uk"
DEMO_PASSWORD = "goldenhour-demo"
READ_ONLY = "?options=-c%20default_transaction_read_only%3Don"


@pytest.fixture
def database_url(request):
    """PostgreSQL only: SQLite has no replicas."""
    return request.getfixturevalue("_postgres_schema_url")


@pytest.fixture
def app_config(database_url):
    config = load_config({"DATABASE_URL": database_url,
                          "DATABASE_REPLICA_URL": database_url + READ_ONLY})
    return {"SQLALCHEMY_BINDS": config["SQLALCHEMY_BINDS"]}


@pytest.fixture(autouse=True)
def _close_the_replica(app):
    yield
    db.session.remove()
    db.engines[REPLICA].dispose()  # the app fixture disposes the primary only


@pytest.fixture
def statements(app):
    """The SQL each engine ran, from the moment the test starts watching."""
    seen = {"primary": [], "replica": []}
    engines = {"primary": db.engine, "replica": db.engines[REPLICA]}
    for name, engine in engines.items():
        event.listen(engine, "before_cursor_execute",
                     lambda *args, name=name: seen[name].append(args[2]))
    return seen


@pytest.fixture
def audit_client(client, network):
    client.login(AUDIT, DEMO_PASSWORD)
    return client


def _logged(action: str) -> list[AccessLog]:
    db.session.rollback()
    return list(db.session.scalars(select(AccessLog).where(AccessLog.action == action,
                                                           AccessLog.email == AUDIT)))


def test_the_replica_refuses_writes(app):
    with pytest.raises(DBAPIError, match="read-only transaction"):
        with db.engines[REPLICA].begin() as conn:
            conn.execute(text("CREATE TABLE replica_probe (id integer)"))


def test_the_dashboard_reads_from_the_replica_and_logs_the_view_on_the_primary(
        audit_set, audit_client, statements):
    response = audit_client.get("/audit/?date_from=2026-01-01&date_to=2026-03-31")
    assert response.status_code == 200, response.get_data(as_text=True)[:500]
    assert "A1" in response.get_data(as_text=True)
    assert any("audit_facts" in s for s in statements["replica"])
    assert any("FROM referrals" in s for s in statements["replica"])  # the referral list
    assert not any("audit_facts" in s or "FROM referrals" in s for s in statements["primary"])
    assert any(s.startswith("INSERT INTO access_log") for s in statements["primary"])
    assert len(_logged("audit.view")) == 1


@pytest.mark.parametrize("path, reads", [("/audit/export/referrals.csv", "FROM referrals"),
                                         ("/audit/export/access-log.csv", "FROM access_log")])
def test_the_exports_stream_from_the_replica(audit_set, audit_client, statements, path,
                                             reads):
    response = audit_client.get(path, buffered=True)
    assert response.status_code == 200
    exported = list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))
    assert exported
    assert any(reads in s and s.lstrip().startswith("SELECT") for s in statements["replica"])
    assert not any(reads in s and "ORDER BY" in s and "LIMIT" not in s
                   for s in statements["primary"])
    assert len(_logged("audit.export")) == 1


def test_without_a_replica_the_audit_pages_read_the_primary(tmp_path):
    assert load_config({}, instance_path=tmp_path)["SQLALCHEMY_BINDS"] == {}


@pytest.mark.parametrize("url, message", [
    ("sqlite:////tmp/goldenhour.sqlite3", "must be a PostgreSQL replica"),
    ("mysql://db/goldenhour", "DATABASE_REPLICA_URL uses 'mysql'"),
])
def test_a_replica_url_that_is_not_postgresql_stops_start_up(tmp_path, url, message):
    with pytest.raises(ConfigError, match=message):
        load_config({"DATABASE_REPLICA_URL": url}, instance_path=tmp_path)
