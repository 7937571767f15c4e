import re
from datetime import timedelta

import pytest
import time_machine
from sqlalchemy import select

from extensions import db
from models import AccessLog, LoginSession
from tests.conftest import TEST_PASSWORD


def _log_rows(action):
    return db.session.scalars(select(AccessLog).where(AccessLog.action == action)
                              .order_by(AccessLog.id)).all()


def test_a_user_signs_in_and_sees_the_home_page(client, make_user):
    make_user(roles=["referrer"], hospital=None, email="rhys@pil.nhs.uk", name="Rhys")
    response = client.login("rhys@pil.nhs.uk")
    assert response.status_code == 302
    page = client.get("/").get_data(as_text=True)
    assert "Hello, Rhys" in page
    row = _log_rows("login")[-1]
    assert (row.outcome, row.email, row.role, row.address) == ("ok", "rhys@pil.nhs.uk",
                                                              "referrer", "127.0.0.1")


def test_a_wrong_password_is_refused(client, make_user):
    make_user(email="a@pil.nhs.uk")
    response = client.login("a@pil.nhs.uk", "wrong password!")
    assert response.status_code == 401
    assert "do not match an active account" in response.get_data(as_text=True)
    assert _log_rows("login")[-1].outcome == "failure"


def test_an_unknown_user_is_refused_without_being_told_so(client, app):
    response = client.login("nobody@pil.nhs.uk", "whatever-password")
    assert response.status_code == 401
    assert "do not match an active account" in response.get_data(as_text=True)


def test_a_deactivated_user_cannot_sign_in(client, make_user):
    from workflow.accounts.accounts import set_active

    user = make_user(email="gone@pil.nhs.uk")
    set_active(user, False)
    response = client.login("gone@pil.nhs.uk")
    assert "deactivated" in response.get_data(as_text=True)


def test_sign_in_is_paused_after_repeated_failures(client, make_user):
    make_user(email="target@pil.nhs.uk")
    for _ in range(5):
        client.login("target@pil.nhs.uk", "guess-guess-guess")
    response = client.login("target@pil.nhs.uk")  # even the right password now waits
    assert response.status_code == 429
    assert "Too many failed sign-ins" in response.get_data(as_text=True)
    assert _log_rows("login")[-1].outcome == "denied"
    with time_machine.travel(timedelta(minutes=16)):
        assert client.login("target@pil.nhs.uk").status_code == 302


@pytest.mark.parametrize("app_config", [{"LOGIN_ADDRESS_MAX_FAILURES": 20}])
def test_one_address_trying_many_accounts_is_paused_too(client, make_user):
    make_user(email="victim@pil.nhs.uk")
    for n in range(20):  # each account below its own limit
        assert client.login(f"guess{n}@pil.nhs.uk", "guess-guess-guess").status_code == 401
    response = client.login("victim@pil.nhs.uk")
    assert "Too many failed sign-ins" in response.get_data(as_text=True)
    row = _log_rows("login")[-1]
    assert (row.outcome, row.email, row.address) == ("denied", "victim@pil.nhs.uk",
                                                     "127.0.0.1")
    elsewhere = client.application.test_client()  # the account itself is not locked
    elsewhere.environ_base["REMOTE_ADDR"] = "10.1.2.3"
    assert elsewhere.login("victim@pil.nhs.uk").status_code == 302
    with time_machine.travel(timedelta(minutes=16)):
        assert client.login("victim@pil.nhs.uk").status_code == 302


@pytest.mark.parametrize(("email", "password", "detail"), [
    ("known@pil.nhs.uk", "wrong password!", "bad password"),
    ("unknown@pil.nhs.uk", "whatever-password", "unknown user"),
])
def test_each_failed_sign_in_is_logged_with_email_address_and_time(client, make_user, email,
                                                                   password, detail):
    make_user(email="known@pil.nhs.uk")
    client.login(email, password)
    row = _log_rows("login")[-1]
    assert (row.outcome, row.user_id, row.email, row.address, row.detail) == (
        "failure", None, email, "127.0.0.1", detail)
    assert row.at is not None


