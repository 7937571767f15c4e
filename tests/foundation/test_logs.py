"""What the app writes to its logs never carries NHS numbers, passwords or tokens."""

import logging

import pytest

from tests.paging.helpers import raise_stroke, run_sweep
from workflow.accounts.accounts import issue_token

NHS = "9434765919"


@pytest.mark.clock(tick=True)
def test_a_busy_night_leaves_no_secrets_in_the_logs(network, client, caplog, clock):
    caplog.set_level(logging.DEBUG)
    token = issue_token("referrer@pil.demo.nhs.uk")
    client.login("referrer@pil.demo.nhs.uk", "wrong-password-here")
    client.login("referrer@pil.demo.nhs.uk", "goldenhour-demo")
    api = {"Authorization": f"Bearer {token}"}
    raise_stroke()
    run_sweep()
    # Refused input is answered, not logged with the patient's details.
    bad = client.post("/api/v1/referrals", json={"patient": {"nhs_number": NHS}},
                      headers=api)
    assert bad.status_code == 422
    client.get("/api/v1/referrals", headers=api)
    forged = "nobody@x.nhs.uk\n2026-11-29 INFO admin granted"
    client.login(forged, "x")
    text = caplog.text
    for secret in (NHS, "943 476 5919", "goldenhour-demo", "wrong-password-here", token):
        assert secret not in text
    assert "admin granted" not in text
