"""Issue 14: two `flask scheduler run` processes on PostgreSQL; kill -9 the leader and
the standby leads within 5 s, and a page due after the kill reaches Twilio (Prism)
exactly once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter

import pytest
from sqlalchemy import select

from extensions import db
from models import SchedulerLeader
from tests.paging.test_reliability import (
    ROOT,
    SMS_ONLY,
    bring_due,
    delivery_of,
    page_keys,
    pg_app,  # noqa: F401 - the fixture
    raise_in_threads,
    set_policy,
    wait_for,
)
from workflow.times import now as utcnow

pytestmark = [pytest.mark.prism, pytest.mark.postgres]


def _start(app, log_path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "GOLDENHOUR_ENV": "development",
           "DATABASE_URL": app.config["SQLALCHEMY_DATABASE_URI"].replace(
               "postgresql+psycopg://", "postgresql://"),
           "SECRET_KEY": app.config["SECRET_KEY"], "SWEEP_INTERVAL_SECONDS": "1",
           "PUBLIC_BASE_URL": app.config["PUBLIC_BASE_URL"]}
    env.update({k: str(app.config[k]) for k in (
        "TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN", "TWILIO_FROM_NUMBER", "TWILIO_API_BASE",
        "TWILIO_TIMEOUT_SECONDS")})
    with open(log_path, "wb") as log:
        return subprocess.Popen([sys.executable, "-m", "flask", "--app", "app", "scheduler",
                                 "run"], cwd=ROOT, env=env, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)


def _leader_pid() -> int | None:
    db.session.rollback()
    return db.session.scalar(select(SchedulerLeader.pid))


def _sent(twilio) -> Counter:
    keys = page_keys()
    return Counter(keys.get(delivery_of(r)) for r in twilio.sent("Messages"))


def test_killing_the_leader_hands_over_within_5_s_and_the_next_page_goes_once(
        pg_app, twilio, tmp_path):  # noqa: F811 - pg_app is the imported fixture
    set_policy(SMS_ONLY)
    procs = {}
    try:
        for slot in range(2):
            proc = _start(pg_app, tmp_path / f"scheduler-{slot}.log")
            procs[proc.pid] = proc
        wait_for(lambda: _leader_pid() in procs, 30, "a scheduler leads")
        leader = _leader_pid()
        [standby] = set(procs) - {leader}
        [referral_id] = raise_in_threads(pg_app, 1, 1)
        wait_for(lambda: _sent(twilio)[(referral_id, 0, 0)] == 1, 15, "tier 1 paged")

        killed_at = time.monotonic()
        os.killpg(leader, signal.SIGKILL)
        procs.pop(leader).wait(timeout=10)
        assert bring_due(1, utcnow(), referral_id) == 1  # falls due after the kill
        wait_for(lambda: _leader_pid() == standby, 10, "the standby leads")
        took_over = time.monotonic() - killed_at
        wait_for(lambda: _sent(twilio)[(referral_id, 1, 0)] >= 1, 10, "tier 2 paged")
        paged = time.monotonic() - killed_at
        time.sleep(1.5)  # a duplicate would arrive now
        sent = _sent(twilio)
    finally:
        for pid, proc in procs.items():
            os.killpg(pid, signal.SIGKILL)
            proc.wait(timeout=10)
    logs = "".join(p.read_text(errors="replace") for p in sorted(tmp_path.glob("*.log")))
    print(f"\ntakeover: standby led {took_over:.2f} s after kill -9 of the leader; "
          f"the page due after the kill was sent {paged:.2f} s after it")
    assert (sent[(referral_id, 0, 0)], sent[(referral_id, 1, 0)]) == (1, 1), logs[-3000:]
    assert took_over < 5, logs[-3000:]
