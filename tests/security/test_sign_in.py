"""Sign-in tells nobody which email addresses have accounts (one message, the same
password-hash work), and slows guessing per account *and* address: an attacker
elsewhere cannot lock out the on-call specialist, and one person's typos behind a
hospital's NAT block nobody else there."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlalchemy import select

from extensions import db
from models import AccessLog
from tests.conftest import TEST_PASSWORD
from workflow.accounts import accounts

pytestmark = pytest.mark.clock  # frozen: the waits move only with clock.shift

SPECIALIST = "stroke.reg@qmc.nhs.uk"
ATTACKER = "203.0.113.66"
HOSPITAL_NAT = "10.20.0.7"


def _from(app, address):
    browser = app.test_client()
    browser.environ_base["REMOTE_ADDR"] = address
    return browser


def _message(response) -> str:
    match = re.search(r'<p class="error banner" role="alert">(.*?)</p>',
                      response.get_data(as_text=True), re.S)
    assert match, "no message on the sign-in page"
    return match.group(1)


def _login_rows() -> list[AccessLog]:
    db.session.expire_all()
    return list(db.session.scalars(select(AccessLog).where(AccessLog.action == "login")
                                   .order_by(AccessLog.id)))


@pytest.fixture
def specialist(make_user):
    return make_user(roles=["specialist"], email=SPECIALIST)


def test_every_failed_sign_in_says_the_same_thing(app, specialist, make_user):
    gone = make_user(email="gone@qmc.nhs.uk")
    accounts.set_active(gone, False)
    client = _from(app, HOSPITAL_NAT)
    attempts = {
        "unknown email": client.login("nobody@qmc.nhs.uk", "whatever-password"),
        "wrong password": client.login(SPECIALIST, "wrong password!"),
        "deactivated, right password": client.login("gone@qmc.nhs.uk", TEST_PASSWORD),
        "deactivated, wrong password": client.login("gone@qmc.nhs.uk", "wrong password!"),
    }
    assert {r.status_code for r in attempts.values()} == {401}
    messages = {why: _message(r) for why, r in attempts.items()}
    assert len(set(messages.values())) == 1, messages
    assert [(r.outcome, r.detail) for r in _login_rows()] == [
        ("failure", "unknown user"), ("failure", "bad password"),
        ("failure", "deactivated"), ("failure", "bad password")]


@pytest.fixture
def hash_checks(monkeypatch):
    """Every password hash sign-in verifies, in order."""
    checked = []
    real = accounts.check_password_hash

    def spy(stored_hash, password):
        checked.append(stored_hash)
        return real(stored_hash, password)

    monkeypatch.setattr(accounts, "check_password_hash", spy)
    return checked


def test_an_unknown_email_costs_the_same_hash_verification_as_a_wrong_password(
        app, specialist, hash_checks):
    method = app.config["PASSWORD_HASH_METHOD"]
    client = _from(app, HOSPITAL_NAT)
    client.login(SPECIALIST, "wrong password!")
    assert hash_checks == [specialist.password_hash]
    client.login("nobody@qmc.nhs.uk", "whatever-password")
    client.login("someone.else@qmc.nhs.uk", "whatever-password")
    assert len(hash_checks) == 3
    dummy = hash_checks[1]
    assert dummy != specialist.password_hash and hash_checks[2] == dummy
    assert dummy.startswith(method + "$"), "the dummy hash must cost what a real one does"


def test_the_attackers_address_is_slowed_while_the_specialist_signs_in_from_the_hospital(
        app, specialist, clock):
    limit = app.config["LOGIN_MAX_FAILURES"]
    attacker = _from(app, ATTACKER)
    for _ in range(limit):
        assert attacker.login(SPECIALIST, "guess-guess-guess").status_code == 401
    refused = attacker.login(SPECIALIST)  # even the right password waits, from there
    assert refused.status_code == 429
    assert refused.headers["Retry-After"] == "30"
    assert "Try again in 30 seconds" in _message(refused)

    assert _from(app, HOSPITAL_NAT).login(SPECIALIST).status_code == 302

    clock.shift(timedelta(seconds=31))  # slowed, not locked: the next guess is allowed...
    assert attacker.login(SPECIALIST, "guess-guess-guess").status_code == 401
    again = attacker.login(SPECIALIST, "guess-guess-guess")  # ...and the wait doubles
    assert again.status_code == 429 and again.headers["Retry-After"] == "60"
    clock.shift(timedelta(seconds=61))
    assert attacker.login(SPECIALIST).status_code == 302
    outcomes = [(r.outcome, r.address) for r in _login_rows()]
    assert outcomes.count(("denied", ATTACKER)) == 2
    assert ("ok", HOSPITAL_NAT) in outcomes and ("ok", ATTACKER) in outcomes
    denied = [r for r in _login_rows() if r.outcome == "denied"]
    assert all(r.email == SPECIALIST and "throttled" in r.detail for r in denied)


def test_failures_behind_a_hospital_nat_block_nobody_else_there(app, specialist, make_user):
    """The finding: 20 failures from one address blocked everyone behind it."""
    make_user(email="colleague@qmc.nhs.uk")
    nat = _from(app, HOSPITAL_NAT)
    for _ in range(app.config["LOGIN_MAX_FAILURES"] + 3):  # one person's stale password
        nat.login(SPECIALIST, "forgot-my-password")
    for n in range(20):  # locums mistyping their addresses
        nat.login(f"locum{n}@qmc.nhs.uk", "guess-guess-guess")
    assert _from(app, HOSPITAL_NAT).login("colleague@qmc.nhs.uk").status_code == 302


@pytest.mark.parametrize("app_config", [{"LOGIN_ADDRESS_MAX_FAILURES": 12}])
def test_one_address_has_a_bounded_number_of_failures_in_all(app, specialist, clock):
    spray = _from(app, ATTACKER)
    for n in range(12):
        assert spray.login(f"guess{n}@qmc.nhs.uk", "guess-guess-guess").status_code == 401
    refused = _from(app, ATTACKER).login(SPECIALIST)
    assert refused.status_code == 429
    assert "Try again in 15 minutes" in _message(refused)
    assert _from(app, HOSPITAL_NAT).login(SPECIALIST).status_code == 302
    clock.shift(timedelta(minutes=15, seconds=1))
    assert _from(app, ATTACKER).login(SPECIALIST).status_code == 302


def test_a_successful_sign_in_forgives_the_typos_before_it(app, specialist):
    limit = app.config["LOGIN_MAX_FAILURES"]
    nat = _from(app, HOSPITAL_NAT)
    for _ in range(limit - 1):
        nat.login(SPECIALIST, "typo-typo-typo")
    assert nat.login(SPECIALIST).status_code == 302
    nat.logout()
    for _ in range(limit - 1):
        nat.login(SPECIALIST, "typo-typo-typo")
    assert nat.login(SPECIALIST).status_code == 302
