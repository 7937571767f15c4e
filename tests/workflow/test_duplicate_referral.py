"""A second open referral for the same patient and specialty is not raised by accident:
the form names the open one, links to it, and sends only when told it is separate."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from extensions import db
from models import Referral
from tests.paging.helpers import user
from tests.workflow.helpers import stroke_form
from tests.workflow.test_pages import REFERRER, raise_stroke
from workflow.referrals import actions as referrals
from workflow.seed import DEMO_PASSWORD

pytestmark = pytest.mark.clock


@pytest.fixture
def login(app, network):
    def sign_in(email):
        client = app.test_client()
        assert client.login(email, DEMO_PASSWORD).status_code == 302
        return client

    return sign_in


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
