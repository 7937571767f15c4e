"""Scheduler leadership on SQLite (the lease row) and the fence on the claim step.
The PostgreSQL takeover after kill -9 is in test_takeover.py."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from sqlalchemy import select

from extensions import db
from models import Page, SchedulerLeader
from tests.paging.helpers import pages, raise_stroke, run_sweep
from workflow.paging import leadership
from workflow.seed import DEMO_PASSWORD


@pytest.fixture
def two_processes(app):
    first, second = leadership.Leadership(app), leadership.Leadership(app)
    second.pid = first.pid + 1  # another process on this host
    yield first, second
    leadership.fence_with(None)
    first.lose(stopping=True)
    second.lose(stopping=True)


def _take(lead: leadership.Leadership) -> bool:
    db.session.rollback()  # SQLite: the test's own transaction would hold the write lock
    return lead._try_take()


def _take_soon(lead: leadership.Leadership) -> bool:
    """Try for up to 3 s: the server frees a lock as the old backend exits, not at once."""
    deadline = time.monotonic() + 3
    while not _take(lead) and time.monotonic() < deadline:
        time.sleep(0.05)
    return lead.leading.is_set()


def _stall(lead: leadership.Leadership, clock) -> None:
    """The leader stops renewing but still believes it leads: on PostgreSQL its lock
    connection is gone; on SQLite its lease runs out."""
    if db.engine.dialect.name == "postgresql":
        lead._drop_connection()
    else:
        clock.shift(timedelta(seconds=4))


@pytest.mark.postgres
@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)  # SQLite: the lease
def test_on_postgresql_the_lock_is_held_while_its_connection_lives(two_processes):
    first, second = two_processes
    assert _take(first) and not _take(second) and not _take(second)
    first.lose()  # what kill -9 does to its connection
    assert _take_soon(second) and second.epoch == 2


@pytest.mark.clock(tick=False)
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # PostgreSQL: the lock
def test_a_standby_waits_while_the_lease_is_renewed_and_takes_it_once_it_expires(
        two_processes, clock):
    first, second = two_processes
    assert _take(first) and first.epoch == 1
    assert not _take(second)
    clock.shift(timedelta(seconds=2))
    assert first._renew(leadership.utcnow())
    clock.shift(timedelta(seconds=2))
    assert not _take(second)  # renewed 2 s ago: the lease runs 3 s
    clock.shift(timedelta(seconds=2))
    assert _take(second) and second.epoch == 2
    row = db.session.scalar(select(SchedulerLeader))
    assert (row.pid, row.epoch, row.since) == (second.pid, 2, leadership.utcnow())
    db.session.rollback()
    assert not first._renew(leadership.utcnow())  # the old leader learns it lost


@pytest.mark.clock(tick=False)
def test_a_process_that_lost_the_lead_claims_and_sends_nothing(network, two_processes, clock):
    first, second = two_processes
    assert _take(first)
    leadership.fence_with(first)
    _stall(first, clock)
    assert _take_soon(second)
    referral = raise_stroke()
    result = run_sweep()
    assert (result.claimed, result.sent) == (0, 0)
    assert {p.status for p in pages(referral.id)} == {"due"}
    leadership.fence_with(second)
    assert run_sweep().claimed >= 1


def test_a_process_that_never_asked_to_lead_is_not_fenced(network):
    referral = raise_stroke()
    assert run_sweep().claimed >= 1
    assert db.session.scalar(select(Page.status).where(Page.referral_id == referral.id,
                                                       Page.step == 0)) == "claimed"


def test_the_status_page_and_ready_name_the_leader(network, two_processes):
    first, _ = two_processes
    assert _take(first)
    admin = network.test_client()
    assert admin.login("admin@em.demo.nhs.uk", DEMO_PASSWORD).status_code == 302
    page = admin.get("/admin/status").get_data(as_text=True)
    assert f"<code>{leadership.HOST}</code> pid {first.pid}, leading since" in page
    leader = admin.get("/ready").json["scheduler_leader"]
    assert (leader["host"], leader["pid"], leader["epoch"]) == (leadership.HOST, first.pid, 1)
