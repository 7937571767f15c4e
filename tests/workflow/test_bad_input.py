"""Bad API input: a 422 naming each bad field, and nothing stored half-way."""

from __future__ import annotations

import json

import pytest

from models import Decision, Referral, ReferralEvent
from tests.workflow.helpers import (
    AUDIT,
    OTHER_REFERRER,
    REFERRER,
    STROKE_SPECIALISTS,
    bearer,
    count,
    stroke_form,
    stroke_payload,
    user,
)
from workflow.referrals import actions as referrals
from workflow.referrals import nhs_number

# The suite's night, with the clock running.
pytestmark = pytest.mark.clock(tick=True)


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
def api(network, client):
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


def _trauma(**clinical):
    return stroke_payload(specialty="major_trauma", question="Accept for the major trauma centre?",
                          clinical=clinical)


MISSING_SPECIALTY_FIELDS = {
    "major_trauma": (_trauma(), {
        "clinical.age": "Enter the age (ATMIST A) (0–125).", "clinical.mechanism":
        "Enter the mechanism.", "clinical.injuries": "Enter the injuries.",
        "clinical.gcs": "Enter the GCS (3–15)."}),
    "spinal": (stroke_payload(specialty="spinal", clinical={}), {
        "clinical.level": "Enter the spinal level.",
        "clinical.neurology": "Enter the neurology."}),
    "vascular": (stroke_payload(specialty="vascular", clinical={}), {
        "clinical.diagnosis": "Enter the diagnosis.",
        "clinical.haemodynamics": "Choose the haemodynamics: stable, unstable."}),
    "stroke": (stroke_payload(clinical={}), {
        "clinical.nihss": "Enter the NIHSS (0–42).",
        "clinical.pre_stroke_mrs": "Enter the pre-stroke mRS (0–5).",
        "clinical.anticoagulant": "Choose the anticoagulant: none, warfarin, apixaban, "
                                  "rivaroxaban, edoxaban, dabigatran, heparin, other, unknown.",
        "clinical.thrombolysis_given": "Say whether thrombolysis given (yes or no).",
        "clinical.imaging": "List the imaging done: CT, CTA, CTP, MRI."}),
}


@pytest.mark.parametrize("specialty", list(MISSING_SPECIALTY_FIELDS))
def test_each_missing_specialty_field_is_named(api, specialty):
    payload, expected = MISSING_SPECIALTY_FIELDS[specialty]
    before = (count(Referral), count(ReferralEvent), count(Decision))
    response = api.post("/api/v1/referrals", json=payload, headers=bearer(REFERRER))
    assert response.status_code == 422, response.json
    assert response.json["errors"] == expected
    _nothing_stored(before)


def test_a_trauma_referral_keeps_every_atmist_field_eta_and_requirements(api):
    atmist = {"age": 34, "time_of_injury": "2026-11-29T01:10", "mechanism": "Motorbike v car",
              "injuries": "Open femur fracture", "gcs": 9, "heart_rate": 128, "systolic_bp": 85,
              "resp_rate": 28, "spo2": 91, "treatment": "TXA, pelvic binder",
              "eta_minutes": 25, "requirements": "Trauma team, CT on arrival"}
    response = api.post("/api/v1/referrals", json=_trauma(**atmist), headers=bearer(REFERRER))
    assert response.status_code == 201, response.json
    assert response.json["clinical"] == {**atmist, "time_of_injury": "2026-11-29T01:10:00+00:00"}


@pytest.mark.parametrize("payload, field, words", [
    (stroke_payload(patient=_patient(family_name="x" * 101)), "patient.family_name",
     "101 characters; the most is 100"),
    (_trauma(age=34, mechanism="m" * 1001, injuries="Femur", gcs=9), "clinical.mechanism",
     "1001 characters; the most is 1000"),
    (stroke_payload(specialty="spinal", clinical={"level": "Z9", "neurology": "Weak legs"}),
     "clinical.level", "like C5, T12 or L1-L2"),
    (_trauma(age=34, mechanism="m", injuries="i", gcs=2), "clinical.gcs", "from 3 to 15, not 2"),
    (stroke_payload(hub="LRI"), "hub", "LRI is not a Stroke (hyperacute) hub."),
])
def test_over_long_or_out_of_range_specialty_text_is_named(api, payload, field, words):
    before = (count(Referral), count(ReferralEvent), count(Decision))
    response = api.post("/api/v1/referrals", json=payload, headers=bearer(REFERRER))
    assert response.status_code == 422, response.json
    assert words in response.json["errors"][field], response.json
    _nothing_stored(before)


# Bodies a JSON client can send that no form would: each must be a 422 naming the field,
# never a 500 (they once raised TypeError, OverflowError and UnicodeEncodeError).
MALFORMED = {
    "hospital as a list": (stroke_payload(referring_hospital=["PIL"]), "referring_hospital",
                           "must be a code"),
    "hub as an object": (stroke_payload(hub={"code": "QMC"}), "hub", "must be a code"),
    "onset in year 9999 west of Greenwich": (
        stroke_payload(onset_at="9999-12-31T23:59:59-01:00"), "onset_at", "not a date"),
    "arrival in year 1 east of Greenwich": (
        stroke_payload(arrived_at="0001-01-01T00:00:00+01:00"), "arrived_at", "not a date"),
    "NHS number in Arabic-Indic digits": (
        stroke_payload(patient=_patient(nhs_number="٩٤٣٤٧٦٥٩١٩")), "patient.nhs_number",
        "10 digits"),
}


