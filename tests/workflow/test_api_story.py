"""The whole story through the API: raise, page sent, accept, ask, answer, decide, transfer."""

import pytest

from tests.workflow.helpers import SIGNED, bearer, stroke_payload
from workflow.referrals import actions as referrals


@pytest.mark.clock(tick=True)
def test_a_stroke_referral_goes_from_raise_to_transfer(network, client, clock):
    referrer = bearer("referrer@pil.demo.nhs.uk")
    specialist = bearer("stroke.night@qmc.demo.nhs.uk")
    created = client.post("/api/v1/referrals", json=stroke_payload(), headers=referrer)
    assert created.status_code == 201, created.json
    rid = created.json["id"]
    assert created.json["state"] == "submitted"
    assert created.json["reference"] == f"EM-2026-{rid:06d}"
    assert created.json["hub"] == "QMC"
    referrals.system_event(rid, "page_sent")

    def act(action, headers, body=None, status=200):
        response = client.post(f"/api/v1/referrals/{rid}/{action}", json=body or {},
                               headers=headers)
        assert response.status_code == status, response.json
        return response.json

    assert act("acknowledge", specialist)["state"] == "under_review"
    act("acknowledge", specialist, status=409)
    assert act("request-info", specialist, {"question": "Any anticoagulant?"})["state"] == \
        "info_requested"
    assert act("provide-info", referrer, {"text": "None."})["state"] == "under_review"
    act("decide", specialist, {"outcome": "transfer"}, status=422)
    decided = act("decide", specialist, {"outcome": "transfer", "destination_hospital": "QMC",
                                         "rationale": "M1 occlusion, thrombectomy", **SIGNED})
    assert decided["decision"]["destination_hospital"] == "QMC"
    assert act("depart", referrer)["state"] == "in_transfer"
    closed = act("arrive", specialist)
    assert closed["state"] == "closed"
    assert [e["kind"] for e in closed["events"]] == [
        "raise", "page_sent", "acknowledge", "request_info", "provide_info", "decide",
        "depart", "arrive"]
    assert closed["clocks"]["door_in_door_out"] is not None
    act("cancel", referrer, {"reason": "too late"}, status=409)
