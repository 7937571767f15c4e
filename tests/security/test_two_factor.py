"""Two-factor sign-in with an authenticator app (TOTP): set up by a QR code drawn on the
server and confirmed by a first code; then the password alone opens no session, each
code works once and only near its time, wrong codes are slowed like wrong passwords, a
recovery code stands in once, the roles that see the most must set it up before
anything else, an admin can reset it, and decisions are signed with the code.

Every code here is computed from the test's frozen clock, never the wall clock."""

from __future__ import annotations

import hashlib
import html
import re
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, unquote, urlsplit

import pyotp
import pytest
from sqlalchemy import func, select

from config import ConfigError, load_config
from extensions import db
from models import AccessLog, Decision, LoginSession, RecoveryCode, User
from tests.conftest import TEST_PASSWORD
from tests.workflow.helpers import REFERRER, STROKE_SPECIALISTS, stroke_payload, user
from workflow.accounts import accounts, two_factor
from workflow.referrals import actions as referrals
from workflow.seed import DEMO_PASSWORD

pytestmark = pytest.mark.clock  # the suite's night, frozen: a code's step moves by clock.shift

EMAIL = "rhys@pil.nhs.uk"
STEP = timedelta(seconds=30)
REQUIRED = {"REQUIRE_2FA_ROLES": frozenset({"specialist", "audit_lead", "admin"})}


def totp(secret: str, steps: int = 0) -> str:
    """The code an authenticator app shows ``steps`` 30-second steps from the test's clock."""
    return pyotp.TOTP(secret).at(datetime.now(UTC) + steps * STEP)


def wrong(code: str) -> str:
    return f"{(int(code) + 500_000) % 1_000_000:06d}"


def _page(response) -> str:
    return html.unescape(response.get_data(as_text=True))


def _secret_on(page: str) -> str:
    return re.search(r'<code id="totp-secret">([A-Z2-7]{32})</code>', page).group(1)


def _enrol(browser) -> tuple[str, list[str]]:
    """Set up an authenticator from the set-up page: its key and the recovery codes."""
    secret = _secret_on(_page(browser.get("/two-factor/enrol")))
    done = browser.post("/two-factor/enrol", data={"code": totp(secret)})
    assert done.status_code == 200, _page(done)
    browser.csrf_token = None  # a sign-in that finished here renewed the session
    return secret, re.findall(r"<li><code>([a-z0-9]{5}-[a-z0-9]{5})</code></li>", _page(done))


def _second_step(browser, code: str):
    response = browser.post("/login/code", data={"code": code})
    browser.csrf_token = None  # the session was renewed when the code was right
    return response


def _signed_in(browser) -> bool:
    response = browser.get("/")
    assert response.status_code in (200, 302)
    return response.status_code == 200


def _open_sessions(user_id: int) -> int:
    db.session.expire_all()
    return db.session.scalar(select(func.count()).select_from(LoginSession).where(
        LoginSession.user_id == user_id, LoginSession.ended_at.is_(None)))


def _log(*actions: str) -> list[tuple[str, str, str]]:
    db.session.expire_all()
    rows = db.session.scalars(select(AccessLog).where(AccessLog.action.in_(actions))
                              .order_by(AccessLog.id))
    return [(r.action, r.outcome, r.detail) for r in rows]


def _fresh(user_id: int) -> User:
    db.session.expire_all()
    return db.session.get(User, user_id)


@pytest.fixture
def rhys(make_user):
    return make_user(roles=["referrer"], email=EMAIL, name="Rhys")


@pytest.fixture
def enrolled(app, rhys, clock):
    """Rhys has set up an authenticator and signed out, one step after his first code:
    (key, recovery codes)."""
    browser = app.test_client()
    assert browser.login(EMAIL).status_code == 302
    secret, recovery = _enrol(browser)
    browser.logout()
    clock.shift(STEP)
    return secret, recovery


