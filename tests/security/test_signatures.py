"""A decision and an addendum are signed with the decider's own password, re-entered,
whatever the client: the web form, a session on the JSON API or an API token. The
workflow refuses an unsigned one, so no client can skip the signature."""

from __future__ import annotations

import jsonschema
import pytest
from sqlalchemy import func, select

from extensions import db
from models import AccessLog, Decision, Referral
from tests.workflow.helpers import (
    REFERRER,
    STROKE_SPECIALISTS,
    bearer,
    event_kinds,
    stroke_payload,
    user,
)
from views.openapi import openapi_document
from workflow.accounts import accounts
from workflow.errors import ValidationFailed
from workflow.referrals import actions as referrals
from workflow.seed import DEMO_PASSWORD

pytestmark = pytest.mark.clock

NIGHT = STROKE_SPECIALISTS[0]
DECISION = {"outcome": "transfer", "destination_hospital": "QMC", "destination_unit": "HASU",
            "rationale": "M1 occlusion: thrombectomy"}
SIGNED = {"password": DEMO_PASSWORD}
ASK_DECISION = "Enter your password to sign the decision."
ASK_ADDENDUM = "Enter your password to sign the addendum."
WRONG = "That password is not right"


@pytest.fixture
def referral_id(network):
    rid = referrals.raise_referral(user(REFERRER), stroke_payload()).id
    referrals.acknowledge(rid, user(NIGHT))
    return rid


@pytest.fixture
def decided_id(referral_id):
    referrals.decide(referral_id, user(NIGHT), {**DECISION, "signature": SIGNED})
    return referral_id


@pytest.fixture
def session_client(app, network):
    """The night registrar signed in, sending the CSRF header like the page does."""
    browser = app.test_client()
    assert browser.login(NIGHT, DEMO_PASSWORD).status_code == 302
    return browser


@pytest.fixture(params=["session", "token"])
def api(request, app, network):
    """(client, headers) for the JSON API, by cookie session or by API token."""
    if request.param == "session":
        return request.getfixturevalue("session_client"), {}
    return app.test_client(), bearer(NIGHT)


def _decisions() -> int:
    db.session.expire_all()
    return db.session.scalar(select(func.count()).select_from(Decision))


UNSIGNED = {
    "no signature": {},
    "a null signature": {"signature": None},
    "an empty password": {"signature": {"password": ""}},
    "a string, not an object": {"signature": DEMO_PASSWORD},
    "a number for a password": {"signature": {"password": 12345}},
}


@pytest.mark.parametrize("unsigned", list(UNSIGNED))
def test_an_unsigned_decision_is_refused_through_the_api(api, referral_id, unsigned):
    client, headers = api
    response = client.post(f"/api/v1/referrals/{referral_id}/decide",
                           json={**DECISION, **UNSIGNED[unsigned]}, headers=headers)
    assert response.status_code == 422, response.json
    assert response.json["errors"] == {"signature.password": ASK_DECISION}
    assert _decisions() == 0
    assert db.session.get(Referral, referral_id).state == "under_review"


def test_an_unsigned_decision_names_the_signature_with_the_other_bad_fields(api, referral_id):
    client, headers = api
    response = client.post(f"/api/v1/referrals/{referral_id}/decide",
                           json={"outcome": "transfer"}, headers=headers)
    assert response.status_code == 422
    assert response.json["errors"]["signature.password"] == ASK_DECISION
    assert "rationale" in response.json["errors"]
    assert "destination_hospital" in response.json["errors"]


def test_a_wrong_password_signs_nothing_and_is_logged(api, referral_id):
    client, headers = api
    response = client.post(f"/api/v1/referrals/{referral_id}/decide",
                           json={**DECISION, "signature": {"password": "not my password"}},
                           headers=headers)
    assert response.status_code == 422
    assert response.json["errors"]["signature.password"].startswith(WRONG)
    assert "not my password" not in response.get_data(as_text=True)
    assert _decisions() == 0
    row = db.session.scalars(select(AccessLog).where(
        AccessLog.action == "referral.decide").order_by(AccessLog.id.desc())).first()
    assert (row.outcome, row.email, row.referral_id) == ("denied", NIGHT, referral_id)
    assert "signature" in row.detail


def test_a_colleagues_password_does_not_sign_for_the_decider(api, referral_id):
    client, headers = api
    accounts.set_password(user(STROKE_SPECIALISTS[2]), "the consultant's own password")
    response = client.post(f"/api/v1/referrals/{referral_id}/decide",
                           json={**DECISION,
                                 "signature": {"password": "the consultant's own password"}},
                           headers=headers)
    assert response.status_code == 422
    assert _decisions() == 0


def test_a_decision_signed_with_the_password_is_recorded_as_signed_by_password(api,
                                                                              referral_id):
    client, headers = api
    response = client.post(f"/api/v1/referrals/{referral_id}/decide",
                           json={**DECISION, "signature": SIGNED}, headers=headers)
    assert response.status_code == 200, response.json
    decision = db.session.scalar(select(Decision).where(Decision.referral_id == referral_id))
    assert decision.signed_with == "password"
    assert response.json["events"][-1]["data"]["signed_with"] == "password"
    assert DEMO_PASSWORD not in response.get_data(as_text=True)


@pytest.mark.parametrize("unsigned", list(UNSIGNED))
def test_an_unsigned_addendum_is_refused_through_the_api(api, decided_id, unsigned):
    client, headers = api
    response = client.post(f"/api/v1/referrals/{decided_id}/addendum",
                           json={"text": "Also give aspirin.", **UNSIGNED[unsigned]},
                           headers=headers)
    assert response.status_code == 422, response.json
    assert response.json["errors"] == {"signature.password": ASK_ADDENDUM}
    assert "addendum" not in event_kinds(decided_id)