def test_sign_out_is_logged(client, make_user):
    user = make_user(email="bye@pil.nhs.uk")
    client.login("bye@pil.nhs.uk")
    client.logout()
    row = _log_rows("logout")[-1]
    assert (row.outcome, row.user_id, row.address) == ("ok", user.id, "127.0.0.1")


def test_sign_in_gives_a_new_session(app, client, make_user):
    make_user(email="fix@pil.nhs.uk")
    client.get("/login")
    with client.session_transaction() as planted:  # what an attacker could have set
        planted["sid"] = "chosen-by-the-attacker"
        planted["planted"] = "yes"
    before = client.get_cookie("goldenhour_session").value
    client.login("fix@pil.nhs.uk")
    after = client.get_cookie("goldenhour_session").value
    assert before != after
    with client.session_transaction() as renewed:
        assert "planted" not in renewed
        assert renewed["sid"] != "chosen-by-the-attacker"
    sessions = db.session.scalars(select(LoginSession)).all()
    assert len(sessions) == 1 and sessions[0].ended_at is None
    assert sessions[0].id == renewed["sid"]
    # The cookie from before sign-in is still anonymous.
    attacker = app.test_client()
    attacker.set_cookie("goldenhour_session", before)
    assert attacker.get("/").location.startswith("/login")


def test_a_cookie_replayed_after_sign_out_is_refused(client, make_user, app):
    make_user(email="replay@pil.nhs.uk")
    client.login("replay@pil.nhs.uk")
    stolen = client.get_cookie("goldenhour_session").value
    assert client.get("/").status_code == 200
    client.logout()
    replayer = app.test_client()
    replayer.set_cookie("goldenhour_session", stolen)
    response = replayer.get("/")
    assert response.status_code == 302 and "/login" in response.location


def test_an_idle_session_expires_and_says_why(client, make_user):
    make_user(email="idle@pil.nhs.uk")
    client.login("idle@pil.nhs.uk")
    with time_machine.travel(timedelta(minutes=31)):
        response = client.get("/")
        assert response.status_code == 302
        page = client.get(response.location).get_data(as_text=True)
    assert "without activity" in page


def test_an_active_session_does_not_expire(client, make_user):
    make_user(email="busy@pil.nhs.uk")
    client.login("busy@pil.nhs.uk")
    for minutes in (20, 40, 60):
        with time_machine.travel(timedelta(minutes=minutes)):
            assert client.get("/").status_code == 200


def test_a_post_without_csrf_token_is_refused_with_a_message(client, make_user):
    make_user(email="csrf@pil.nhs.uk")
    response = client.post("/login", data={"email": "csrf@pil.nhs.uk",
                                           "password": TEST_PASSWORD}, csrf=False)
    assert response.status_code == 400
    assert "security token" in response.get_data(as_text=True)


UNSAFE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}


def test_every_state_changing_route_refuses_a_signed_in_browser_without_csrf(app, client,
                                                                             make_user):
    """Pages and the JSON API alike: only Twilio's signed webhooks are exempt."""
    make_user(roles=["admin"], email="admin@test.nhs.uk")
    client.login("admin@test.nhs.uk")
    checked = set()
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith("/webhooks/"):
            continue
        url = re.sub(r"<(?:\w+:)?\w+>", "1", rule.rule)
        for method in sorted(rule.methods & UNSAFE_METHODS):
            response = client.open(url, method=method, data={}, csrf=False)
            assert response.status_code == 400, f"{method} {rule.rule} accepted no CSRF token"
            assert "security token" in response.get_data(as_text=True), rule.rule
            checked.add(rule.rule)
    assert {"/login", "/logout", "/admin/users", "/admin/rota"} <= checked
    assert any(url.startswith("/api/") for url in checked)


