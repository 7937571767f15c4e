"""/health is liveness (no database); /ready names each check a load balancer needs."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import event

from extensions import db
from models import Hospital, PacsEndpoint
from tests.conftest import stamp_migrations_head
from workflow import readiness
from workflow.paging.sweep import heartbeat

# The newest migration: each new one moves this (and is proved by the test below).
HEAD = "e3b5d7f9a1c4"  # linked studies taken at


def test_health_answers_without_touching_the_database(client):
    statements = []
    event.listen(db.engine, "before_cursor_execute", lambda *a: statements.append(a[2]))
    response = client.get("/health")
    assert (response.status_code, response.json) == (200, {"status": "ok"})
    assert statements == []


def test_health_answers_a_signed_in_browser_without_touching_the_database(network, client):
    client.login("stroke.night@qmc.demo.nhs.uk", "goldenhour-demo")
    statements = []
    event.listen(db.engine, "before_cursor_execute", lambda *a: statements.append(a[2]))
    response = client.get("/health")
    assert (response.status_code, response.json) == (200, {"status": "ok"})
    assert statements == []


def test_the_migrations_head_is_the_newest_revision():
    assert readiness.migrations_head() == HEAD


def test_ready_is_a_503_naming_the_migrations_when_the_schema_is_not_at_head(client):
    heartbeat("sweep")
    response = client.get("/ready")
    assert response.status_code == 503
    assert response.json["status"] == "not ready"
    assert response.json["checks"]["database"] == "ok"
    assert response.json["checks"]["migrations"] == f"at nothing, head is {HEAD}"


def test_a_schema_behind_the_head_is_not_ready_and_one_from_the_next_release_is(client):
    """Upgrades: `flask db upgrade` runs while the old release serves; its nodes stay
    in the pool on the newer schema (backwards compatible for one release)."""
    from sqlalchemy import text

    heartbeat("sweep")
    stamp_migrations_head()
    db.session.execute(text("UPDATE alembic_version SET version_num = 'e2a7c4b9d1f3'"))
    db.session.commit()
    behind = client.get("/ready")
    assert behind.status_code == 503
    assert behind.json["checks"]["migrations"] == f"at e2a7c4b9d1f3, head is {HEAD}"
    db.session.execute(text("UPDATE alembic_version SET version_num = 'ffff00000001'"))
    db.session.commit()
    ahead = client.get("/ready")
    assert ahead.status_code == 200
    assert ahead.json["checks"]["migrations"] == \
        f"ok (at ffff00000001, newer than this release's head {HEAD})"


def test_ready_is_a_503_until_a_scheduler_sweeps(client):
    stamp_migrations_head()
    response = client.get("/ready")
    assert response.status_code == 503
    assert response.json["checks"]["scheduler"] == "never swept"
    heartbeat("sweep")
    assert client.get("/ready").status_code == 200


@pytest.mark.clock(tick=False)
def test_ready_is_a_503_when_the_last_sweep_is_over_two_minutes_old(client, clock):
    stamp_migrations_head()
    heartbeat("sweep")
    clock.shift(timedelta(seconds=119))
    assert client.get("/ready").status_code == 200
    clock.shift(timedelta(seconds=2))
    response = client.get("/ready")
    assert response.status_code == 503
    assert response.json["checks"]["scheduler"] == "last sweep 121 s ago"


def test_ready_summarises_the_pacs_endpoints_from_what_it_last_saw(client, network):
    stamp_migrations_head()
    heartbeat("sweep")
    hospitals = db.session.scalars(db.select(Hospital).order_by(Hospital.id)).all()[:2]
    db.session.query(PacsEndpoint).delete()
    db.session.add_all([PacsEndpoint(hospital_id=h.id, base_url=f"http://127.0.0.1:9/{h.id}")
                        for h in hospitals])
    db.session.commit()
    failing = db.session.scalars(db.select(PacsEndpoint)).first()
    failing.last_error_at = readiness.utcnow()
    db.session.commit()
    answer = client.get("/ready")
    assert answer.status_code == 200  # a PACS down is reported, never a reason to drain
    assert answer.json["checks"]["pacs"] == {"configured": 2, "failing_at_last_call": 1}
    assert answer.json["scheduler_leader"] is None  # no `flask scheduler run` ever led
