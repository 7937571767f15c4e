"""`flask seed-demo`: the demo network, its people and a week of rota, idempotently."""

import re
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from sqlalchemy import func, select

from extensions import db
from models import Hospital, HubService, Role, TravelTime, Trust, User
from workflow.paging import rota
from workflow.seed import DEMO_PASSWORD
from workflow.times import now

# A Tuesday in BST: the next 7 days cross the clocks going back on Sunday 25 October.
TUESDAY_BEFORE_CLOCK_CHANGE = datetime(2026, 10, 20, 21, 30, tzinfo=UTC)


def _seed(runner):
    db.session.commit()  # the command's own session must not wait on ours (SQLite lock)
    result = runner.invoke(args=["seed-demo"])
    assert result.exit_code == 0, result.output
    db.session.expire_all()
    return result.output


def _counts() -> dict[str, int]:
    return {t.name: db.session.scalar(select(func.count()).select_from(t))
            for t in db.metadata.sorted_tables}


def _minutes(a: Hospital, b: Hospital) -> int | None:
    return db.session.scalar(select(TravelTime.minutes).where(
        TravelTime.from_hospital_id == a.id, TravelTime.to_hospital_id == b.id))


def test_the_demo_network_has_trusts_hospitals_and_hubs_at_qmc(runner):
    _seed(runner)
    assert db.session.scalar(select(func.count(Trust.id))) >= 5
    assert db.session.scalar(select(func.count(Hospital.id))) >= 8
    qmc = db.session.scalar(select(Hospital).where(Hospital.code == "QMC"))
    assert {"stroke", "major_trauma"} <= set(qmc.hub_specialty_codes)


def test_referring_hospitals_are_40_to_100_minutes_from_qmc_both_ways(runner):
    _seed(runner)
    qmc = db.session.scalar(select(Hospital).where(Hospital.code == "QMC"))
    referring = {u.hospital for u in db.session.scalars(select(User))
                 if u.has_role(Role.REFERRER)}
    assert len(referring) >= 3
    for hospital in referring:
        there, back = _minutes(hospital, qmc), _minutes(qmc, hospital)
        assert there is not None and back is not None, hospital.code
        assert 40 <= there <= 100 and 40 <= back <= 100, (hospital.code, there, back)


def test_every_hospital_has_a_travel_time_to_and_from_each_hub(runner):
    _seed(runner)
    hubs = {s.hospital for s in db.session.scalars(select(HubService))}
    for hub in hubs:
        for other in db.session.scalars(select(Hospital).where(Hospital.id != hub.id)):
            assert _minutes(other, hub) and _minutes(hub, other), (other.code, hub.code)


def test_there_are_demo_users_for_every_role_and_every_hub_specialty(runner):
    _seed(runner)
    users = db.session.scalars(select(User)).all()
    for role in Role:
        assert any(u.has_role(role) for u in users), role
    services = db.session.scalars(select(HubService)).all()
    assert {s.specialty.code for s in services} == {
        "stroke", "major_trauma", "spinal", "vascular", "neurosurgery"}
    for service in services:
        staff = [u for u in users if u.has_role(Role.SPECIALIST)
                 and service.specialty.code in u.specialty_codes
                 and u.hospital_id == service.hospital_id]
        assert len(staff) >= 2, service.name


def _assert_rota_covers_the_next_week():
    start = now().replace(minute=0, second=0, microsecond=0)
    services = db.session.scalars(select(HubService)).all()
    assert len(services) >= 2
    for service in services:
        for tier in (1, 2):
            for hour in range(7 * 24 + 1):
                at = start + timedelta(hours=hour)
                assert rota.on_call(service, tier, at), (service.name, tier, at.isoformat())


def test_someone_is_on_call_at_every_hour_of_the_next_week(runner):
    _seed(runner)
    _assert_rota_covers_the_next_week()


# Each hour on one database (the rota's arithmetic does not depend on it); both are used.
@pytest.mark.parametrize("database_url,hour", [
    ("sqlite", 0), pytest.param("postgres", 9, marks=pytest.mark.postgres), ("sqlite", 21),
], indirect=["database_url"])
def test_the_week_is_covered_whatever_the_time_of_day_the_seed_runs(runner, hour):
    with time_machine.travel(TUESDAY_BEFORE_CLOCK_CHANGE.replace(hour=hour), tick=False):
        _seed(runner)
        _assert_rota_covers_the_next_week()


def test_running_the_seed_twice_changes_nothing(runner):
    _seed(runner)
    first = _counts()
    assert first["users"] > 10 and first["rota_shifts"] > 100
    _seed(runner)
    assert _counts() == first


def test_the_printed_demo_logins_sign_in(app, runner):
    output = _seed(runner)
    assert f"password for all: {DEMO_PASSWORD}" in output
    emails = re.findall(r"^\s+(\S+@\S+)\s", output, re.M)
    assert len(emails) >= 10
    assert set(emails) == set(db.session.scalars(select(User.email)))
    for email in emails:
        client = app.test_client()
        assert client.login(email, DEMO_PASSWORD).status_code == 302, email
        assert client.get("/").status_code == 200, email
