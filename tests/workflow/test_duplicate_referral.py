"""A second open referral for the same patient and specialty is not raised by accident:
the form names the open one, links to it, and sends only when told it is separate."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from extensions import db
from models import Referral
from tests.paging.helpers import user
from tests.workflow.helpers import bearer, stroke_form, stroke_payload
from tests.workflow.test_pages import REFERRER, raise_stroke
from workflow.referrals import actions as referrals
from workflow.seed import DEMO_PASSWORD

pytestmark = pytest.mark.clock


def count() -> int:
    return db.session.scalar(select(func.count(Referral.id)))


def test_the_second_is_held_with_a_link_to_the_open_one(login):
    client = login(REFERRER)
    first = raise_stroke(client)
    response = client.post("/referrals/new", data=stroke_form(**{
        "patient.nhs_number": "943 476 5919"}))
    page = response.get_data(as_text=True)
    assert response.status_code == 409
    assert "already has an open referral" in page
    assert f'href="/referrals/{first.id}">{first.reference}</a>' in page
    assert "Pilgrim" in page and 'name="separate_referral"' in page
    assert count() == 1
    # What was typed is still there.
    assert 'value="Smith"' in page


def test_saying_it_is_separate_raises_it(login):
    client = login(REFERRER)
    raise_stroke(client)
    raise_stroke(client, separate_referral="yes")
    assert count() == 2


def test_another_patient_another_specialty_or_a_closed_referral_is_no_duplicate(login):
    client = login(REFERRER)
    first = raise_stroke(client)
    raise_stroke(client, **{"patient.nhs_number": "4010232137"})
    referrals.perform("cancel", first.id, user(REFERRER), {"reason": "raised in error"})
    raise_stroke(client)
    assert count() == 3


def test_the_api_answers_409_naming_the_open_referral(client, network):
    first = client.post("/api/v1/referrals", json=stroke_payload(), headers=bearer(REFERRER))
    assert first.status_code == 201
    again = client.post("/api/v1/referrals", json=stroke_payload(), headers=bearer(REFERRER))
    assert again.status_code == 409
    body = again.get_json()
    assert first.json["reference"] in body["error"]
    assert '"separate_referral": true' in body["error"]
    assert body["open_referrals"] == [{
        "id": first.json["id"], "reference": first.json["reference"],
        "state": first.json["state"], "referring_hospital": "PIL",
        "url": f"/referrals/{first.json['id']}"}]
    assert count() == 1


def test_the_api_raises_a_separate_one_when_told(client, network):
    client.post("/api/v1/referrals", json=stroke_payload(), headers=bearer(REFERRER))
    second = client.post("/api/v1/referrals", json=stroke_payload(separate_referral=True),
                         headers=bearer(REFERRER))
    assert second.status_code == 201
    assert count() == 2
    odd = client.post("/api/v1/referrals", json=stroke_payload(separate_referral="yes"),
                      headers=bearer(REFERRER))
    assert odd.status_code == 422
    assert odd.json["errors"] == {"separate_referral": "true or false."}
    assert count() == 2


def test_the_form_and_the_api_share_one_hold(client, network):
    """A referral raised by the API holds the form's second one, and the other way."""
    first = client.post("/api/v1/referrals", json=stroke_payload(), headers=bearer(REFERRER))
    page = client.application.test_client()
    assert page.login(REFERRER, DEMO_PASSWORD).status_code == 302
    held = page.post("/referrals/new", data=stroke_form())
    assert held.status_code == 409
    assert f'href="/referrals/{first.json["id"]}"' in held.get_data(as_text=True)
    assert count() == 1
