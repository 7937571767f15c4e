"""kill -9 a gunicorn worker in the middle of a request that has written rows but not
committed them: gunicorn starts another worker, nothing of the request is stored, and
the client's retry raises the referral once."""

from __future__ import annotations

import os
import signal
import threading

import psycopg
import pytest
import requests
from sqlalchemy import func, select

from extensions import db
from models import Page, Referral, ReferralEvent
from tests.faults.conftest import FAULT_MARKS, REFERRER, backends, poll
from tests.paging.helpers import stroke_payload
from workflow.audit import integrity

pytestmark = [*FAULT_MARKS, pytest.mark.prism]


def _count(model, **where) -> int:
    db.session.rollback()
    query = select(func.count()).select_from(model)
    for name, value in where.items():
        query = query.where(getattr(model, name) == value)
    return db.session.scalar(query)


def test_a_worker_killed_mid_request_stores_nothing_and_the_retry_raises_it_once(stack):
    stack.start_web(workers=2)
    headers = stack.token(REFERRER)
    payload = stroke_payload(question="Thrombectomy? (killed worker)")
    before = stack.worker_pids()
    answers: list = []

    # The raise writes the referral and its events, then its first escalation page:
    # a SHARE lock on pages holds that INSERT (and so the request) mid-transaction.
    with psycopg.connect(stack.url) as blocker:
        blocker.execute("LOCK TABLE pages IN SHARE MODE")

        def send() -> None:
            try:
                answers.append(requests.post(f"{stack.base}/api/v1/referrals", json=payload,
                                             headers=headers, timeout=30))
            except requests.RequestException as exc:
                answers.append(exc)

        thread = threading.Thread(target=send)
        thread.start()
        [(backend, name, _, _)] = poll(
            lambda: [b for b in backends(stack.url, "gh-web-%") if b[2] == "Lock"], 20,
            "the raise waiting on the pages lock")
        worker = int(name.removeprefix("gh-web-"))
        assert worker in before
        os.kill(worker, signal.SIGKILL)
        thread.join(timeout=30)
        blocker.rollback()  # the lock goes; a write that survived would now commit
    [answer] = answers
    assert isinstance(answer, requests.ConnectionError), answer  # no 2xx was given

    # (the killed worker stays a child, as a zombie, until gunicorn reaps it)
    respawned = poll(lambda: (pids := stack.worker_pids()) and worker not in pids
                     and len(pids) == 2 and pids, 20, "gunicorn started a new worker")
    assert len(respawned - before) == 1
    poll(lambda: not [b for b in backends(stack.url, "gh-web-%") if b[0] == backend], 10,
         "the killed worker's backend gone")
    question = Referral.question == payload["question"]
    db.session.rollback()
    assert db.session.scalar(select(func.count(Referral.id)).where(question)) == 0
    assert (_count(Referral), _count(ReferralEvent), _count(Page)) == (0, 0, 0)

    retry = requests.post(f"{stack.base}/api/v1/referrals", json=payload, headers=headers,
                          timeout=30)
    assert retry.status_code == 201, retry.text
    referral_id = retry.json()["id"]
    assert _count(Referral) == 1
    assert _count(ReferralEvent, referral_id=referral_id, kind="raise") == 1
    assert _count(Page, referral_id=referral_id) >= 1
    again = requests.get(f"{stack.base}/api/v1/referrals/{referral_id}", headers=headers,
                         timeout=10)
    assert again.status_code == 200 and again.json()["state"] == "submitted"
    assert integrity.verify_all().ok, integrity.verify_all()
    assert "Traceback" not in stack.logs()
