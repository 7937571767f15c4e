"""Simultaneous acknowledges: exactly one specialist wins; simultaneous raises on SQLite."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import select

from extensions import db
from models import Referral, User
from tests.workflow.helpers import (
    REFERRER,
    bearer,
    event_kinds,
    stroke_payload,
    user,
)
from workflow.accounts.accounts import create_user
from workflow.referrals import actions as referrals
from workflow.seed import DEMO_PASSWORD


def _stroke_specialists(n: int) -> list[str]:
    """``n`` stroke specialists at QMC: the demo's three plus made-up colleagues."""
    emails = list(db.session.scalars(
        select(User.email).where(User.email.like("stroke.%@qmc.demo.nhs.uk"))))
    for i in range(len(emails), n):
        email = f"stroke.extra{i}@qmc.demo.nhs.uk"
        create_user(email=email, name=f"Stroke Registrar {i}", password=DEMO_PASSWORD,
                    roles=["specialist"], hospital_code="QMC", specialties=["stroke"])
        emails.append(email)
    return emails[:n]


def _at_once(app, requests: list[tuple[str, dict, dict]]) -> list:
    """Send each (path, headers, json) from its own thread, all released together."""
    barrier = threading.Barrier(len(requests))
    responses: list = [None] * len(requests)

    def send(i, path, headers, body):
        client = app.test_client()
        barrier.wait(timeout=30)
        try:
            responses[i] = client.post(path, json=body, headers=headers)
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            responses[i] = exc

    threads = [threading.Thread(target=send, args=(i, *r)) for i, r in enumerate(requests)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads), "a request hung"
    return responses


@pytest.mark.parametrize("racers", [2, 5, 20])
@pytest.mark.clock(tick=True)
def test_only_one_of_many_simultaneous_acknowledges_wins(network, clock, racers):
    referral = referrals.raise_referral(user(REFERRER), stroke_payload())
    referrals.system_event(referral.id, "page_sent")
    rid = referral.id
    specialists = _stroke_specialists(racers)
    tokens = [bearer(email) for email in specialists]
    db.session.commit()

    responses = _at_once(network, [(f"/api/v1/referrals/{rid}/acknowledge", headers, {})
                                   for headers in tokens])

    failures = [r for r in responses if isinstance(r, BaseException)]
    assert not failures, failures
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200] + [409] * (racers - 1), statuses
    db.session.expire_all()
    winner = db.session.get(Referral, rid).assigned_specialist
    assert winner is not None and winner.email in specialists
    for response in responses:
        if response.status_code == 409:
            assert winner.name in response.json["error"], response.json
    assert event_kinds(rid) == ["raise", "page_sent", "acknowledge"]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.clock(tick=True)
def test_many_referrers_raising_at_once_on_sqlite_all_succeed(network, clock):
    headers = bearer(REFERRER)
    db.session.commit()

    responses = _at_once(network, [("/api/v1/referrals", headers,
                                    stroke_payload(separate_referral=True))
                                   for _ in range(10)])

    failures = [r for r in responses if isinstance(r, BaseException)]
    assert not failures, failures
    assert [r.status_code for r in responses] == [201] * 10, [r.json for r in responses]
    assert not any("locked" in r.get_data(as_text=True) for r in responses)
    assert len({r.json["reference"] for r in responses}) == 10
