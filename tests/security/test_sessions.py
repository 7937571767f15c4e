"""A request is signed in by a valid API token or by a live session, never by the mere
presence of an Authorization header. An ended session (sign-out, a password reset,
deactivation, idle time) stays ended, on the pages and on the JSON API alike."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from extensions import db
from models import AccessLog
from tests.workflow.helpers import REFERRER, STROKE_SPECIALISTS, event_kinds, stroke_payload, user
from workflow.accounts import accounts
from workflow.referrals import actions as referrals
from workflow.seed import DEMO_PASSWORD

pytestmark = pytest.mark.clock  # the suite's night, frozen: idle time moves by clock.shift

# What a client may send besides the stolen cookie. None of these is a valid token.
JUNK_HEADERS = {
    "no header": {},
    "a junk header": {"Authorization": "x"},
    "a proxy's Basic credentials": {"Authorization": "Basic cm9ndWU6cm9ndWU="},
    "a junk bearer token": {"Authorization": "Bearer junk"},
    "an empty bearer token": {"Authorization": "Bearer "},
}


@pytest.fixture
def referral_id(network):
    return referrals.raise_referral(user(REFERRER), stroke_payload()).id


@pytest.fixture
def signed_in(app, referral_id):
    """The referrer signed in: their client, the cookie and the CSRF token an attacker
    would copy from it."""
    browser = app.test_client()
    assert browser.login(REFERRER, DEMO_PASSWORD).status_code == 302
    assert browser.get(f"/referrals/{referral_id}").status_code == 200
    token = browser.fetch_csrf_token()
    return browser, browser.get_cookie("goldenhour_session").value, token


def _sign_out(browser, clock):
    assert browser.logout().status_code == 302


def _sign_out_on_another_device(browser, clock):
    phone = browser.application.test_client()
    assert phone.login(REFERRER, DEMO_PASSWORD).status_code == 302
    assert phone.logout().status_code == 302


def _admin_resets_the_password(browser, clock):
    accounts.set_password(user(REFERRER), "a brand new password")


def _deactivated(browser, clock):
    accounts.set_active(user(REFERRER), False)


def _idle_past_the_timeout(browser, clock):
    clock.shift(timedelta(minutes=31))


ENDINGS = {
    "signed out": _sign_out,
    "signed out on another device": _sign_out_on_another_device,
    "password reset": _admin_resets_the_password,
    "deactivated": _deactivated,
    "idle for 31 minutes": _idle_past_the_timeout,
}


def _replayer(app, cookie):
    attacker = app.test_client()
    attacker.set_cookie("goldenhour_session", cookie)
    return attacker


@pytest.mark.parametrize("extra", list(JUNK_HEADERS))
@pytest.mark.parametrize("ending", list(ENDINGS))
def test_an_ended_session_opens_no_page_whatever_header_comes_with_it(
        app, signed_in, referral_id, clock, ending, extra):
    browser, cookie, _ = signed_in
    ENDINGS[ending](browser, clock)
    response = _replayer(app, cookie).get(f"/referrals/{referral_id}",
                                          headers=JUNK_HEADERS[extra])
    assert response.status_code in (302, 401), response.status_code
    if response.status_code == 302:
        assert response.location.startswith("/login")
    assert "Ann" not in response.get_data(as_text=True)  # the patient's name


@pytest.mark.parametrize("extra", list(JUNK_HEADERS))
@pytest.mark.parametrize("ending", list(ENDINGS))
def test_an_ended_session_posts_nothing_through_the_api_whatever_header_comes_with_it(
        app, signed_in, referral_id, clock, ending, extra):
    browser, cookie, csrf_token = signed_in
    ENDINGS[ending](browser, clock)
    response = _replayer(app, cookie).post(
        f"/api/v1/referrals/{referral_id}/messages", json={"text": "forged"}, csrf=False,
        headers={"X-CSRFToken": csrf_token, **JUNK_HEADERS[extra]})
    assert response.status_code == 401, response.json
    assert "message" not in event_kinds(referral_id)


@pytest.mark.parametrize("extra", ["a junk bearer token", "an empty bearer token"])
def test_a_bad_bearer_token_is_refused_even_with_a_live_session(app, signed_in, referral_id,
                                                                extra):
    browser, _, csrf_token = signed_in
    headers = JUNK_HEADERS[extra]
    page = browser.get(f"/referrals/{referral_id}", headers=headers)
    assert page.status_code == 401
    api = browser.post(f"/api/v1/referrals/{referral_id}/messages", json={"text": "hello"},
                       headers={"X-CSRFToken": csrf_token, **headers})
    assert api.status_code == 401
    assert "token" in api.json["error"]
    assert "message" not in event_kinds(referral_id)
    # The session itself is still good without the bad header.
    assert browser.get(f"/referrals/{referral_id}").status_code == 200


def test_a_proxys_basic_header_leaves_the_session_a_session_with_csrf_and_idle_expiry(
        app, signed_in, referral_id, clock):
    browser, _, csrf_token = signed_in
    basic = JUNK_HEADERS["a proxy's Basic credentials"]
    assert browser.get(f"/referrals/{referral_id}", headers=basic).status_code == 200
    forged = browser.post(f"/api/v1/referrals/{referral_id}/messages", json={"text": "x"},
                          csrf=False, headers=basic)
    assert forged.status_code == 400
    assert "security token" in forged.json["error"]
    sent = browser.post(f"/api/v1/referrals/{referral_id}/messages", json={"text": "hello"},
                        csrf=False, headers={"X-CSRFToken": csrf_token, **basic})
    assert sent.status_code == 200, sent.json
    assert event_kinds(referral_id).count("message") == 1
    clock.shift(timedelta(minutes=31))
    assert browser.get(f"/referrals/{referral_id}", headers=basic).status_code == 302


def test_a_valid_token_acts_as_its_owner_without_csrf_and_ignores_the_cookie(
        app, signed_in, referral_id):
    """The referrer's old cookie rides along; the token says who is asking."""
    browser, cookie, _ = signed_in
    browser.logout()
    token = accounts.issue_token(STROKE_SPECIALISTS[0])
    response = _replayer(app, cookie).post(
        f"/api/v1/referrals/{referral_id}/messages", json={"text": "From the hub"}, csrf=False,
        headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200, response.json
    assert response.json["events"][-1]["actor"] == user(STROKE_SPECIALISTS[0]).name


def test_a_token_revoked_is_refused_even_with_a_live_session(app, signed_in, referral_id):
    browser, _, csrf_token = signed_in
    token = accounts.issue_token(REFERRER)
    accounts.revoke_tokens(REFERRER)
    response = browser.post(f"/api/v1/referrals/{referral_id}/messages", json={"text": "x"},
                            headers={"X-CSRFToken": csrf_token,
                                     "Authorization": f"Bearer {token}"})
    assert response.status_code == 401
    assert "message" not in event_kinds(referral_id)


def test_signing_out_ends_every_session_of_the_user_and_logs_it(app, referral_id):
    laptop, phone = app.test_client(), app.test_client()
    laptop.login(REFERRER, DEMO_PASSWORD)
    phone.login(REFERRER, DEMO_PASSWORD)
    assert phone.get(f"/referrals/{referral_id}").status_code == 200
    laptop.logout()
    assert phone.get(f"/referrals/{referral_id}").location.startswith("/login")
    rows = db.session.scalars(select(AccessLog).where(AccessLog.action == "logout")).all()
    assert [(r.outcome, r.email) for r in rows] == [("ok", REFERRER)]
