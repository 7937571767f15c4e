"""Web Push as a paging channel, against the local push service (tests/services/push.py),
which checks our VAPID token and decrypts each push with the browser's own key.

The escalation policy pages tier 1 and tier 2 by push and in-app; the specialist's
browser subscribes through POST /push/subscriptions as the page's script does."""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import urlsplit

import pytest
from sqlalchemy import select

from extensions import db
from models import EscalationPolicy, HubService, PushBrowser, Specialty
from tests.paging.helpers import deliveries, paged_people, raise_stroke, run_sweep
from workflow.seed import DEMO_PASSWORD

NIGHT = "stroke.night@qmc.demo.nhs.uk"
CONSULTANT = "stroke.consultant@qmc.demo.nhs.uk"
PUSH_STEPS = [
    {"who": "tier1", "channels": ["webpush", "in_app"], "wait_minutes": 5, "repeat": 0},
    {"who": "tier2", "channels": ["webpush", "in_app"], "wait_minutes": 5, "repeat": 0},
]

pytestmark = pytest.mark.clock


@pytest.fixture
def app_config(push_server):
    return push_server.app_config()


@pytest.fixture
def paged_by_push(network):
    ids = db.session.scalars(select(HubService.id).join(Specialty)
                             .where(Specialty.code == "stroke")).all()
    db.session.add_all(EscalationPolicy(hub_service_id=i, steps=PUSH_STEPS) for i in ids)
    db.session.commit()


def signed_in(app, email: str):
    client = app.test_client()
    client.login(email, DEMO_PASSWORD)
    return client


def subscribe(app, email: str, browser) -> None:
    response = signed_in(app, email).post("/push/subscriptions", json=browser.subscription())
    assert response.status_code == 201, response.get_data(as_text=True)


def push_deliveries(referral_id: int):
    return [d for d in deliveries(referral_id) if d.channel == "webpush"]


def test_a_page_reaches_the_specialists_browser_encrypted_and_without_the_patient(
        app, paged_by_push, push_service, clock):
    browser = push_service.browser()
    subscribe(app, NIGHT, browser)
    referral = raise_stroke()
    run_sweep()
    assert push_service.refused == []
    [push] = push_service.received
    assert push.endpoint == browser.endpoint
    assert push.headers["content-encoding"] == "aes128gcm" and push.headers["urgency"] == "high"
    assert push.vapid_claims["sub"] == "mailto:pager-admin@gh.test"
    db.session.refresh(referral)
    assert set(push.payload) == {"title", "reference", "specialty", "url"}
    assert push.payload["reference"] == referral.reference
    assert push.payload["specialty"] == "Stroke (hyperacute)"
    assert urlsplit(push.payload["url"]).path.startswith("/ack/")
    for secret in ("9434765919", "943 476 5919", "Smith", "Ann", "1950"):
        assert secret not in push.plaintext.decode()
    [delivery] = push_deliveries(referral.id)
    assert delivery.status == "sent" and delivery.recipient.email == NIGHT
    assert referral.state == "awaiting_specialist"  # sent is not reached


def test_accepting_through_the_pushs_link_stops_the_escalation(
        app, paged_by_push, push_service, clock):
    subscribe(app, NIGHT, push_service.browser())
    subscribe(app, CONSULTANT, push_service.browser())
    referral = raise_stroke()
    run_sweep()
    [push] = push_service.received
    night = signed_in(app, NIGHT)
    link = urlsplit(push.payload["url"]).path
    assert night.get(link).status_code == 200
    assert night.post(link).status_code == 302
    for _ in range(3):
        clock.shift(timedelta(minutes=6))
        run_sweep()
    assert len(push_service.received) == 1  # tier 2 was never pushed
    assert paged_people(referral.id, 1) == set()
    db.session.refresh(referral)
    assert referral.state == "under_review" and referral.assigned_specialist.email == NIGHT


def test_a_push_that_nobody_accepts_escalates_to_tier_two_as_sms_would(
        app, paged_by_push, push_service, clock):
    subscribe(app, NIGHT, push_service.browser())
    consultant_browser = push_service.browser()
    subscribe(app, CONSULTANT, consultant_browser)
    referral = raise_stroke()
    run_sweep()
    clock.shift(timedelta(minutes=5))
    run_sweep()
    assert [p.endpoint for p in push_service.received][1] == consultant_browser.endpoint
    assert paged_people(referral.id, 1) == {CONSULTANT}


def test_a_410_deletes_the_subscription_and_says_so(app, paged_by_push, push_service, clock):
    browser = push_service.browser()
    subscribe(app, NIGHT, browser)
    browser.answer(410)
    referral = raise_stroke()
    run_sweep()
    assert push_service.received == []
    assert db.session.scalars(select(PushBrowser)).all() == []
    [delivery] = push_deliveries(referral.id)
    assert delivery.status == "failed" and delivery.permanent_failure
    assert "unsubscribed" in delivery.error and "allow notifications" in delivery.error


def test_a_gone_browser_is_forgotten_while_the_persons_other_browser_takes_the_page(
        app, paged_by_push, push_service, clock):
    phone, old_laptop = push_service.browser(), push_service.browser()
    subscribe(app, NIGHT, old_laptop)
    subscribe(app, NIGHT, phone)
    old_laptop.answer(404)
    referral = raise_stroke()
    run_sweep()
    assert [p.endpoint for p in push_service.received] == [phone.endpoint]
    assert db.session.scalars(select(PushBrowser.endpoint)).all() == [phone.endpoint]
    assert push_deliveries(referral.id)[0].status == "sent"


def test_a_rate_limited_push_is_sent_again_later_and_escalation_moves_on(
        app, paged_by_push, push_service, clock):
    browser = push_service.browser()
    subscribe(app, NIGHT, browser)
    browser.answer(429)
    referral = raise_stroke()
    run_sweep()
    [delivery] = push_deliveries(referral.id)
    assert delivery.status == "failed" and not delivery.permanent_failure
    assert "rate-limiting us (429)" in delivery.error and delivery.retry_at is not None
    assert len(db.session.scalars(select(PushBrowser)).all()) == 1


def test_a_specialist_with_no_subscribed_browser_fails_at_once_saying_what_to_do(
        app, paged_by_push, push_service, clock):
    referral = raise_stroke()
    run_sweep()
    [delivery] = push_deliveries(referral.id)
    assert delivery.status == "failed" and delivery.permanent_failure
    assert "no browser that takes push pages" in delivery.error


def test_our_vapid_key_refused_is_an_admin_problem_named_as_such(
        app, paged_by_push, push_service, clock):
    browser = push_service.browser()
    subscribe(app, NIGHT, browser)
    browser.answer(403)
    referral = raise_stroke()
    run_sweep()
    [delivery] = push_deliveries(referral.id)
    assert delivery.permanent_failure and "VAPID" in delivery.error
    assert "HTTP 403" in delivery.error
