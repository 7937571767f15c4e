"""One tap to call and who else is looking: the referral page gives the referrer and
the accepting specialist each other's numbers as tel: links (for those holding
oncall.numbers), and names who else has the page's live stream open in the last 30 s."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest

from extensions import db
from tests.paging.helpers import REFERRER, raise_stroke, run_sweep, user
from workflow.referrals import actions as referrals
from workflow.seed import DEMO_PASSWORD

NIGHT = "stroke.night@qmc.demo.nhs.uk"
AUDIT = "audit@em.demo.nhs.uk"

pytestmark = pytest.mark.clock


def signed_in(app, email: str):
    client = app.test_client()
    client.login(email, DEMO_PASSWORD)
    return client


def page(client, referral_id: int) -> str:
    response = client.get(f"/referrals/{referral_id}")
    assert response.status_code == 200
    return response.get_data(as_text=True)


def watch(client, referral_id: int) -> None:
    """What the page's script does every second: read the live stream (here once)."""
    assert client.get(f"/referrals/{referral_id}/events?once=1").status_code == 200


@pytest.fixture
def accepted(network, clock):
    referral = raise_stroke()
    run_sweep()
    night, referrer = user(NIGHT), user(REFERRER)
    night.phone, referrer.phone = "+44 7700 900123", "01205 364801"
    db.session.commit()
    referrals.acknowledge(referral.id, night)
    return referral


def test_the_referrer_and_the_accepting_specialist_can_ring_each_other(app, accepted):
    night, referrer = user(NIGHT), user(REFERRER)
    seen_by_referrer = page(signed_in(app, REFERRER), accepted.id)
    assert (f'Accepted by <strong>{night.name}</strong>\n      <a class="button small" '
            'href="tel:+447700900123">Call +44 7700 900123</a>') in seen_by_referrer
    assert f"Referred by <strong>{referrer.name}</strong>" not in seen_by_referrer
    seen_by_specialist = page(signed_in(app, NIGHT), accepted.id)
    assert (f'Referred by <strong>{referrer.name}</strong>\n      <a class="button small" '
            'href="tel:01205364801">Call 01205 364801</a>') in seen_by_specialist
    assert f"Accepted by <strong>{night.name}</strong>" not in seen_by_specialist


def test_someone_without_oncall_numbers_sees_no_number_to_call(app, accepted):
    seen = page(signed_in(app, AUDIT), accepted.id)
    assert "tel:" not in seen and "+44 7700 900123" not in seen


def test_the_page_names_who_else_has_it_open_in_the_last_30_seconds(app, accepted, clock):
    night = user(NIGHT)
    specialist, referrer = signed_in(app, NIGHT), signed_in(app, REFERRER)
    assert "Also viewing now" not in page(referrer, accepted.id)
    watch(specialist, accepted.id)
    watch(referrer, accepted.id)
    assert f"Also viewing now: {night.name}</p>" in page(referrer, accepted.id)
    # Never oneself: the specialist's page names the referrer alone.
    assert f"Also viewing now: {user(REFERRER).name}</p>" in page(specialist, accepted.id)
    clock.shift(timedelta(seconds=29))
    assert f"Also viewing now: {night.name}" in page(referrer, accepted.id)
    clock.shift(timedelta(seconds=2))  # 31 s since the specialist's stream was seen
    assert "Also viewing now" not in page(referrer, accepted.id)
    watch(specialist, accepted.id)
    assert f"Also viewing now: {night.name}" in page(referrer, accepted.id)


def snapshot(client, referral_id: int, mark: tuple[str, str] | None = None) -> dict:
    """The referrer's page asking its stream once, from the mark it has."""
    last, paging = mark or ("0", "")
    response = client.get(f"/referrals/{referral_id}/events?once=1&last={last}&paging={paging}")
    assert response.status_code == 200
    return response.json


def mark_of(html: str) -> tuple[str, str]:
    found = re.search(r'data-live-last="(\d+)"\s+data-live-paging="([0-9a-f]*)"', html)
    return found.group(1), found.group(2)


def test_the_open_page_is_told_when_someone_starts_viewing_and_when_they_have_left(
        app, accepted, clock):
    night = user(NIGHT)
    specialist, referrer = signed_in(app, NIGHT), signed_in(app, REFERRER)
    shown = page(referrer, accepted.id)
    assert "Also viewing now" not in shown
    mark = mark_of(shown)
    assert snapshot(referrer, accepted.id, mark)["changed"] is False
    watch(specialist, accepted.id)  # the specialist opens the referral
    assert snapshot(referrer, accepted.id, mark)["changed"] is True
    shown = page(referrer, accepted.id)  # what the page's script fetches on "change"
    assert f"Also viewing now: {night.name}</p>" in shown
    mark = mark_of(shown)
    assert snapshot(referrer, accepted.id, mark)["changed"] is False
    # The specialist closes the page: their stream is no longer seen.
    clock.shift(timedelta(seconds=29))
    assert snapshot(referrer, accepted.id, mark)["changed"] is False
    clock.shift(timedelta(seconds=2))
    assert snapshot(referrer, accepted.id, mark)["changed"] is True
    shown = page(referrer, accepted.id)
    assert "Also viewing now" not in shown
    assert snapshot(referrer, accepted.id, mark_of(shown))["changed"] is False
