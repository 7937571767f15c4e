"""Unanswered is not a dead end: repeat alarms to the duty manager and the consultant on
call until someone accepts or the referrer cancels, and "Page again" for the referrer.
Driven by the real sweep on the frozen clock, pages on the console channel."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from extensions import db
from models import Page, Referral
from tests.paging.helpers import REFERRER, deliveries, pages, raise_stroke, run_sweep, user
from workflow.errors import NotAllowed
from workflow.referrals import actions as referrals
from workflow.referrals.states import IllegalTransition

NIGHT = "stroke.night@qmc.demo.nhs.uk"
CONSULTANT = "stroke.consultant@qmc.demo.nhs.uk"
DUTY = "duty.manager@qmc.demo.nhs.uk"

pytestmark = pytest.mark.clock


def state(referral_id: int) -> str:
    db.session.expire_all()
    return db.session.get(Referral, referral_id).state


def unanswered(clock) -> Referral:
    """A referral whose three steps (5 min each) were paged with nobody accepting, its
    first alarms sent."""
    referral = raise_stroke()
    run_sweep()
    for _ in range(3):
        clock.shift(timedelta(minutes=5))
        run_sweep()
    run_sweep()  # the alarms
    assert state(referral.id) == "unanswered"
    return referral


def realarms(referral_id: int) -> list:
    return [d for d in deliveries(referral_id) if d.page.kind == "realarm"]


def test_an_unanswered_referral_alarms_again_every_ten_minutes_until_accepted(network,
                                                                              clock):
    referral = unanswered(clock)
    clock.shift(timedelta(minutes=9, seconds=59))
    run_sweep()
    assert realarms(referral.id) == []  # not yet
    clock.shift(timedelta(seconds=1))
    run_sweep()
    first = realarms(referral.id)
    assert {d.recipient.email for d in first} == {DUTY, CONSULTANT}
    assert {d.channel for d in first} == {"sms", "voice", "in_app"}
    assert all("STILL UNANSWERED" in d.text and referral.reference in d.text for d in first)
    assert all("Smith" not in d.text and "9434765919" not in d.text for d in first)
    run_sweep()
    assert len(realarms(referral.id)) == len(first)  # sent once, not once per sweep

    clock.shift(timedelta(minutes=10))
    run_sweep()
    assert len(realarms(referral.id)) == 2 * len(first)
    assert [p.attempt for p in pages(referral.id) if p.kind == "realarm"] == [1, 2, 3]

    referrals.acknowledge(referral.id, user(CONSULTANT))
    for _ in range(3):
        clock.shift(timedelta(minutes=10))
        run_sweep()
    assert len(realarms(referral.id)) == 2 * len(first)  # stopped by the accept
    waiting = [p for p in pages(referral.id) if p.kind == "realarm" and p.status == "due"]
    assert waiting == []


def test_the_referrer_cancelling_stops_the_repeat_alarms(network, clock):
    referral = unanswered(clock)
    referrals.cancel(referral.id, user(REFERRER), {"reason": "Treated locally"})
    clock.shift(timedelta(minutes=30))
    run_sweep()
    assert realarms(referral.id) == []


def test_the_interval_is_configurable(network, clock, app):
    app.config["UNANSWERED_REALARM_MINUTES"] = 3
    referral = unanswered(clock)
    clock.shift(timedelta(minutes=3))
    run_sweep()
    assert {d.recipient.email for d in realarms(referral.id)} == {DUTY, CONSULTANT}
    due = db.session.scalars(select(Page.due_at).where(
        Page.referral_id == referral.id, Page.kind == "realarm", Page.status == "due")).all()
    assert len(due) == 1


def test_page_again_restarts_the_escalation_from_tier_one_as_an_event(network, clock):
    referral = unanswered(clock)
    with pytest.raises(NotAllowed):
        referrals.page_again(referral.id, user(NIGHT))
    db.session.rollback()
    referrals.page_again(referral.id, user(REFERRER), {"note": "Still needs a decision"})
    assert state(referral.id) == "awaiting_specialist"
    events = db.session.get(Referral, referral.id).events
    assert events[-1].kind == "page_again" and events[-1].reason == "Still needs a decision"
    assert events[-1].actor_id == user(REFERRER).id  # on the chain, by whom
    tier1_before = [d for d in deliveries(referral.id) if d.page.step == 0]

    run_sweep()
    again = [d for d in deliveries(referral.id) if d.page.step == 0 and d.page.attempt >= 1000]
    assert {d.recipient.email for d in again} == {NIGHT} and len(tier1_before) == 2
    # The repeat alarm due for the first round will never be sent.
    clock.shift(timedelta(minutes=10))
    run_sweep()
    assert realarms(referral.id) == []
    # Nobody again: tier 2, the duty manager, unanswered again, alarmed again.
    for _ in range(2):
        clock.shift(timedelta(minutes=5))
        run_sweep()
    run_sweep()
    assert state(referral.id) == "unanswered"
    alarms = [d for d in deliveries(referral.id) if d.page.kind == "alarm"]
    assert len({d.page_id for d in alarms}) == 4  # two rounds of two alarms
    referrals.page_again(referral.id, user(REFERRER))  # a third round
    run_sweep()
    assert len([p for p in pages(referral.id) if p.step == 0]) == 3
    with pytest.raises(IllegalTransition):  # only while unanswered
        referrals.page_again(referral.id, user(REFERRER))


def test_the_referral_page_offers_page_again_and_counts_down_to_the_next_step(
        network, clock, app):
    from workflow.seed import DEMO_PASSWORD

    referral = raise_stroke()
    run_sweep()
    client = app.test_client()
    client.login(REFERRER, DEMO_PASSWORD)
    page = client.get(f"/referrals/{referral.id}").get_data(as_text=True)
    assert 'data-countdown="2026-11-29T03:05:00+00:00"' in page  # step 2, in 5 min
    assert f"/referrals/{referral.id}/page-again" not in page
    for _ in range(3):
        clock.shift(timedelta(minutes=5))
        run_sweep()
    page = client.get(f"/referrals/{referral.id}").get_data(as_text=True)
    assert f'action="/referrals/{referral.id}/page-again"' in page
    assert "Repeat alarm 1: duty manager and consultant on call" in page
    response = client.post(f"/referrals/{referral.id}/page-again", data={"note": ""})
    assert response.status_code == 302
    assert state(referral.id) == "awaiting_specialist"


def test_the_referral_page_lists_the_hubs_on_call_numbers_to_tap(network, clock, app):
    from workflow.seed import DEMO_PASSWORD

    referral = raise_stroke()
    night, duty = user(NIGHT), user(DUTY)
    night.phone, duty.phone = "+44 7700 900123", ""
    db.session.commit()
    client = app.test_client()
    client.login(REFERRER, DEMO_PASSWORD)
    page = client.get(f"/referrals/{referral.id}").get_data(as_text=True)
    card = page[page.index('id="paging"'):]
    assert f"Tier 1 on call: <strong>{night.name}</strong>" in card
    assert '<a class="button small" href="tel:+447700900123">Call +44 7700 900123</a>' in card
    assert "Duty manager: <strong>" in card and "no number on file" in card
    audit = app.test_client()
    audit.login("audit@em.demo.nhs.uk", DEMO_PASSWORD)
    assert "tel:" not in audit.get(f"/referrals/{referral.id}").get_data(as_text=True)