def test_the_set_up_page_shows_a_qr_code_drawn_here_and_the_key_and_turns_nothing_on(
        app, rhys):
    browser = app.test_client()
    browser.login(EMAIL)
    response = browser.get("/two-factor/enrol")
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    page = _page(response)
    secret = _secret_on(page)
    uri = re.search(r'<a href="(otpauth://[^"]+)" id="otpauth-link">', page).group(1)
    parts = urlsplit(uri)
    assert (parts.scheme, parts.netloc, unquote(parts.path)) == (
        "otpauth", "totp", f"/goldenhour:{EMAIL}")
    assert parse_qs(parts.query) == {"secret": [secret], "issuer": ["goldenhour"]}
    raw = response.get_data(as_text=True)
    svg = re.search(r"<svg\b.*?</svg>", raw, re.S).group(0)
    assert svg == two_factor.qr_svg(uri), "the QR code is not the otpauth URI"
    # drawn on the server: no script of its own (the layout's form-focus script is
    # ours, from /static), and nothing from another site
    assert re.findall(r"<script[^>]*>", raw) == [
        '<script src="/static/js/focus-errors.js" defer>']
    assert not re.search(r'\bsrc="(https?:)?//', raw)
    stored = _fresh(rhys.id).totp_secret
    assert stored.startswith("gAAAAA") and secret not in stored, "the key is not encrypted"
    assert _secret_on(_page(browser.get("/two-factor/enrol"))) == secret  # until confirmed
    assert not _fresh(rhys.id).totp_enabled
    browser.logout()
    assert browser.login(EMAIL).location == "/"  # the password alone still signs in


def test_a_wrong_code_turns_nothing_on(app, rhys):
    browser = app.test_client()
    browser.login(EMAIL)
    secret = _secret_on(_page(browser.get("/two-factor/enrol")))
    response = browser.post("/two-factor/enrol", data={"code": wrong(totp(secret))})
    assert response.status_code == 422
    assert two_factor.WRONG_CODE in _page(response)
    assert not _fresh(rhys.id).totp_enabled
    assert db.session.scalar(select(func.count()).select_from(RecoveryCode)) == 0
    assert _log("2fa.enrol") == [("2fa.enrol", "failure", "wrong code")]
    browser.logout()
    assert browser.login(EMAIL).location == "/"


def test_the_first_right_code_turns_it_on_with_ten_recovery_codes_and_the_key_never_shows_again(
        app, rhys):
    browser = app.test_client()
    browser.login(EMAIL)
    secret, recovery = _enrol(browser)
    assert len(set(recovery)) == 10
    assert _fresh(rhys.id).totp_enabled
    assert _log("2fa.enrol") == [("2fa.enrol", "ok", "")]
    hashes = set(db.session.scalars(select(RecoveryCode.code_hash)))
    assert len(hashes) == 10
    plain = {c.replace("-", "") for c in recovery}
    assert not hashes & (plain | set(recovery))
    assert not hashes & {hashlib.sha256(c.encode()).hexdigest() for c in plain}  # keyed
    again = browser.get("/two-factor/enrol")
    assert again.status_code == 302 and again.location == "/two-factor/"
    settings = _page(browser.get(again.location))
    assert "already on" in settings and secret not in settings
    assert "10 of 10 recovery codes" in settings


def test_the_password_alone_opens_no_session_and_the_code_does(app, rhys, enrolled):
    secret, _ = enrolled
    browser = app.test_client()
    response = browser.post("/login?next=/referrals/mine",
                            data={"email": EMAIL, "password": TEST_PASSWORD})
    browser.csrf_token = None
    assert response.status_code == 302 and response.location == "/login/code"
    for url in ("/", "/referrals/mine", "/two-factor/", "/two-factor/enrol", "/admin/users"):
        refused = browser.get(url)
        assert refused.status_code == 302 and refused.location.startswith("/login"), url
    assert browser.get("/api/v1/referrals").status_code == 401
    assert _open_sessions(rhys.id) == 0

    done = _second_step(browser, totp(secret))
    assert done.status_code == 302 and done.location == "/referrals/mine"
    assert _signed_in(browser) and _open_sessions(rhys.id) == 1
    assert _log("login", "login.password")[-2:] == [
        ("login.password", "ok", "password right; authenticator code needed"),
        ("login", "ok", "password and authenticator code")]


