"""The leading scheduler loses its database connections (pg_terminate_backend, as a
network cut or a failover would): it stops claiming at once, the standby leads within
5 s, and the page that fell due meanwhile reaches Twilio (Prism) exactly once."""

from __future__ import annotations

import time
from collections import Counter

import psycopg
import pytest
from sqlalchemy import select

from extensions import db
from models import Page, SchedulerLeader
from tests.faults.conftest import FAULT_MARKS, poll
from tests.paging.test_reliability import (
    SMS_ONLY,
    bring_due,
    delivery_of,
    page_keys,
    raise_in_threads,
    set_policy,
    wait_for,
)
from workflow.times import now as utcnow

pytestmark = [*FAULT_MARKS, pytest.mark.prism]


def _leader() -> SchedulerLeader | None:
    db.session.rollback()
    return db.session.scalar(select(SchedulerLeader))


def _sent(twilio) -> Counter:
    keys = page_keys()
    return Counter(keys.get(delivery_of(r)) for r in twilio.sent("Messages"))


def test_a_leader_cut_off_from_the_database_hands_over_and_no_page_is_lost_or_doubled(
        stack, twilio):
    set_policy(SMS_ONLY)
    procs = {stack.start_scheduler(slot).pid: slot for slot in range(2)}
    leader = poll(lambda: (row := _leader()) and row.pid in procs and row, 30,
                  "a scheduler leads")
    old_pid, old_epoch = leader.pid, leader.epoch
    [standby] = set(procs) - {old_pid}
    [referral_id] = raise_in_threads(stack.app, 1, 1)
    wait_for(lambda: _sent(twilio)[(referral_id, 0, 0)] == 1, 15, "tier 1 paged")

    with psycopg.connect(stack.url, autocommit=True) as admin:
        cut = admin.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE application_name = %s", (f"gh-scheduler-{procs[old_pid]}",)).fetchone()[0]
    cut_at = time.monotonic()
    assert cut >= 1  # at least the connection holding the advisory lock
    assert bring_due(1, utcnow(), referral_id) == 1  # falls due during the hand-over
    new = poll(lambda: (row := _leader()) and row.pid == standby and row, 10,
               "the standby leads")
    took_over = time.monotonic() - cut_at
    wait_for(lambda: _sent(twilio)[(referral_id, 1, 0)] >= 1, 10, "tier 2 paged")
    time.sleep(1.5)  # a duplicate would arrive now
    sent = _sent(twilio)
    db.session.rollback()
    late_claims = db.session.scalars(select(Page).where(
        Page.claimed_by.like(f"%:{old_pid}"), Page.claimed_at >= new.since)).all()
    logs = stack.logs()
    print(f"\nconnection cut: the standby led {took_over:.2f} s after the leader's "
          f"{cut} backends were terminated")
    assert new.epoch == old_epoch + 1
    assert (sent[(referral_id, 0, 0)], sent[(referral_id, 1, 0)]) == (1, 1), logs[-3000:]
    assert not late_claims, late_claims  # fenced: nothing claimed after the takeover
    assert took_over < 5, logs[-3000:]
    assert "lost the lead" in logs
    assert all(stack.schedulers[slot].poll() is None for slot in range(2))  # a standby now
