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


def test_log_format_json_writes_one_json_object_per_line_that_text_cannot_break(tmp_path):
    """LOG_FORMAT=json in a fresh process, as gunicorn or the scheduler would start."""
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    script = ("import logging; from app import create_app; create_app(); "
              "log = logging.getLogger('goldenhour.test'); "
              "log.warning('login failed for %s', 'x@nhs.uk\\n2026-11-29 INFO admin granted'); "
              "exec('try:\\n 1/0\\nexcept ZeroDivisionError:\\n log.exception(\"sweep failed\")')")
    env = {**os.environ, "LOG_FORMAT": "json", "GOLDENHOUR_ENV": "development",
           "DATABASE_URL": f"sqlite:///{tmp_path / 'gh.sqlite3'}",
           "SECRET_KEY": "a-secret-key-for-this-test-only-0123456789"}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          env=env, cwd=Path(__file__).resolve().parents[2], timeout=60)
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stderr.splitlines()]
    forged, failed = lines[-2], lines[-1]
    assert forged["message"] == "login failed for x@nhs.uk\n2026-11-29 INFO admin granted"
    assert (forged["level"], forged["logger"]) == ("WARNING", "goldenhour.test")
    assert forged["time"].endswith("Z") and forged["process"] > 0
    assert failed["message"] == "sweep failed" and "ZeroDivisionError" in failed["exception"]


def test_an_unknown_log_format_stops_start_up(tmp_path):
    from config import ConfigError, load_config

    with pytest.raises(ConfigError, match="LOG_FORMAT must be text or json, not 'xml'"):
        load_config({"LOG_FORMAT": "xml"}, instance_path=tmp_path)
    assert load_config({}, instance_path=tmp_path)["LOG_FORMAT"] == "text"