def test_a_wrong_code_is_refused_and_logged_as_a_failed_sign_in(app, rhys, enrolled):
    secret, _ = enrolled
    browser = app.test_client()
    browser.login(EMAIL)
    response = _second_step(browser, wrong(totp(secret)))
    assert response.status_code == 401
    assert accounts.CODE_REFUSED in _page(response)
    assert not _signed_in(browser) and _open_sessions(rhys.id) == 0
    assert _log("login")[-1] == ("login", "failure", "bad authenticator code")


def test_a_code_works_once_even_while_it_is_still_inside_its_window(app, rhys, enrolled,
                                                                     clock):
    secret, _ = enrolled
    code = totp(secret)
    first = app.test_client()
    first.login(EMAIL)
    assert _second_step(first, code).status_code == 302
    replay = app.test_client()
    replay.login(EMAIL)
    assert _second_step(replay, code).status_code == 401
    clock.shift(STEP)
    assert totp(secret, -1) == code  # still accepted as the previous step's code...
    assert _second_step(replay, code).status_code == 401  # ...but it was used
    assert not _signed_in(replay) and _open_sessions(rhys.id) == 1
    assert _second_step(replay, totp(secret)).status_code == 302


def test_a_code_is_accepted_one_step_either_side_of_now_and_no_further(app, rhys, enrolled,
                                                                       clock):
    secret, _ = enrolled
    clock.shift(3 * STEP)
    browser = app.test_client()
    browser.login(EMAIL)
    assert _second_step(browser, totp(secret, -2)).status_code == 401  # expired
    assert _second_step(browser, totp(secret, 2)).status_code == 401  # not yet
    assert _second_step(browser, totp(secret, -1)).status_code == 302  # a slow phone


def test_the_half_signed_in_state_lasts_five_minutes(app, rhys, enrolled, clock):
    secret, _ = enrolled
    browser = app.test_client()
    browser.login(EMAIL)
    clock.shift(timedelta(minutes=5, seconds=1))
    expired = _second_step(browser, totp(secret))
    assert expired.status_code == 302 and expired.location == "/login"
    assert "waited too long" in _page(browser.get("/login"))
    assert browser.get("/login/code").location == "/login"
    assert not _signed_in(browser) and _open_sessions(rhys.id) == 0


def test_wrong_codes_are_slowed_with_the_wrong_passwords_and_a_right_password_forgives_none(
        app, rhys, enrolled):
    secret, _ = enrolled
    limit = app.config["LOGIN_MAX_FAILURES"]
    browser = app.test_client()
    browser.login(EMAIL)
    for _ in range(limit - 1):
        assert _second_step(browser, wrong(totp(secret))).status_code == 401
    again = app.test_client()
    assert again.login(EMAIL).location == "/login/code"  # the password is right...
    assert _second_step(again, wrong(totp(secret))).status_code == 401  # ...the count goes on
    refused = _second_step(again, totp(secret))  # even the right code waits now
    assert refused.status_code == 429 and refused.headers["Retry-After"] == "30"
    assert "Too many failed sign-ins" in _page(refused)
    assert app.test_client().login(EMAIL).status_code == 429  # and so does the password
    assert not _signed_in(again) and _open_sessions(rhys.id) == 0


def test_a_recovery_code_signs_in_once_in_place_of_the_authenticator(app, rhys, enrolled):
    _, recovery = enrolled
    browser = app.test_client()
    browser.login(EMAIL)
    assert _second_step(browser, recovery[0]).status_code == 302
    assert _signed_in(browser)
    assert _log("login")[-1] == ("login", "ok", "password and recovery code")
    browser.logout()
    browser.login(EMAIL)
    assert _second_step(browser, recovery[0]).status_code == 401
    assert _log("login")[-1] == ("login", "failure", "bad recovery code")
    assert _second_step(browser, recovery[1].upper().replace("-", " ")).status_code == 302
    assert "8 of 10 recovery codes" in _page(browser.get("/two-factor/"))