def test_a_signed_addendum_is_recorded(api, decided_id):
    client, headers = api
    wrong = client.post(f"/api/v1/referrals/{decided_id}/addendum",
                        json={"text": "Also give aspirin.", "signature": {"password": "nope"}},
                        headers=headers)
    assert wrong.status_code == 422
    assert wrong.json["errors"]["signature.password"].startswith(WRONG)
    response = client.post(f"/api/v1/referrals/{decided_id}/addendum",
                           json={"text": "Also give aspirin.", "signature": SIGNED},
                           headers=headers)
    assert response.status_code == 200, response.json
    assert response.json["events"][-1]["kind"] == "addendum"
    assert response.json["events"][-1]["data"]["signed_with"] == "password"


def test_the_workflow_itself_refuses_an_unsigned_decision_and_addendum(referral_id):
    with pytest.raises(ValidationFailed) as refused:
        referrals.decide(referral_id, user(NIGHT), DECISION)
    assert refused.value.errors == {"signature.password": ASK_DECISION}
    db.session.rollback()
    referrals.decide(referral_id, user(NIGHT), {**DECISION, "signature": SIGNED})
    with pytest.raises(ValidationFailed) as refused:
        referrals.add_addendum(referral_id, user(NIGHT), {"text": "Also give aspirin."})
    assert refused.value.errors == {"signature.password": ASK_ADDENDUM}


def test_the_addendum_form_asks_for_the_password(session_client, decided_id):
    url = f"/referrals/{decided_id}"
    page = session_client.get(url).get_data(as_text=True)
    assert 'id="f-addendum-password"' in page
    unsigned = session_client.post(f"{url}/addendum", data={"text": "Also give aspirin."})
    assert unsigned.status_code == 422
    assert ASK_ADDENDUM in unsigned.get_data(as_text=True)
    assert "addendum" not in event_kinds(decided_id)
    signed = session_client.post(f"{url}/addendum", data={"text": "Also give aspirin.",
                                                          "password": DEMO_PASSWORD})
    assert signed.status_code == 302
    assert "addendum" in event_kinds(decided_id)


@pytest.mark.parametrize(("action", "body"), [
    ("decide", DECISION),
    ("addendum", {"text": "Also give aspirin."}),
])
def test_the_api_document_requires_the_signature(action, body):
    document = openapi_document()
    operation = document["paths"][f"/api/v1/referrals/{{referral_id}}/{action}"]["post"]
    assert operation["requestBody"]["required"] is True
    schema = operation["requestBody"]["content"]["application/json"]["schema"]
    validator = jsonschema.Draft202012Validator(
        {**schema, "components": document["components"]})
    assert validator.is_valid({**body, "signature": SIGNED})
    assert not validator.is_valid(body)
    assert not validator.is_valid({**body, "signature": {}})


def test_wrong_signatures_are_throttled_and_the_right_password_then_waits(
        api, referral_id, time_machine):
    """A stolen session cannot guess the password by signing again and again: after
    LOGIN_MAX_FAILURES (5) refused signatures the next try is refused unchecked (429,
    naming the field), the right password too, until the wait (30 s) is over; the
    throttled tries do not lengthen it."""
    client, headers = api
    wrong = {**DECISION, "signature": {"password": "guess"}}
    for _ in range(5):
        answer = client.post(f"/api/v1/referrals/{referral_id}/decide", json=wrong,
                             headers=headers)
        assert answer.status_code == 422
        assert WRONG in answer.json["errors"]["signature.password"]
    for body in (wrong, {**DECISION, "signature": SIGNED}):
        answer = client.post(f"/api/v1/referrals/{referral_id}/decide", json=body,
                             headers=headers)
        assert answer.status_code == 429
        assert "Too many wrong signatures" in answer.json["errors"]["signature.password"]
    assert _decisions() == 0
    time_machine.shift(31)
    answer = client.post(f"/api/v1/referrals/{referral_id}/decide",
                         json={**DECISION, "signature": SIGNED}, headers=headers)
    assert answer.status_code == 200, answer.json
    assert _decisions() == 1
    db.session.expire_all()
    rows = db.session.scalars(select(AccessLog.detail).where(
        AccessLog.action == "referral.decide", AccessLog.outcome == "denied")).all()
    assert [row.split(":")[0] for row in rows] == ["signature refused"] * 5 + [
        "signing throttled"] * 2


def test_a_signed_action_forgives_earlier_wrong_signatures(api, referral_id):
    client, headers = api
    wrong = {**DECISION, "signature": {"password": "guess"}}
    for _ in range(4):
        assert client.post(f"/api/v1/referrals/{referral_id}/decide", json=wrong,
                           headers=headers).status_code == 422
    assert client.post(f"/api/v1/referrals/{referral_id}/decide",
                       json={**DECISION, "signature": SIGNED},
                       headers=headers).status_code == 200
    addendum = {"text": "CTA reviewed", "signature": {"password": "guess"}}
    for _ in range(4):
        assert client.post(f"/api/v1/referrals/{referral_id}/addendum", json=addendum,
                           headers=headers).status_code == 422
    assert client.post(f"/api/v1/referrals/{referral_id}/addendum",
                       json={**addendum, "signature": SIGNED},
                       headers=headers).status_code == 200
