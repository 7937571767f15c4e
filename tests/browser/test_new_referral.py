"""The new-referral form in Chromium: Enter in a field sends the referral (the form's
"Find images" button comes first in the page but is not the default)."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from extensions import db
from models import Referral
from tests.browser.test_viewer import REFERRER, sign_in

pytestmark = pytest.mark.browser


def test_enter_in_a_field_sends_the_referral_not_the_image_search(network, live_server,
                                                                   phone):
    sign_in(phone, live_server.url, REFERRER)
    phone.goto(f"{live_server.url}/referrals/new")
    phone.fill("input[name='patient.nhs_number']", "9434765919")
    with phone.expect_response(lambda r: r.request.method == "POST") as sent:
        phone.press("input[name='patient.nhs_number']", "Enter")
    phone.wait_for_load_state()
    assert "find_studies" not in (sent.value.request.post_data or "")
    # Sent with most fields empty: the send's own per-field messages, nothing stored.
    assert sent.value.status == 422
    assert phone.locator(".field.invalid").count() >= 3
    assert phone.locator("text=No studies found").count() == 0
    assert db.session.scalar(select(func.count(Referral.id))) == 0