def test_new_recovery_codes_need_a_code_and_replace_the_old_ones(app, rhys, enrolled, clock):
    secret, old = enrolled
    browser = app.test_client()
    browser.login(EMAIL)
    assert _second_step(browser, totp(secret)).status_code == 302
    unproven = browser.post("/two-factor/recovery-codes", data={"code": wrong(totp(secret))})
    assert unproven.status_code == 422
    clock.shift(STEP)
    made = browser.post("/two-factor/recovery-codes", data={"code": totp(secret)})
    assert made.status_code == 200 and made.headers["Cache-Control"] == "no-store"
    new = re.findall(r"<li><code>([a-z0-9]{5}-[a-z0-9]{5})</code></li>", _page(made))
    assert len(new) == 10 and not set(new) & set(old)
    assert _log("2fa.recovery_codes") == [("2fa.recovery_codes", "failure", "wrong code"),
                                          ("2fa.recovery_codes", "ok", "")]
    browser.logout()
    browser.login(EMAIL)
    assert _second_step(browser, old[2]).status_code == 401
    assert _second_step(browser, new[0]).status_code == 302


@pytest.mark.parametrize("app_config", [REQUIRED])
def test_a_required_role_sets_up_two_factor_after_the_password_and_reaches_nothing_else(
        app, make_user):
    specialist = make_user(roles=["specialist"], email="stroke.reg@qmc.nhs.uk")
    make_user(roles=["referrer"], email="ref@pil.nhs.uk")
    assert app.test_client().login("ref@pil.nhs.uk").location == "/"  # not required of all
    browser = app.test_client()
    response = browser.login(specialist.email)
    assert response.status_code == 302 and response.location == "/two-factor/enrol"
    for url in ("/", "/worklist", "/referrals/mine", "/two-factor/", "/login/code"):
        refused = browser.get(url)
        assert refused.status_code == 302 and refused.location.startswith("/login"), url
    assert browser.get("/api/v1/referrals").status_code == 401
    assert _open_sessions(specialist.id) == 0
    assert "Your role needs a code" in _page(browser.get("/two-factor/enrol"))

    secret, recovery = _enrol(browser)
    assert len(recovery) == 10 and _fresh(specialist.id).totp_enabled
    assert browser.get("/worklist").status_code == 200
    assert _open_sessions(specialist.id) == 1
    assert _log("login", "login.password", "2fa.enrol")[-3:] == [
        ("login.password", "ok", "password right; two-factor set-up needed"),
        ("2fa.enrol", "ok", ""),
        ("login", "ok", "password and a new authenticator")]


def test_a_session_from_before_the_requirement_ends_and_sends_its_user_to_set_up(app,
                                                                                 make_user):
    specialist = make_user(roles=["specialist"], email="stroke.reg@qmc.nhs.uk")
    browser = app.test_client()
    browser.login(specialist.email)
    assert browser.get("/worklist").status_code == 200
    app.config.update(REQUIRED)
    response = browser.get("/worklist")
    assert response.status_code == 302 and response.location == "/two-factor/enrol"
    assert _open_sessions(specialist.id) == 0
    assert browser.get("/referrals/mine").location.startswith("/login")
    assert browser.get("/two-factor/enrol").status_code == 200


