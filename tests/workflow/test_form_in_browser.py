"""The new-referral form in Chromium: a specialty's fields appear only once it is chosen,
follow-up fields only when they apply, and hidden fields are not sent."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from extensions import db
from models import Referral
from tests.browser.conftest import browser, live_server, phone  # noqa: F401 - fixtures
from tests.browser.test_viewer import REFERRER, sign_in
from workflow.referrals import nhs_number
from workflow.times import local, now

pytestmark = pytest.mark.browser


def _shown(page, field: str) -> bool:
    return page.locator(f"#w-{field}").is_visible()


def test_each_specialty_shows_its_own_fields_and_sends_only_those(network, live_server,  # noqa: F811
                                                                  phone):  # noqa: F811
    sign_in(phone, live_server.url, REFERRER)
    phone.goto(f"{live_server.url}/referrals/new")
    assert phone.locator("text=Choose a specialty to see its fields.").is_visible()
    assert not _shown(phone, "stroke-nihss") and not _shown(phone, "major_trauma-gcs")

    phone.check("input[name=specialty][value=stroke]")
    assert _shown(phone, "stroke-nihss") and not _shown(phone, "major_trauma-gcs")
    assert not _shown(phone, "stroke-anticoagulant_last_dose_at")
    phone.select_option("select[name='stroke.anticoagulant']", "apixaban")
    assert _shown(phone, "stroke-anticoagulant_last_dose_at")
    assert not _shown(phone, "stroke-thrombolysis_at")
    phone.check("input[name='stroke.thrombolysis_given'][value=yes]")
    assert _shown(phone, "stroke-thrombolysis_at")
    phone.fill("input[name='stroke.nihss']", "14")

    phone.check("input[name=specialty][value=major_trauma]")
    assert _shown(phone, "major_trauma-gcs") and not _shown(phone, "stroke-nihss")
    phone.check("input[name=onset_certainty][value=unknown]")
    assert not _shown(phone, "onset_at")
    phone.check("input[name=onset_certainty][value=precise]")
    assert _shown(phone, "onset_at")

    onset = local(now() - timedelta(minutes=50)).strftime("%Y-%m-%dT%H:%M")
    for name, value in {
        "patient.nhs_number": "943 476 5919", "patient.family_name": "Smith",
        "patient.given_name": "Ann", "patient.birth_date": "1950-01-01", "onset_at": onset,
        "question": "Accept for the major trauma centre?", "major_trauma.age": "34",
        "major_trauma.mechanism": "Motorbike v car", "major_trauma.injuries": "Open femur",
        "major_trauma.gcs": "9",
    }.items():
        phone.fill(f"[name='{name}']", value)
    phone.check("input[name='patient.sex'][value=female]")
    with phone.expect_response(lambda r: r.request.method == "POST") as sent:
        phone.locator("button.primary.wide").click()
    phone.wait_for_load_state()
    posted = sent.value.request.post_data or ""
    assert "stroke.nihss" not in posted and "stroke.anticoagulant" not in posted
    assert sent.value.status == 302, phone.content()[:2000]
    db.session.expire_all()
    referral = db.session.scalars(select(Referral)).one()
    assert referral.specialty.code == "major_trauma"
    assert referral.clinical["gcs"] == 9 and "nihss" not in referral.clinical


def test_a_wrong_nhs_number_is_named_when_the_field_is_left(network, live_server,  # noqa: F811
                                                            phone):  # noqa: F811
    sign_in(phone, live_server.url, REFERRER)
    phone.goto(f"{live_server.url}/referrals/new")
    posts = []
    phone.on("request", lambda r: posts.append(r) if r.method == "POST" else None)
    field, error = "input[name='patient.nhs_number']", "#e-patient-nhs_number"
    for typed, message in (("943 476 5918", nhs_number.WRONG_CHECK_DIGIT),
                           ("943 476 591", nhs_number.NOT_TEN_DIGITS),
                           ("123 456 7890", nhs_number.WRONG_CHECK_DIGIT)):  # check 10
        phone.fill(field, typed)
        phone.press(field, "Tab")
        assert phone.locator(error).text_content() == message, typed
        assert phone.get_attribute(field, "aria-invalid") == "true"
        assert "e-patient-nhs_number" in phone.get_attribute(field, "aria-describedby")
        assert phone.locator("#w-patient-nhs_number.invalid").count() == 1
    phone.fill(field, "943 476 5919")
    phone.press(field, "Tab")
    assert phone.locator(error).count() == 0
    assert phone.get_attribute(field, "aria-invalid") is None
    assert phone.get_attribute(field, "aria-describedby") == "h-patient-nhs_number"
    assert posts == []  # checked in the page, nothing sent
