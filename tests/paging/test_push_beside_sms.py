"""Push beside SMS by default: a page by SMS or voice also goes by Web Push to each
browser its person subscribed (the local push service, tests/services/push.py, checks
our VAPID token and decrypts it). The step's own channels still run; a push never
stands in for them, never holds a failed step back, and a page is reached only when
someone accepts. A step with "also_push": false pages by its channels alone."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from extensions import db
from models import EscalationPolicy, HubService, Specialty
from tests.paging.helpers import (
    REFERRER,
    deliveries,
    paged_people,
    raise_stroke,
    run_sweep,
    user,
)
from tests.paging.test_webpush import CONSULTANT, NIGHT, subscribe
from workflow.errors import ValidationFailed
from workflow.paging import escalation, push
from workflow.referrals import actions as referrals

pytestmark = pytest.mark.clock


@pytest.fixture
def app_config(push_server):
    return push_server.app_config()


def channels_of(referral_id: int, email: str) -> list[str]:
    return sorted(d.channel for d in deliveries(referral_id)
                  if d.recipient is not None and d.recipient.email == email)


def stroke_policy(steps: list[dict]) -> None:
    ids = db.session.scalars(select(HubService.id).join(Specialty)
                             .where(Specialty.code == "stroke")).all()
    db.session.add_all(EscalationPolicy(hub_service_id=i, steps=steps) for i in ids)
    db.session.commit()


def test_a_subscribed_specialist_is_pushed_beside_the_default_sms_and_call(
        app, network, push_service, clock):
    browser = push_service.browser()
    subscribe(app, NIGHT, browser)
    referral = raise_stroke()
    run_sweep()
    assert channels_of(referral.id, NIGHT) == ["sms", "voice", "webpush"]
    [push] = push_service.received
    assert push.endpoint == browser.endpoint
    db.session.refresh(referral)
    assert push.payload["reference"] == referral.reference
    assert "Smith" not in push.plaintext.decode()
    # Sent is not reached: nobody accepted, so tier 2 is paged after the wait.
    assert referral.state == "awaiting_specialist"
    clock.shift(timedelta(minutes=6))
    run_sweep()
    assert paged_people(referral.id, 1) == {CONSULTANT}
    assert channels_of(referral.id, CONSULTANT) == ["sms", "voice"]  # no browser of theirs
    assert len(push_service.received) == 1


def test_a_push_beside_a_failed_sms_does_not_hold_the_escalation_back(
        app, network, push_service, clock):
    subscribe(app, NIGHT, push_service.browser())
    night = user(NIGHT)
    night.phone = ""  # no number on file: SMS and call cannot go
    db.session.commit()
    referral = raise_stroke()
    run_sweep()
    by_channel = {d.channel: d for d in deliveries(referral.id) if d.recipient_id == night.id}
    assert by_channel["webpush"].status == "sent"
    assert by_channel["sms"].status == by_channel["voice"].status == "failed"
    run_sweep()  # the step failed: tier 2 is brought forward, not left for 5 minutes
    assert paged_people(referral.id, 1) == {CONSULTANT}


def test_a_step_that_says_also_push_false_pages_by_its_own_channels_alone(
        app, network, push_service, clock):
    stroke_policy([
        {"who": "tier1", "channels": ["sms"], "wait_minutes": 5, "repeat": 0,
         "also_push": False},
        {"who": "tier2", "channels": ["sms", "voice"], "wait_minutes": 5, "repeat": 0},
    ])
    subscribe(app, NIGHT, push_service.browser())
    subscribe(app, CONSULTANT, push_service.browser())
    referral = raise_stroke()
    run_sweep()
    assert channels_of(referral.id, NIGHT) == ["sms"]
    assert push_service.received == []
    clock.shift(timedelta(minutes=6))
    run_sweep()
    assert channels_of(referral.id, CONSULTANT) == ["sms", "voice", "webpush"]
    assert len(push_service.received) == 1


def test_a_step_that_already_pushes_is_pushed_once(
        app, network, push_service, clock):
    stroke_policy([{"who": "tier1", "channels": ["webpush", "sms"], "wait_minutes": 5,
                    "repeat": 0}])
    subscribe(app, NIGHT, push_service.browser())
    referral = raise_stroke()
    run_sweep()
    assert channels_of(referral.id, NIGHT) == ["sms", "webpush"]
    assert len(push_service.received) == 1


def test_a_notice_to_the_referrer_keeps_its_own_channels(app, network, push_service, clock):
    """The service worker's notification asks its reader to accept: only pages that ask
    someone to accept are pushed beside SMS."""
    push.subscribe(user(REFERRER), push_service.browser().subscription(), allow_local=True)
    referral = raise_stroke()
    run_sweep()
    referrals.acknowledge(referral.id, user(NIGHT))
    run_sweep()  # the "accepted" notice to the referrer: SMS and in-app
    assert channels_of(referral.id, REFERRER) == ["in_app", "sms"]
    assert push_service.received == []


def test_also_push_must_be_true_or_false():
    step = {"who": "tier1", "channels": ["sms"], "wait_minutes": 5, "repeat": 0}
    assert escalation.check_steps([step | {"also_push": True}]) == [step]
    assert escalation.check_steps([step | {"also_push": False}]) == \
        [step | {"also_push": False}]
    with pytest.raises(ValidationFailed) as refused:
        escalation.check_steps([step | {"also_push": "no"}])
    assert refused.value.errors == {"steps[0].also_push": "also_push must be true or false."}
