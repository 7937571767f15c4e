"""The referral page shows its paging: who was paged, how, what happened, and every
failure with its reason (issue 4: "every page, delivery and failure is visible on the
referral")."""

import re

import pytest

from extensions import db
from tests.paging.helpers import deliveries, raise_stroke, run_sweep, user
from workflow.referrals import actions as referrals

pytestmark = [pytest.mark.prism, pytest.mark.clock(tick=True)]
NIGHT = "stroke.night@qmc.demo.nhs.uk"
DEMO_PASSWORD = "goldenhour-demo"


@pytest.fixture
def app_config(twilio):
    return twilio.app_config()


def paging_section(client, referral_id: int) -> str:
    page = client.get(f"/referrals/{referral_id}")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    return html[html.index('id="paging"'):html.index("</section>", html.index('id="paging"'))]


def text_of(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


def test_the_referrer_sees_who_was_paged_and_how(network, clock, client):
    referral = raise_stroke()
    client.login("referrer@pil.demo.nhs.uk", DEMO_PASSWORD)
    before = text_of(paging_section(client, referral.id))
    assert "Step 1: tier 1 on call" in before and "due" in before
    run_sweep()
    after = text_of(paging_section(client, referral.id))
    night = user(NIGHT).name
    assert f"SMS to {night}: sent" in after
    # Placed, not answered: nobody has picked up yet.
    assert f"voice call to {night}: call placed" in after and "answered" not in after
    assert "Step 2: tier 2 on call" in after and "if nobody accepts first" in after
    assert "failed" not in after


def test_a_failed_page_is_named_with_its_reason_on_the_referral(network, clock, client,
                                                                twilio):
    referral = raise_stroke()
    # The first create to arrive (the SMS, or on PostgreSQL perhaps the call: they are
    # sent side by side) is refused: Twilio says the number is invalid.
    twilio.twilio_error(21211, times=1)
    run_sweep()
    failed = [d.channel for d in deliveries(referral.id) if d.status == "failed"]
    assert len(failed) == 1
    label = {"sms": "SMS", "voice": "voice call"}[failed[0]]
    client.login("referrer@pil.demo.nhs.uk", DEMO_PASSWORD)
    section = text_of(paging_section(client, referral.id))
    night = user(NIGHT).name
    assert "1 page failed" in section
    assert f"{label} to {night}: invalid phone number" in section
    assert "correct it on their profile" in section


def test_after_acceptance_the_next_step_says_it_will_not_be_sent(network, clock, client):
    referral_id = raise_stroke().id
    run_sweep()
    referrals.acknowledge(referral_id, user(NIGHT))
    db.session.remove()
    client.login("referrer@pil.demo.nhs.uk", DEMO_PASSWORD)
    section = text_of(paging_section(client, referral_id))
    assert "Step 2: tier 2 on call — not sent: the referral had moved on" in section
    assert "if nobody accepts first" not in section


def test_a_voicemail_shows_as_not_an_answer(network, clock, client):
    from workflow.paging import replies as pager_replies

    referral = raise_stroke()
    run_sweep()
    call = next(d for d in deliveries(referral.id) if d.channel == "voice")
    assert pager_replies.status_callback(call.provider_id, "completed", "machine_end_beep")
    client.login("referrer@pil.demo.nhs.uk", DEMO_PASSWORD)
    section = text_of(paging_section(client, referral.id))
    night = user(NIGHT).name
    assert (f"1 page failed: voice call to {night}: the call reached a voicemail, "
            "not a person.") in section
    assert "voicemail (not an answer)" in section
