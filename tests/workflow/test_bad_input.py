"""Bad API input: a 422 naming each bad field, and nothing stored half-way."""

from __future__ import annotations

import pytest

from models import Decision, Referral, ReferralEvent
from tests.workflow.helpers import (
    DEMO_NOW,
    OTHER_REFERRER,
    REFERRER,
    STROKE_SPECIALISTS,
    bearer,
    count,
    stroke_payload,
    user,
)
from workflow import nhs_number, referrals


def _patient(**over):
    return {**stroke_payload()["patient"], **over}


def _clinical(**over):
    return {**stroke_payload()["clinical"], **over}


BAD_REFERRALS = {
    "check digit": (stroke_payload(patient=_patient(nhs_number="943 476 5918")),
                    {"patient.nhs_number": "check digit"}),
    "nine digits": (stroke_payload(patient=_patient(nhs_number="943 476 591")),
                    {"patient.nhs_number": "10 digits"}),
    "onset in the future": (stroke_payload(onset_at="2026-11-29T09:00"),
                            {"onset_at": "in the future"}),
    "onset after arrival": (stroke_payload(onset_at="2026-11-29T02:30"),
                            {"onset_at": "after the arrival"}),
    "birth date in the future": (stroke_payload(patient=_patient(birth_date="2027-01-01")),
                                 {"patient.birth_date": "in the future"}),
    "unknown hospital": (stroke_payload(referring_hospital="XYZ"),
                         {"referring_hospital": "'XYZ'"}),
    "unknown specialty": (stroke_payload(specialty="dermatology"),
                          {"specialty": "'dermatology'"}),
    "missing NIHSS": (stroke_payload(clinical={k: v for k, v in _clinical().items()
                                              if k != "nihss"}),
                      {"clinical.nihss": "NIHSS"}),
    "NIHSS 43": (stroke_payload(clinical=_clinical(nihss=43)), {"clinical.nihss": "not 43"}),
    "question over 4000 characters": (stroke_payload(question="x" * 4001),
                                      {"question": "4001 characters"}),
    "several at once": (stroke_payload(patient=_patient(nhs_number="1"), question=""),
                        {"patient.nhs_number": "10 digits", "question": "Enter"}),
}


@pytest.fixture
def api(network, client, time_machine):
    time_machine.move_to(DEMO_NOW, tick=True)
    return client


def _nothing_stored(before):
    assert (count(Referral), count(ReferralEvent), count(Decision)) == before


@pytest.mark.parametrize("case", list(BAD_REFERRALS))
def test_a_bad_referral_is_refused_with_a_message_per_field(api, case):
    payload, expected = BAD_REFERRALS[case]
    headers = bearer(REFERRER)
    before = (count(Referral), count(ReferralEvent), count(Decision))
    response = api.post("/api/v1/referrals", json=payload, headers=headers)
    assert response.status_code == 422, response.json
    errors = response.json["errors"]
    for field, words in expected.items():
        assert field in errors, errors
        assert words in errors[field], errors
    _nothing_stored(before)


def test_a_referrer_cannot_raise_for_another_hospital(api):
    headers = bearer(OTHER_REFERRER)  # works at LCH; the payload says PIL
    before = (count(Referral), count(ReferralEvent), count(Decision))
    response = api.post("/api/v1/referrals", json=stroke_payload(), headers=headers)
    assert response.status_code == 422
    assert "own hospital (LCH)" in response.json["errors"]["referring_hospital"]
    _nothing_stored(before)


@pytest.mark.parametrize("body", [b"not json", b"[1, 2]", b'"a string"', b""])
def test_a_body_that_is_not_a_json_object_is_refused(api, body):
    headers = {**bearer(REFERRER), "Content-Type": "application/json"}
    before = (count(Referral), count(ReferralEvent), count(Decision))
    response = api.post("/api/v1/referrals", data=body, headers=headers)
    assert response.status_code == 422, response.get_data(as_text=True)
    assert "" in response.json["errors"]
    _nothing_stored(before)


def _under_review(api) -> tuple[int, dict]:
    referral = referrals.raise_referral(user(REFERRER), stroke_payload())
    specialist = bearer(STROKE_SPECIALISTS[0])
    response = api.post(f"/api/v1/referrals/{referral.id}/acknowledge", headers=specialist)
    assert response.status_code == 200
    return referral.id, specialist


@pytest.mark.parametrize("body, field, words", [
    ({"outcome": "treat_locally", "advice": "Aspirin"}, "rationale", "Enter the rationale"),
    ({"outcome": "transfer", "rationale": "LVO"}, "destination_hospital", "destination"),
    ({"outcome": "transfer", "destination_hospital": "XYZ", "rationale": "LVO"},
     "destination_hospital", "'XYZ'"),
    ({"outcome": "maybe", "rationale": "LVO"}, "outcome", "'maybe'"),
])
def test_a_bad_decision_is_refused_and_the_referral_stays_under_review(api, body, field,
                                                                        words):
    rid, specialist = _under_review(api)
    before = (count(Referral), count(ReferralEvent), count(Decision))
    response = api.post(f"/api/v1/referrals/{rid}/decide", json=body, headers=specialist)
    assert response.status_code == 422, response.json
    assert words in response.json["errors"][field]
    _nothing_stored(before)
    assert api.get(f"/api/v1/referrals/{rid}", headers=specialist).json["state"] == \
        "under_review"


def test_a_decide_with_a_body_that_is_not_json_is_refused(api):
    rid, specialist = _under_review(api)
    before = (count(Referral), count(ReferralEvent), count(Decision))
    response = api.post(f"/api/v1/referrals/{rid}/decide", data=b"outcome=transfer",
                        headers={**specialist, "Content-Type": "application/json"})
    assert response.status_code == 422, response.json
    _nothing_stored(before)


SCRIPT = '<script>alert("x")</script><img src=x onerror=alert(1)> & "quotes"'


def test_html_in_free_text_comes_back_as_the_same_text_and_is_escaped_on_pages(api):
    headers = bearer(REFERRER)
    response = api.post("/api/v1/referrals", json=stroke_payload(question=SCRIPT),
                        headers=headers)
    assert response.status_code == 201
    rid = response.json["id"]
    assert api.get(f"/api/v1/referrals/{rid}", headers=headers).json["question"] == SCRIPT
    api.login(REFERRER, "goldenhour-demo")
    page = api.get(f"/referrals/{rid}")
    assert page.status_code == 200
    body = page.get_data(as_text=True)
    assert "<script>alert" not in body and "<img src=x" not in body
    assert "&lt;script&gt;alert(" in body
    for path in ("/referrals/mine", "/worklist"):
        body = api.get(path).get_data(as_text=True)
        assert "<script>alert" not in body and "<img src=x" not in body


@pytest.mark.parametrize("number, valid", [
    ("943 476 5919", True), ("9434765919", True), ("943-476-5919", True),
    ("401 023 2137", True), ("943 476 5918", False), ("943 476 591", False),
    ("94347659190", False), ("abc defghij", False), ("", False),
    ("401 023 2136", False),
    # digits 1-9 give a check of 10: no valid number starts 123 456 789
    ("1234567890", False),
])
def test_the_nhs_number_check(number, valid):
    assert (nhs_number.problem(number) is None) is valid
