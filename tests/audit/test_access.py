"""Only audit leads reach the audit pages and exports; every refusal is logged."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from extensions import db
from models import AccessLog

DEMO_PASSWORD = "goldenhour-demo"
AUDIT_URLS = ["/audit/", "/audit/export/referrals.csv", "/audit/export/access-log.csv",
              "/audit/export/ssnap.csv", "/audit/export/nmtr.csv"]
NOT_AUDIT = ["referrer@pil.demo.nhs.uk", "stroke.night@qmc.demo.nhs.uk",
             "admin@em.demo.nhs.uk", "duty.manager@qmc.demo.nhs.uk"]


@pytest.mark.parametrize("email", NOT_AUDIT)
@pytest.mark.parametrize("url", AUDIT_URLS)
def test_a_user_without_the_audit_role_is_refused_and_the_refusal_logged(
        network, client, email, url):
    client.login(email, DEMO_PASSWORD)
    response = client.get(url)
    assert response.status_code == 403
    db.session.expire_all()
    denied = db.session.scalars(select(AccessLog).where(AccessLog.outcome == "denied")).all()
    assert [(row.email, row.detail.split(":")[0]) for row in denied] == [
        (email, "needs audit.export" if "export" in url else "needs audit.view")]
    assert "audit_lead" not in denied[0].role


@pytest.mark.parametrize("url", AUDIT_URLS)
def test_an_anonymous_visitor_is_sent_to_sign_in(network, client, url):
    response = client.get(url)
    assert response.status_code == 302
    assert "/login" in response.headers["Location"]


@pytest.mark.parametrize("url", AUDIT_URLS)
def test_the_audit_lead_reaches_every_audit_page(network, client, url):
    client.login("audit@em.demo.nhs.uk", DEMO_PASSWORD)
    # buffered: the test client reads the streamed export inside the request's context
    assert client.get(url, buffered=True).status_code == 200


def test_the_audit_link_is_in_the_navigation_of_audit_leads_only(network, client):
    client.login("audit@em.demo.nhs.uk", DEMO_PASSWORD)
    assert 'href="/audit/"' in client.get("/").get_data(as_text=True)
    client.logout()
    client.login("admin@em.demo.nhs.uk", DEMO_PASSWORD)
    assert 'href="/audit/"' not in client.get("/").get_data(as_text=True)
