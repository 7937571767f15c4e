"""A page Twilio never took (it answered 5xx/429, or could not be reached) is sent again
5 s later, then at doubling waits; one that may have reached Twilio (a timeout) is not,
and an escalation page is not sent again once the referral was accepted."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.paging.helpers import REFERRER, deliveries, run_sweep, stroke_payload, user
from tests.paging.test_reliability import SMS_ONLY, delivery_of, set_policy
from workflow.paging import delivery as sender
from workflow.referrals import actions as referrals
from workflow.times import now

pytestmark = [pytest.mark.prism, pytest.mark.clock(tick=False)]
SPECIALIST = "stroke.night@qmc.demo.nhs.uk"


@pytest.fixture
def app_config(twilio):
    return twilio.app_config()


def _accepted(twilio) -> list[int]:
    return sorted(delivery_of(r) for r in twilio.sent("Messages") if r.status == 201)


def test_a_page_twilio_refused_with_503_goes_again_once_twilio_is_back(network, twilio,
                                                                       clock):
    set_policy(SMS_ONLY)
    twilio.fail_with(503)
    referral = referrals.raise_referral(user(REFERRER), stroke_payload())
    run_sweep()
    tier1 = [d for d in deliveries(referral.id) if d.page.step == 0]
    assert [d.status for d in tier1] == ["failed"]
    assert tier1[0].retry_at == now() + timedelta(seconds=5)
    run_sweep()  # not yet due again: nothing more reaches Twilio
    refused = len(twilio.sent("Messages"))
    clock.shift(timedelta(seconds=5))
    run_sweep()  # still down: the next try waits twice as long
    [again] = [d for d in deliveries(referral.id) if d.id == tier1[0].id]
    assert again.send_attempts == 2 and again.retry_at == now() + timedelta(seconds=10)
    assert len(twilio.sent("Messages")) > refused
    twilio.set_mode("pass")
    clock.shift(timedelta(seconds=10))
    run_sweep()
    run_sweep()
    sent = [d for d in deliveries(referral.id) if d.channel == "sms"]
    assert all(d.status != "failed" and d.retry_at is None for d in sent), \
        [(d.id, d.status, d.error) for d in sent]
    assert _accepted(twilio) == sorted(d.id for d in sent)  # each once


def test_a_page_that_timed_out_is_not_sent_again(network, twilio, app):
    set_policy(SMS_ONLY)
    twilio.stall(10)  # longer than the 2 s timeout: Twilio may have taken it
    referral = referrals.raise_referral(user(REFERRER), stroke_payload())
    from workflow.paging import sweep

    sweep.run_once(app.extensions["goldenhour.channels"], limit=1)
    [sms] = deliveries(referral.id)
    assert sms.status == "failed" and sms.retry_at is None


def test_an_accepted_referral_is_not_paged_again_after_twilio_comes_back(network, twilio,
                                                                         clock):
    set_policy(SMS_ONLY)
    twilio.fail_with(503)
    referral = referrals.raise_referral(user(REFERRER), stroke_payload())
    run_sweep()
    [tier1] = [d for d in deliveries(referral.id) if d.page.step == 0]
    referrals.acknowledge(referral.id, user(SPECIALIST))
    twilio.reset()
    clock.shift(timedelta(seconds=5))
    run_sweep()
    [tier1] = [d for d in deliveries(referral.id) if d.id == tier1.id]
    assert tier1.status == "failed" and tier1.retry_at is None
    assert tier1.id not in [delivery_of(r) for r in twilio.sent("Messages")]


def test_resends_stop_after_a_bounded_number_of_tries():
    at = now()
    waits = [sender.resend_at(n, at) for n in range(1, sender.RESEND_ATTEMPTS + 1)]
    assert waits[-1] is None and None not in waits[:-1]
    assert sum((w - at).total_seconds() for w in waits[:-1]) < 20 * 60
