"""The in-process scheduler: woken at once by a new referral, and at an escalation
step's deadline, not on its next tick (the tick here is a minute away)."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest
from sqlalchemy import select

from extensions import db
from models import Page
from tests.paging.helpers import raise_stroke
from workflow import scheduler
from workflow.times import now as utcnow

TICK = 60  # seconds; anything the tests see sooner was a wake-up, not the tick


@pytest.fixture
def app_config():
    return {"SWEEP_INTERVAL_SECONDS": TICK}


@pytest.fixture
def running(network):
    scheduler.start_in_process(network)
    time.sleep(0.5)  # its first run (at start) is over
    yield
    scheduler.stop_in_process()


def claimed_at(page_id: int, within: float) -> float:
    """Seconds until ``page_id`` is claimed (AssertionError after ``within``)."""
    start = time.monotonic()
    while time.monotonic() - start < within:
        status = db.session.scalar(select(Page.status).where(Page.id == page_id))
        db.session.rollback()  # never sleep inside a transaction: on SQLite it holds the lock
        if status == "claimed":
            return time.monotonic() - start
        time.sleep(0.05)
    raise AssertionError(f"page {page_id} not claimed within {within} s")


def test_a_new_referral_wakes_the_sweep(running):
    referral = raise_stroke()
    page_id = db.session.scalar(select(Page.id).where(Page.referral_id == referral.id))
    claimed_at(page_id, within=TICK / 3)


def test_a_step_falling_due_wakes_the_sweep_at_its_deadline(running):
    referral = raise_stroke()
    first = db.session.scalar(select(Page.id).where(Page.referral_id == referral.id))
    claimed_at(first, within=TICK / 3)
    # Step 2 waits 5 minutes; bring it to 3 s from now, then let the sweep look once
    # (as it does after any commit) so that it knows the new deadline.
    due = utcnow() + timedelta(seconds=3)
    second = db.session.scalar(select(Page).where(Page.referral_id == referral.id,
                                                  Page.step == 1))
    second.due_at = due
    db.session.commit()
    scheduler.wake()
    waited = claimed_at(second.id, within=TICK / 3)
    late = (db.session.get(Page, second.id).claimed_at - due).total_seconds()
    db.session.rollback()
    assert -0.01 <= late < 2.0, late  # on its deadline, not on the tick
    assert waited < TICK / 3


def test_a_wake_up_while_the_sweep_is_finishing_is_not_lost(network, monkeypatch):
    """The sweep has taken its last look and is on its way out when a step is brought
    due and the sweep woken: APScheduler drops that wake-up (the job is still running),
    so the scheduler tries again instead of leaving the step to the next tick."""
    finishing, release = threading.Event(), threading.Event()
    arm_timer = scheduler._run_again_at

    def held_on_the_way_out(sched, due):
        if not release.is_set():
            finishing.set()
            release.wait(10)
        arm_timer(sched, due)

    monkeypatch.setattr(scheduler, "_run_again_at", held_on_the_way_out)
    db.session.commit()  # on SQLite an open transaction here would hold the sweep up
    scheduler.start_in_process(network)
    try:
        assert finishing.wait(10), "the first sweep never finished"
        referral = raise_stroke()
        page_id = db.session.scalar(select(Page.id).where(Page.referral_id == referral.id))
        scheduler.wake()  # the sweep is still running: APScheduler skips this run
        time.sleep(0.3)
        release.set()
        claimed_at(page_id, within=TICK / 3)
    finally:
        release.set()
        scheduler.stop_in_process()
