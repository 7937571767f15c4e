"""`flask users create|token|revoke-tokens|list`."""

from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select

from extensions import db
from models import ApiToken, User


def _invoke(runner, *args):
    db.session.commit()  # the command's own session must not wait on ours (SQLite lock)
    result = runner.invoke(args=list(args))
    db.session.expire_all()
    assert "Traceback" not in result.output
    # A refusal ends with SystemExit (a non-zero exit code), never another exception.
    assert result.exception is None or isinstance(result.exception, SystemExit), \
        repr(result.exception)
    return result


def _create(runner, *extra):
    return _invoke(runner, "users", "create", "--email", "Cli.User@QMC.nhs.uk",
                   "--name", "Cara Cli", "--password", "a long enough password", *extra)


def _bearer(token):
    return {"Authorization": f"Bearer {token}"}


def test_users_create_makes_a_user_who_can_sign_in(app, runner, network):
    result = _create(runner, "--role", "specialist", "--role", "admin", "--hospital", "QMC",
                     "--specialty", "stroke", "--phone", "+447700900999")
    assert result.exit_code == 0, result.output
    assert "Created cli.user@qmc.nhs.uk (admin, specialist)." in result.output
    user = db.session.scalar(select(User).where(User.email == "cli.user@qmc.nhs.uk"))
    assert (user.name, user.hospital.code, user.specialty_codes, user.phone) == (
        "Cara Cli", "QMC", frozenset({"stroke"}), "+447700900999")
    assert app.test_client().login("cli.user@qmc.nhs.uk",
                                   "a long enough password").status_code == 302


@pytest.mark.parametrize(("extra", "message"), [
    (["--role", "surgeon"], "Invalid value for '--role'"),
    (["--role", "referrer", "--hospital", "XYZ"], "hospital: No hospital has the code 'XYZ'."),
    (["--role", "referrer", "--specialty", "dermatology"],
     "specialties: Unknown specialty dermatology."),
])
def test_users_create_refuses_a_bad_field_with_its_message(runner, network, extra, message):
    before = db.session.scalar(select(func.count(User.id)))
    result = _create(runner, *extra)
    assert result.exit_code != 0
    assert message in result.output
    assert db.session.scalar(select(func.count(User.id))) == before


def test_users_create_names_a_duplicate_email(runner, make_user):
    make_user(email="cli.user@qmc.nhs.uk")
    result = _create(runner, "--role", "referrer")
    assert result.exit_code == 1
    assert "email: A user with this email address already exists." in result.output


def test_users_token_prints_a_token_that_authenticates(app, runner, make_user):
    make_user(roles=["referrer"], email="api.user@test.nhs.uk")
    result = _invoke(runner, "users", "token", "api.user@test.nhs.uk", "--label", "PACS bot")
    assert result.exit_code == 0
    token = result.output.strip()
    assert token.startswith("gh_") and "\n" not in token
    api = app.test_client()
    assert api.get("/", headers=_bearer(token)).status_code == 200
    assert api.get("/").status_code == 302  # the token, not a cookie, signed it in
    stored = db.session.scalars(select(ApiToken)).all()
    assert [(t.label, t.token_hash != token) for t in stored] == [("PACS bot", True)]
    assert token not in stored[0].token_hash


def test_users_token_for_an_unknown_email_is_a_one_line_error(runner, app):
    result = _invoke(runner, "users", "token", "nobody@test.nhs.uk")
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        "error: no active user with email 'nobody@test.nhs.uk'"]


def test_users_revoke_tokens_stops_the_token_working(app, runner, make_user):
    make_user(email="revoke@test.nhs.uk")
    first = _invoke(runner, "users", "token", "revoke@test.nhs.uk").output.strip()
    second = _invoke(runner, "users", "token", "revoke@test.nhs.uk").output.strip()
    api = app.test_client()
    assert api.get("/", headers=_bearer(first)).status_code == 200
    result = _invoke(runner, "users", "revoke-tokens", "revoke@test.nhs.uk")
    assert result.exit_code == 0 and "Revoked 2 token(s)." in result.output
    for token in (first, second):
        assert api.get("/", headers=_bearer(token)).status_code == 401


def test_users_revoke_tokens_for_an_unknown_email_fails(runner, app):
    result = _invoke(runner, "users", "revoke-tokens", "nobody@test.nhs.uk")
    assert result.exit_code == 1
    assert "error: no user with email 'nobody@test.nhs.uk'" in result.output


def test_users_list_shows_roles_hospital_and_deactivated_accounts(runner, network, make_user):
    from workflow.accounts.accounts import set_active

    make_user(roles=["referrer", "audit_lead"], hospital="PIL", email="a.list@pil.nhs.uk")
    set_active(make_user(email="b.gone@test.nhs.uk"), False)
    result = _invoke(runner, "users", "list")
    assert result.exit_code == 0
    lines = result.output.splitlines()
    assert "a.list@pil.nhs.uk\taudit_lead,referrer\tPIL" in lines
    assert "b.gone@test.nhs.uk\treferrer\t- (deactivated)" in lines
    assert len(lines) == db.session.scalar(select(func.count(User.id)))
    assert lines == sorted(lines)


@pytest.mark.clock
def test_users_tokens_lists_each_token_with_its_last_use(app, runner, make_user,
                                                         clock):
    make_user(email="bot@test.nhs.uk")
    used = _invoke(runner, "users", "token", "bot@test.nhs.uk", "--label", "PACS bot")
    _invoke(runner, "users", "token", "bot@test.nhs.uk", "--label", "spare")
    api = app.test_client()
    clock.move_to(datetime(2026, 11, 29, 3, 5, tzinfo=UTC), tick=False)
    assert api.get("/", headers=_bearer(used.output.strip())).status_code == 200
    clock.move_to(datetime(2026, 11, 29, 3, 5, 30, tzinfo=UTC), tick=False)
    api.get("/", headers=_bearer(used.output.strip()))  # within the minute: no new stamp
    stamps = db.session.scalars(select(ApiToken.last_used_at).order_by(ApiToken.id)).all()
    assert stamps == [datetime(2026, 11, 29, 3, 5, tzinfo=UTC), None]
    result = _invoke(runner, "users", "tokens", "bot@test.nhs.uk")
    assert result.exit_code == 0
    assert result.output.splitlines() == [
        "spare: created 2026-11-29 03:00, expires 2027-02-27 03:00, last used never, live",
        "PACS bot: created 2026-11-29 03:00, expires 2027-02-27 03:00, "
        "last used 2026-11-29 03:05, live"]
    _invoke(runner, "users", "revoke-tokens", "bot@test.nhs.uk")
    assert _invoke(runner, "users", "tokens", "bot@test.nhs.uk").output.endswith(
        "last used 2026-11-29 03:05, revoked 2026-11-29 03:05\n")
    assert _invoke(runner, "users", "tokens", "nobody@test.nhs.uk").exit_code == 1
