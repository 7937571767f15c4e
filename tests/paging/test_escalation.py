"""Escalation up the rota, driven by the real sweep, with pages on the console channel."""

from datetime import timedelta

import pytest
from sqlalchemy import select

from extensions import db
from models import EscalationPolicy, Referral
from tests.paging.helpers import deliveries, paged_people, pages, raise_stroke, run_sweep, user
from workflow.referrals import actions as referrals
from workflow.times import now

NIGHT = "stroke.night@qmc.demo.nhs.uk"
DAY = "stroke.day@qmc.demo.nhs.uk"
CONSULTANT = "stroke.consultant@qmc.demo.nhs.uk"
DUTY = "duty.manager@qmc.demo.nhs.uk"

pytestmark = pytest.mark.clock


def referral_state(referral_id):
    db.session.expire_all()
    return db.session.get(Referral, referral_id).state


def test_a_new_referral_pages_tier_one_by_sms_and_call_at_once(network, clock):
    referral = raise_stroke()
    assert [p.step for p in pages(referral.id)] == [0]
    result = run_sweep()
    assert result.claimed == 1 and result.sent == 2
    assert {(d.recipient.email, d.channel) for d in deliveries(referral.id)} == {
        (NIGHT, "sms"), (NIGHT, "voice")}
    assert referral_state(referral.id) == "awaiting_specialist"
    events = [e.kind for e in db.session.get(Referral, referral.id).events]
    assert events == ["raise", "page_sent"]


def test_the_page_carries_no_patient_identifiers(network, clock):
    referral = raise_stroke()
    run_sweep()
    for delivery in deliveries(referral.id):
        for secret in ("9434765919", "Smith", "Ann", "1950"):
            assert secret not in delivery.text and secret not in delivery.link
        assert "Stroke" in delivery.text and "Pilgrim" in delivery.text


def test_nobody_answering_escalates_to_tier_two_then_the_duty_manager(network, clock):
    referral = raise_stroke()
    run_sweep()
    clock.shift(timedelta(minutes=4, seconds=59))
    assert run_sweep().claimed == 0  # not yet
    clock.shift(timedelta(seconds=1))
    run_sweep()
    assert paged_people(referral.id, 1) == {CONSULTANT}
    clock.shift(timedelta(minutes=5))
    run_sweep()
    assert paged_people(referral.id, 2) == {DUTY}
    assert {d.channel for d in deliveries(referral.id) if d.page.step == 2} == {
        "sms", "voice", "email"}
    clock.shift(timedelta(minutes=5))
    run_sweep()
    assert referral_state(referral.id) == "unanswered"
    run_sweep()  # the alarm pages
    alarms = [d for d in deliveries(referral.id) if d.page.kind == "alarm"]
    assert {d.recipient.email for d in alarms} == {DUTY, "referrer@pil.demo.nhs.uk"}
    assert all("UNANSWERED" in d.text for d in alarms)
    # Still acceptable after the alarm.
    accepted = referrals.acknowledge(referral.id, user(CONSULTANT))
    assert accepted.state == "under_review"


def test_acknowledging_stops_every_further_page(network, clock):
    referral = raise_stroke()
    run_sweep()
    referrals.acknowledge(referral.id, user(NIGHT))
    sent_before = len(deliveries(referral.id))
    for _ in range(4):
        clock.shift(timedelta(minutes=6))
        run_sweep()
    escalation_pages = [d for d in deliveries(referral.id) if d.page.kind == "escalation"]
    assert len(escalation_pages) == 2  # only tier 1's SMS and call
    assert all(p.status != "due" for p in pages(referral.id))
    notices = [d for d in deliveries(referral.id) if d.page.kind == "notice"]
    assert {(d.recipient.email, d.channel) for d in notices} == {
        ("referrer@pil.demo.nhs.uk", "sms"), ("referrer@pil.demo.nhs.uk", "in_app")}
    assert "accepted by" in notices[0].text
    assert sent_before <= len(deliveries(referral.id))


def test_a_policy_edited_mid_escalation_does_not_change_a_live_one(network, clock):
    referral = raise_stroke()
    db.session.add(EscalationPolicy(hub_service_id=referral.hub_service_id, steps=[
        {"who": "duty_manager", "channels": ["in_app"], "wait_minutes": 1, "repeat": 0}]))
    db.session.commit()
    run_sweep()
    clock.shift(timedelta(minutes=5))
    run_sweep()
    assert paged_people(referral.id, 1) == {CONSULTANT}
    later = raise_stroke()
    run_sweep()
    assert paged_people(later.id, 0) == {DUTY}


def test_an_empty_rota_moves_on_at_once_and_says_why(network, clock):
    from models import RotaShift

    db.session.query(RotaShift).filter(RotaShift.tier == 1).delete()
    db.session.commit()
    referral = raise_stroke()
    run_sweep()
    [failure] = [d for d in deliveries(referral.id) if d.page.step == 0]
    assert failure.status == "failed" and "nobody to page for tier1" in failure.error
    run_sweep()  # tier 2 is now due, without waiting 5 minutes
    assert paged_people(referral.id, 1) == {CONSULTANT}


def test_two_sweeps_never_send_the_same_step_twice(network, clock):
    referral = raise_stroke()
    run_sweep()
    run_sweep()
    assert len(deliveries(referral.id)) == 2
    assert pages(referral.id)[0].status == "claimed"


def test_a_stale_sending_delivery_is_sent_again_after_the_lease(network, clock):
    from models import Delivery
    from workflow.paging import sweep

    raise_stroke()
    # A sweep that claimed the page and then died before sending.
    page, ids = sweep.claim_next(now())
    assert len(ids) == 2
    assert run_sweep().resent == 0
    clock.shift(sweep.LEASE + timedelta(seconds=1))
    result = run_sweep()
    assert result.resent == 2
    assert {d.status for d in db.session.scalars(select(Delivery))} == {"delivered"}
