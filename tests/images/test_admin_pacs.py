"""Admin: PACS endpoints page, settings, test connection, status page."""

from __future__ import annotations

import pytest

from extensions import db
from models import PacsEndpoint
from workflow.imaging import sealing

pytestmark = pytest.mark.orthanc
ADMIN = "admin@em.demo.nhs.uk"


def test_an_admin_tests_a_pacs_connection_and_sees_its_status(pilgrim, client):
    client.login(ADMIN, "goldenhour-demo")
    answer = client.post("/admin/pacs/PIL/test", follow_redirects=True)
    page = answer.get_data(as_text=True)
    assert "Pilgrim Hospital PACS answered in" in page
    db.session.expire_all()
    endpoint = db.session.query(PacsEndpoint).one()
    assert endpoint.last_success_at is not None and endpoint.last_latency_ms is not None
    status = client.get("/admin/status").get_data(as_text=True)
    assert "Pilgrim Hospital PACS" in status and "answering" in status


def test_a_stopped_pacs_shows_as_failing(pilgrim, client):
    pilgrim.stop()
    client.login(ADMIN, "goldenhour-demo")
    page = client.post("/admin/pacs/PIL/test", follow_redirects=True).get_data(as_text=True)
    assert "Pilgrim Hospital PACS test failed: Pilgrim Hospital PACS did not answer" in page
    assert "failing" in client.get("/admin/status").get_data(as_text=True)


def test_endpoint_settings_are_checked_and_the_secret_never_shown(pilgrim, client):
    client.login(ADMIN, "goldenhour-demo")
    bad = client.post("/admin/pacs/PIL", data={"base_url": "ftp://x", "auth_type": "basic",
                                               "timeout_seconds": "99",
                                               "viewer_url_template": "https://v/"})
    assert bad.status_code == 422
    text = bad.get_data(as_text=True)
    assert "must start with http" in text and "{study_uid}" in text and "0.5 to 30" in text
    ok = client.post("/admin/pacs/PIL", data={
        "base_url": pilgrim.base_url, "auth_type": "basic", "username": "goldenhour",
        "timeout_seconds": "3", "viewer_url_template": "https://v/view?s={study_uid}"})
    assert ok.status_code == 302
    form = client.get("/admin/pacs/PIL").get_data(as_text=True)
    assert "test-pacs-password" not in form and "leave blank to keep it" in form
    db.session.expire_all()
    stored = db.session.query(PacsEndpoint).one().secret  # kept, since the field was blank
    assert sealing.unseal(stored, hospital="PIL") == "test-pacs-password"
