"""The request log never carries an NHS number or a patient id from a query string."""

from __future__ import annotations

import logging
import threading

import pytest
import requests
from werkzeug.serving import make_server

from tests.workflow.helpers import REFERRER, bearer

NHS = "9434765919"
SECRETS = (NHS, "943 476 5919", "943%20476%205919", "943+476+5919", "PIL123", "QMNx85rKkkg")


@pytest.fixture
def server(network):
    running = make_server("127.0.0.1", 0, network, threaded=True)
    thread = threading.Thread(target=running.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{running.server_port}"
    running.shutdown()
    thread.join(5)
    running.server_close()


def test_the_development_servers_request_lines_hide_patient_ids(server, caplog):
    headers = bearer(REFERRER)
    caplog.set_level(logging.INFO, logger="werkzeug")
    raising = "reason=raising_referral&"
    for query in (f"{raising}local_number=PIL123&nhs_number={NHS}",
                  f"{raising}nhs_number=943%20476%205919",
                  f"{raising}local_number=QMNx85rKkkg&nhs_number={NHS}&accession=A1",
                  f"{raising}hospital=PIL&nhs_number=943+476+5919"):
        answer = requests.get(f"{server}/api/v1/studies?{query}", headers=headers, timeout=10)
        assert answer.status_code == 200, answer.text[:200]
    requests.get(f"{server}/referrals/new?patient.local_number=PIL123", timeout=10)
    requests.get(f"{server}/nowhere/{NHS}", timeout=10)
    lines = [r.getMessage() for r in caplog.records if r.name == "werkzeug"]
    assert len([line for line in lines if "/api/v1/studies?" in line]) == 4, lines
    assert any("local_number=[hidden]&nhs_number=[hidden] HTTP/1.1" in line for line in lines)
    assert any("accession=A1" in line for line in lines)  # not a patient id: kept
    assert any("/nowhere/[hidden]" in line for line in lines)
    for secret in SECRETS:
        assert secret not in caplog.text, secret


def test_the_production_servers_access_log_hides_them_too(app, caplog):
    caplog.set_level(logging.INFO, logger="gunicorn.access")
    # gunicorn logs its access line with a dict of atoms as the argument.
    logging.getLogger("gunicorn.access").info(
        '%(h)s "%(r)s" %(s)s', {"h": "10.0.0.1", "s": "200",
                                "r": f"GET /api/v1/studies?local_number=PIL123&nhs_number={NHS}"
                                     " HTTP/1.1"})
    assert caplog.records[-1].getMessage() == (
        '10.0.0.1 "GET /api/v1/studies?local_number=[hidden]&nhs_number=[hidden] HTTP/1.1" 200')
