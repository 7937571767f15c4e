"""The accept page shows what a specialist needs before taking a referral, and its
button cannot be mistaken for a decision; the pager inbox groups pages by referral."""

import re
from datetime import timedelta

import pytest

from tests.paging.helpers import deliveries, raise_stroke, run_sweep, user
from workflow.times import now

pytestmark = [pytest.mark.prism, pytest.mark.clock(tick=True)]
NIGHT = "stroke.night@qmc.demo.nhs.uk"
DEMO_PASSWORD = "goldenhour-demo"


@pytest.fixture
def app_config(twilio):
    return twilio.app_config()


def text_of(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


def paged_stroke():
    onset = (now() - timedelta(minutes=100)).replace(microsecond=0).isoformat()
    referral = raise_stroke(onset_at=onset, onset_certainty="precise",
                            question="CTA shows left M1 occlusion. Thrombectomy?")
    run_sweep()
    sms = [d for d in deliveries(referral.id)
           if d.channel == "sms" and d.recipient_id == user(NIGHT).id]
    return referral, sms[0]


def test_the_accept_page_shows_the_clinical_summary_and_an_unmistakable_button(
        network, client):
    referral, sms = paged_stroke()
    client.login(NIGHT, DEMO_PASSWORD)
    path = sms.link[sms.link.index("/ack/"):]
    page = client.get(path)
    assert page.status_code == 200
    text = text_of(page.get_data(as_text=True))
    assert referral.reference in text and "Pilgrim Hospital" in text
    assert re.search(r"Patient \d+ years, female", text)
    assert "NIHSS 14" in text and "Pre-stroke mRS 1" in text
    assert "Since onset (precise) 1 h 40 min" in text
    # (the clock ticks while the sweep runs: a minute may have gone)
    assert re.search(r"Thrombolysis open, 2 h (50|49) min left", text)
    assert re.search(r"Thrombectomy open, 4 h (20|19) min left", text)
    assert "CTA shows left M1 occlusion. Thrombectomy?" in text
    assert "I'll take this referral" in text
    assert "Accept" not in text  # nothing to confuse with the outcome "Not accepted"


def test_the_accept_page_needs_sign_in(network, client):
    _, sms = paged_stroke()
    page = client.get(sms.link[sms.link.index("/ack/"):])
    assert page.status_code == 302 and "/login" in page.headers["Location"]


def test_the_inbox_groups_pages_by_referral_with_reference_and_state(network, client):
    first, _ = paged_stroke()
    second, _ = paged_stroke()
    client.login(NIGHT, DEMO_PASSWORD)
    html = client.get("/pager").get_data(as_text=True)
    groups = re.findall(r'<section class="card inbox-group".*?</section>', html, re.S)
    assert len(groups) == 2
    newest, oldest = (text_of(g) for g in groups)
    assert second.reference in newest and first.reference in oldest
    for group in (newest, oldest):
        assert "Paging specialist" in group and "Pilgrim Hospital" in group
        # One line per channel inside the group, in the table's words.
        assert "SMS" in group and "Voice call" in group
        assert "voice" not in group.replace("Voice call", "")
        assert "in_app" not in group
