"""GET /api/v1/referrals with its filters, and the shape of one referral."""

from __future__ import annotations

import pytest

from tests.workflow.helpers import (
    AUDIT,
    OTHER_REFERRER,
    REFERRER,
    STROKE_SPECIALISTS,
    bearer,
    stroke_payload,
    user,
)
from workflow.referrals import actions as referrals

# The suite's night, with the clock running.
pytestmark = pytest.mark.clock(tick=True)


@pytest.fixture
def three(network):
    """A stroke referral from PIL (accepted), a vascular one from LCH, a stroke one from
    LCH (still submitted)."""
    pil = referrals.raise_referral(user(REFERRER), stroke_payload()).id
    referrals.acknowledge(pil, user(STROKE_SPECIALISTS[0]))
    lch_vascular = referrals.raise_referral(user(OTHER_REFERRER), stroke_payload(
        specialty="vascular", referring_hospital="LCH", question="Leaking AAA?",
        clinical={"diagnosis": "Ruptured AAA", "haemodynamics": "unstable"})).id
    lch_stroke = referrals.raise_referral(user(OTHER_REFERRER), stroke_payload(
        referring_hospital="LCH")).id
    return {"pil": pil, "lch_vascular": lch_vascular, "lch_stroke": lch_stroke}


@pytest.mark.parametrize("query, expected", [
    ("", {"pil", "lch_vascular", "lch_stroke"}),
    ("?state=under_review", {"pil"}),
    ("?state=submitted", {"lch_vascular", "lch_stroke"}),
    ("?specialty=stroke", {"pil", "lch_stroke"}),
    ("?hospital=LCH", {"lch_vascular", "lch_stroke"}),
    ("?specialty=stroke&hospital=LCH", {"lch_stroke"}),
    ("?state=closed", set()),
])
def test_the_list_filters_by_state_specialty_and_referring_hospital(client, three, query,
                                                                    expected):
    response = client.get(f"/api/v1/referrals{query}", headers=bearer(AUDIT))
    assert response.status_code == 200
    assert {r["id"] for r in response.json["referrals"]} == {three[k] for k in expected}


def test_filters_narrow_within_what_the_user_may_see(client, three):
    response = client.get("/api/v1/referrals?specialty=stroke", headers=bearer(REFERRER))
    assert [r["id"] for r in response.json["referrals"]] == [three["pil"]]


@pytest.mark.parametrize("query, field", [("?state=asleep", "state"),
                                          ("?specialty=dermatology", "specialty"),
                                          ("?hospital=XYZ", "hospital")])
def test_an_unknown_filter_value_is_a_422_naming_it(client, three, query, field):
    response = client.get(f"/api/v1/referrals{query}", headers=bearer(AUDIT))
    assert response.status_code == 422
    assert list(response.json["errors"]) == [field]


def test_one_referral_has_its_state_events_clocks_decision_and_studies(client, three):
    rid = three["pil"]
    body = client.get(f"/api/v1/referrals/{rid}", headers=bearer(AUDIT)).json
    assert body["state"] == "under_review"
    assert body["decision"] is None and body["studies"] == []
    assert [(e["seq"], e["kind"], e["from_state"], e["to_state"]) for e in body["events"]] == [
        (1, "raise", None, "submitted"), (2, "acknowledge", "submitted", "under_review")]
    ack = body["events"][1]
    assert ack["actor"] == user(STROKE_SPECIALISTS[0]).name
    assert ack["data"] == {"via": "web"} and ack["at"].endswith("+00:00")
    assert {"since_onset", "since_arrival", "since_referral", "since_acknowledge",
            "windows"} <= set(body["clocks"])
    assert [w["name"] for w in body["clocks"]["windows"]] == [
        "thrombolysis", "thrombectomy", "thrombectomy_extended"]


def test_a_referral_is_handed_over_only_to_a_specialist_of_the_same_service(client, three):
    rid = three["pil"]  # accepted by STROKE_SPECIALISTS[0]
    holder = bearer(STROKE_SPECIALISTS[0])
    for to, words in (("spinal.day@qmc.demo.nhs.uk", "Choose a specialist of this hub"),
                      (user("vascular.day@lri.demo.nhs.uk").id, "Choose a specialist"),
                      (2**40, "Choose a specialist"),
                      (STROKE_SPECIALISTS[0], "already holds this referral")):
        response = client.post(f"/api/v1/referrals/{rid}/hand-over", json={"to": to},
                               headers=holder)
        assert response.status_code == 422, (to, response.json)
        assert words in response.json["errors"]["to"]
    response = client.post(f"/api/v1/referrals/{rid}/hand-over",
                           json={"to": STROKE_SPECIALISTS[2], "note": "Consultant to decide"},
                           headers=holder)
    assert response.status_code == 200, response.json
    colleague = user(STROKE_SPECIALISTS[2])
    assert response.json["assigned_specialist"] == colleague.name
    last = response.json["events"][-1]
    assert (last["kind"], last["from_state"], last["to_state"], last["data"]) == (
        "hand_over", "under_review", "under_review",
        {"to_user_id": colleague.id, "to": colleague.name})
    # The one who handed over no longer holds it: deciding is refused.
    refused = client.post(f"/api/v1/referrals/{rid}/decide", json={}, headers=holder)
    assert refused.status_code == 403