@pytest.mark.parametrize("case", list(MALFORMED))
def test_a_malformed_json_value_is_a_422_not_a_server_error(api, case):
    payload, field, words = MALFORMED[case]
    before = (count(Referral), count(ReferralEvent), count(Decision))
    response = api.post("/api/v1/referrals", json=payload, headers=bearer(REFERRER))
    assert response.status_code == 422, response.get_data(as_text=True)[:300]
    assert words in response.json["errors"][field], response.json
    _nothing_stored(before)


def test_a_lone_surrogate_in_free_text_is_a_422_not_a_server_error(api):
    # json.dumps escapes it as \ud800; Python decodes that to a str no database stores.
    body = json.dumps(stroke_payload(question="QUESTION")).replace("QUESTION", "\\ud800 LVO?")
    before = (count(Referral), count(ReferralEvent), count(Decision))
    response = api.post("/api/v1/referrals", data=body.encode(),
                        headers={**bearer(REFERRER), "Content-Type": "application/json"})
    assert response.status_code == 422, response.get_data(as_text=True)[:300]
    assert "broken character" in response.json["errors"]["question"]
    _nothing_stored(before)
    rid, specialist = _under_review(api)
    before = (count(Referral), count(ReferralEvent), count(Decision))
    response = api.post(f"/api/v1/referrals/{rid}/messages", data=b'{"text": "\\udfff"}',
                        headers={**specialist, "Content-Type": "application/json"})
    assert response.status_code == 422
    assert "broken character" in response.json["errors"]["text"]
    _nothing_stored(before)


@pytest.mark.parametrize("body, field, words", [
    ({"outcome": "transfer", "destination_hospital": ["QMC"], "rationale": "LVO"},
     "destination_hospital", "must be a code"),
    ({"outcome": "advice_only", "advice": "a" * 4001, "rationale": "Mimic"}, "advice",
     "4001 characters"),
    ({"outcome": "advice_only", "advice": "Aspirin", "rationale": "r" * 4001}, "rationale",
     "4001 characters"),
])
def test_a_malformed_or_over_long_decision_is_named(api, body, field, words):
    rid, specialist = _under_review(api)
    before = (count(Referral), count(ReferralEvent), count(Decision))
    response = api.post(f"/api/v1/referrals/{rid}/decide", json=body, headers=specialist)
    assert response.status_code == 422, response.get_data(as_text=True)[:300]
    assert words in response.json["errors"][field]
    _nothing_stored(before)


@pytest.mark.parametrize("referral_id", [2**31, 2**63, 10**30])
def test_a_referral_id_too_large_for_the_database_is_404(api, referral_id):
    headers = bearer(AUDIT)
    assert api.get(f"/api/v1/referrals/{referral_id}", headers=headers).status_code == 404
    response = api.post(f"/api/v1/referrals/{referral_id}/cancel", json={"reason": "x"},
                        headers=bearer(REFERRER))
    assert response.status_code == 404, response.get_data(as_text=True)[:300]
    api.login(AUDIT, "goldenhour-demo")
    assert api.get(f"/referrals/{referral_id}").status_code == 404


def test_a_nul_or_broken_character_anywhere_in_a_json_body_is_named(api):
    """Schemathesis found a NUL in the study-link body a 500 on PostgreSQL."""
    rid, specialist = _under_review(api)
    before = (count(Referral), count(ReferralEvent), count(Decision))
    body = b'{"study_uids": ["1.2.3"], "hospital": "PIL\\u0000", "x": [{"\\ud800": 1}]}'
    response = api.post(f"/api/v1/referrals/{rid}/studies", data=body,
                        headers={**specialist, "Content-Type": "application/json"})
    assert response.status_code == 422
    assert response.get_json()["errors"] == {
        "hospital": "This field contains a NUL character.",
        "x.0.\\ud800": "This field contains a broken character (a lone surrogate)."}
    _nothing_stored(before)


def test_a_nul_character_in_a_query_or_form_field_is_named_not_a_server_error(api):
    """PostgreSQL refuses NUL in text outright; schemathesis found the study search 500."""
    headers = bearer(REFERRER)
    response = api.get("/api/v1/studies?nhs_number=9434765919&hospital=Q%00MC",
                       headers=headers)
    assert response.status_code == 422
    assert response.get_json()["errors"] == {"hospital": "This field contains a NUL character."}
    before = (count(Referral), count(ReferralEvent), count(Decision))
    api.login(REFERRER)
    page = api.post("/referrals/new", data=stroke_form(**{"patient.family_name": "Sm\x00ith"}))
    assert page.status_code == 422
    assert "patient.family_name: This field contains a NUL character." in page.get_data(
        as_text=True)
    _nothing_stored(before)