@pytest.mark.parametrize("app_config", [REQUIRED])
def test_an_admin_resets_two_factor_and_the_user_must_set_it_up_again(app, make_user, clock):
    specialist = make_user(roles=["specialist"], email="stroke.reg@qmc.nhs.uk")
    theirs = app.test_client()
    theirs.login(specialist.email)
    secret, recovery = _enrol(theirs)
    assert _signed_in(theirs)
    clock.shift(STEP)
    refused = theirs.post(f"/admin/users/{specialist.id}/two-factor")
    assert refused.status_code == 403  # not their own to reset

    admin = make_user(roles=["admin"], email="admin@test.nhs.uk")
    admins = app.test_client()
    admins.login(admin.email)
    _enrol(admins)  # admins need it too
    page = _page(admins.get("/admin/users"))
    assert f'action="/admin/users/{specialist.id}/two-factor"' in page
    response = admins.post(f"/admin/users/{specialist.id}/two-factor")
    assert response.status_code == 302
    assert f"Two-factor sign-in reset for {specialist.email}" in _page(
        admins.get(response.location))

    assert _open_sessions(specialist.id) == 0  # their sessions ended, on every device
    assert not _signed_in(theirs)
    reset = _fresh(specialist.id)
    assert (reset.totp_enabled, reset.totp_secret) == (False, "")
    assert db.session.scalar(select(func.count()).select_from(RecoveryCode).where(
        RecoveryCode.user_id == specialist.id)) == 0
    row = db.session.scalars(select(AccessLog).where(AccessLog.action == "admin.2fa_reset")).one()
    assert (row.outcome, row.user_id, row.detail) == ("ok", admin.id, specialist.email)
    again = app.test_client()
    assert again.login(specialist.email).location == "/two-factor/enrol"
    new_secret, _ = _enrol(again)
    assert new_secret != secret


def test_a_decision_is_signed_with_the_authenticator_code_once_two_factor_is_on(
        app, network, clock):
    night = STROKE_SPECIALISTS[0]
    referral_id = referrals.raise_referral(user(REFERRER), stroke_payload()).id
    referrals.acknowledge(referral_id, user(night))
    browser = app.test_client()
    browser.login(night, DEMO_PASSWORD)
    secret, _ = _enrol(browser)
    assert 'name="totp"' in _page(browser.get(f"/referrals/{referral_id}"))
    url = f"/api/v1/referrals/{referral_id}/decide"
    decision = {"outcome": "transfer", "destination_hospital": "QMC",
                "destination_unit": "HASU", "rationale": "M1 occlusion: thrombectomy"}

    by_password = browser.post(url, json={**decision, "signature": {"password": DEMO_PASSWORD}})
    assert by_password.status_code == 422
    assert set(by_password.json["errors"]) == {"signature.totp"}
    used = browser.post(url, json={**decision, "signature": {"totp": totp(secret)}})
    assert used.status_code == 422  # the code that turned two-factor on
    assert "already used" in used.json["errors"]["signature.totp"]
    clock.shift(STEP)
    signed = browser.post(url, json={**decision, "signature": {"totp": totp(secret)}})
    assert signed.status_code == 200, signed.json
    assert signed.json["events"][-1]["data"]["signed_with"] == "totp"
    db.session.expire_all()
    assert db.session.scalar(select(Decision.signed_with).where(
        Decision.referral_id == referral_id)) == "totp"


def test_a_key_that_no_longer_decrypts_says_what_to_do(app, rhys, enrolled):
    secret, _ = enrolled
    app.config["SECRET_KEY"] = "another-secret-key-that-is-long-enough-9876543210"
    browser = app.test_client()
    browser.login(EMAIL)
    response = _second_step(browser, totp(secret))
    assert response.status_code == 409
    assert two_factor.UNREADABLE in _page(response)
    assert _open_sessions(rhys.id) == 0


def test_two_factor_is_required_of_specialists_audit_leads_and_admins_unless_set_otherwise(
        tmp_path):
    name = "GOLDENHOUR_REQUIRE_2FA_ROLES"
    assert load_config({}, tmp_path)["REQUIRE_2FA_ROLES"] == {"specialist", "audit_lead",
                                                               "admin"}
    assert load_config({name: ""}, tmp_path)["REQUIRE_2FA_ROLES"] == frozenset()
    assert load_config({name: " admin, duty_manager "}, tmp_path)["REQUIRE_2FA_ROLES"] == {
        "admin", "duty_manager"}
    with pytest.raises(ConfigError, match=f"{name} names the unknown role consultant"):
        load_config({name: "specialist,consultant"}, tmp_path)