def test_the_session_cookie_is_httponly_and_samesite(client, make_user):
    make_user(email="cookie@pil.nhs.uk")
    response = client.login("cookie@pil.nhs.uk")
    header = [h for h in response.headers.getlist("Set-Cookie") if "goldenhour_session" in h][0]
    assert "HttpOnly" in header and "SameSite=Lax" in header


@pytest.mark.parametrize("target", ["https://evil.example/", "//evil.example/",
                                    "/\\evil.example/", "/\t/evil.example/", "\\evil.example"])
def test_next_parameter_cannot_send_the_user_off_site(client, make_user, target):
    make_user(email="next@pil.nhs.uk")
    client.csrf_token = None
    response = client.post("/login", query_string={"next": target}, data={
        "email": "next@pil.nhs.uk", "password": TEST_PASSWORD})
    assert response.status_code == 302
    assert response.location == "/"


def test_next_parameter_returns_the_user_to_the_page_they_asked_for(client, make_user):
    make_user(roles=["admin"], email="back@pil.nhs.uk")
    response = client.get("/admin/users")
    assert response.location == "/login?next=/admin/users"
    client.csrf_token = None
    response = client.post(response.location, data={"email": "back@pil.nhs.uk",
                                                     "password": TEST_PASSWORD})
    assert response.location == "/admin/users"


def test_an_api_token_authenticates_and_can_be_revoked(app, make_user):
    from workflow.accounts.accounts import issue_token, revoke_tokens

    make_user(roles=["admin"], email="api@test.nhs.uk")
    token = issue_token("api@test.nhs.uk")
    api = app.test_client()
    assert api.get("/", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    assert api.get("/", headers={"Authorization": "Bearer gh_forged"}).status_code == 401
    assert revoke_tokens("api@test.nhs.uk") == 1
    assert api.get("/", headers={"Authorization": f"Bearer {token}"}).status_code == 401


def _login_from(client, forwarded_for: str):
    client.csrf_token = None
    return client.post("/login", data={"email": "proxied@pil.nhs.uk", "password": TEST_PASSWORD},
                       headers={"X-Forwarded-For": forwarded_for})


def test_a_forged_forwarded_for_header_is_ignored_without_a_trusted_proxy(client, make_user):
    make_user(email="proxied@pil.nhs.uk")
    assert _login_from(client, "203.0.113.7").status_code == 302
    assert _log_rows("login")[-1].address == "127.0.0.1"


@pytest.mark.parametrize("app_config", [{"TRUSTED_PROXIES": 1}])
def test_behind_a_trusted_proxy_the_log_has_the_clients_address(client, make_user):
    make_user(email="proxied@pil.nhs.uk")
    assert _login_from(client, "203.0.113.7").status_code == 302
    assert _log_rows("login")[-1].address == "203.0.113.7"


def test_the_session_check_reads_session_user_roles_and_specialties_in_one_query(network,
                                                                                client):
    # Every signed-in request starts with it, and each query is a round trip.
    from sqlalchemy import event

    from workflow.accounts import accounts

    client.login("stroke.night@qmc.demo.nhs.uk", "goldenhour-demo")
    sid = db.session.scalars(select(LoginSession.id).order_by(LoginSession.created_at.desc())
                             ).first()
    db.session.remove()  # what the next request starts with
    statements = []
    record = lambda *args: statements.append(args[2])  # noqa: E731
    event.listen(db.engine, "before_cursor_execute", record)
    try:
        row = accounts.load_login_session(sid)
        user = row.user
        assert "specialist" in user.roles and user.specialty_codes == {"stroke"}
        assert accounts.touch_session(sid, user.id, timedelta(minutes=30))
    finally:
        event.remove(db.engine, "before_cursor_execute", record)
    queries = [s for s in statements if not s.startswith("BEGIN")]  # SQLite's own BEGIN
    assert len(queries) == 1, queries
