import html
import re

import pytest
from sqlalchemy import func, select

from extensions import db
from models import AccessLog, Hospital, HubService, LoginSession, User
from tests.conftest import TEST_PASSWORD

NON_ADMIN_ROLES = ["referrer", "specialist", "audit_lead", "duty_manager"]
FRIENDLY_403 = "Your role or hospital does not give you access to this page."


# Which column each URL argument of an admin route names. A new route with a new argument
# fails here until its column is added, so that it is checked with a row that exists.
ROW_FOR_ARGUMENT = {"user_id": User.id, "service_id": HubService.id,
                    "hospital_id": Hospital.id, "code": Hospital.code}


def _existing_value(match) -> str:
    name = match.group(1)
    assert name in ROW_FOR_ARGUMENT, f"add the URL argument {name!r} to ROW_FOR_ARGUMENT"
    column = ROW_FOR_ARGUMENT[name]
    return str(db.session.scalar(select(column).order_by(column)) or 1)


def _is_admin_rule(rule) -> bool:
    return rule.rule.startswith("/admin") or rule.endpoint.split(".")[0].startswith("admin")


def _admin_routes(app):
    """(method, url, endpoint) for every method of every admin route: each rule under
    /admin or on an admin blueprint, read from the URL map so a new one cannot be missed.
    URL arguments point at existing rows."""
    routes = []
    for rule in app.url_map.iter_rules():
        if not _is_admin_rule(rule):
            continue
        url = re.sub(r"<(?:\w+:)?(\w+)>", _existing_value, rule.rule)
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            routes.append((method, url, rule.endpoint))
    return routes


def _page(response) -> str:
    return html.unescape(response.get_data(as_text=True))


def _count(model) -> int:
    return db.session.scalar(select(func.count()).select_from(model))


def _log(action, outcome="ok"):
    return db.session.scalars(select(AccessLog).where(AccessLog.action == action,
                                                      AccessLog.outcome == outcome)
                              .order_by(AccessLog.id)).all()


@pytest.fixture
def admin(client, make_user):
    user = make_user(roles=["admin"], email="admin@test.nhs.uk", name="Ada Admin")
    client.login("admin@test.nhs.uk")
    return user


def test_the_admin_routes_include_the_ones_this_file_expects(app, make_user):
    make_user()
    routes = {(method, endpoint) for method, _u, endpoint in _admin_routes(app)}
    assert {("GET", "admin.index"), ("GET", "admin.hospitals"), ("GET", "admin.users"),
            ("POST", "admin.users"), ("POST", "admin.set_active"),
            ("GET", "admin.reset_password"), ("POST", "admin.reset_password"),
            ("GET", "admin.rota_page"), ("POST", "admin.rota_page"),
            ("GET", "admin_pacs.index"), ("POST", "admin_pacs.test")} <= routes


def test_anonymous_visitors_are_sent_to_sign_in_from_every_admin_route(app, client, make_user):
    make_user()
    for method, url, endpoint in _admin_routes(app):
        response = client.open(url, method=method)
        assert response.status_code == 302, endpoint
        assert response.location.startswith("/login"), endpoint


@pytest.mark.parametrize("role", NON_ADMIN_ROLES)
def test_every_admin_route_refuses_a_non_admin_with_a_page_and_a_log_row(app, client,
                                                                         make_user, role):
    user = make_user(roles=[role], email=f"{role}@test.nhs.uk")
    client.login(user.email)
    routes = _admin_routes(app)
    for method, url, endpoint in routes:
        before = _count(AccessLog)
        response = client.open(url, method=method)
        assert response.status_code == 403, f"{role} reached {method} {url}"
        assert FRIENDLY_403 in _page(response), endpoint
        new_rows = db.session.scalars(select(AccessLog).order_by(AccessLog.id)
                                      .offset(before)).all()
        assert [(r.action, r.outcome, r.user_id, r.email) for r in new_rows] == [
            (endpoint, "denied", user.id, user.email)], f"{method} {url}"
        assert url in new_rows[0].detail
    # a refused POST changed nothing
    assert db.session.get(User, user.id).active
    assert _count(User) == 1


def test_an_admin_can_open_every_admin_page(app, client, network, admin):
    gets = [(url, endpoint) for method, url, endpoint in _admin_routes(app) if method == "GET"]
    assert len(gets) >= 5
    for url, endpoint in gets:
        response = client.get(url)
        assert response.status_code == 200, endpoint
        assert "<h1>" in response.get_data(as_text=True), endpoint


def _new_user_form(**overrides):
    form = {"name": "Nia Nurse", "email": "nia@pil.nhs.uk", "phone": "+447700900555",
            "hospital": "", "roles": ["referrer"], "password": "a long enough password"}
    form.update(overrides)
    return {k: v for k, v in form.items() if v is not None}


def test_an_admin_creates_a_user_through_the_form(client, admin, network):
    response = client.post("/admin/users", data=_new_user_form(
        hospital="PIL", roles=["referrer", "audit_lead"]))
    assert response.status_code == 302
    assert "Created nia@pil.nhs.uk" in _page(client.get(response.location))
    user = db.session.scalar(select(User).where(User.email == "nia@pil.nhs.uk"))
    assert (user.name, user.hospital.code, user.roles) == (
        "Nia Nurse", "PIL", frozenset({"referrer", "audit_lead"}))
    row = _log("admin.user_create")[-1]
    assert (row.user_id, row.detail) == (admin.id, "nia@pil.nhs.uk")
    client.logout()
    assert client.login("nia@pil.nhs.uk", "a long enough password").status_code == 302


@pytest.mark.parametrize(("field", "value", "message"), [
    ("email", "admin@test.nhs.uk", "A user with this email address already exists."),
    ("hospital", "XYZ", "No hospital has the code 'XYZ'."),
    ("password", "short", "Use at least 10 characters."),
    ("roles", None, "Give the user at least one role."),
])
def test_a_bad_field_on_the_new_user_form_is_named_and_nothing_is_stored(
        client, admin, network, field, value, message):
    users_before, log_before = _count(User), _count(AccessLog)
    response = client.post("/admin/users", data=_new_user_form(**{field: value}))
    assert response.status_code == 422
    page = _page(response)
    assert message in page
    assert re.search(rf'<\w+ [^>]*aria-invalid="true"[^>]*id="{field}"', page), \
        f"{field} is not marked invalid"
    assert _count(User) == users_before
    assert _count(AccessLog) == log_before
    assert db.session.scalar(select(User).where(User.email == "nia@pil.nhs.uk")) is None


def test_a_deactivated_user_is_signed_out_and_cannot_sign_in(app, client, admin, make_user):
    victim = make_user(roles=["referrer"], email="leaver@test.nhs.uk")
    theirs = app.test_client()
    theirs.login("leaver@test.nhs.uk")
    assert theirs.get("/").status_code == 200

    response = client.post(f"/admin/users/{victim.id}/active", data={"active": "0"})
    assert response.status_code == 302
    assert "leaver@test.nhs.uk is now deactivated" in _page(client.get(response.location))

    response = theirs.get("/")
    assert response.status_code == 302 and response.location.startswith("/login")
    assert "deactivated" in _page(theirs.login("leaver@test.nhs.uk"))
    db.session.expire_all()
    assert not db.session.get(User, victim.id).active
    assert db.session.scalars(select(LoginSession).where(
        LoginSession.user_id == victim.id, LoginSession.ended_at.is_(None))).all() == []
    row = _log("admin.user_deactivate")[-1]
    assert (row.user_id, row.detail) == (admin.id, "leaver@test.nhs.uk")


def test_deactivating_twice_from_a_stale_page_leaves_the_user_deactivated(client, admin,
                                                                          make_user):
    victim = make_user(email="twice@test.nhs.uk")
    for _ in range(2):  # a second admin clicks "Deactivate" on a page loaded earlier
        client.post(f"/admin/users/{victim.id}/active", data={"active": "0"})
    db.session.expire_all()
    assert not db.session.get(User, victim.id).active


def test_a_deactivated_user_can_be_reactivated(client, admin, make_user):
    victim = make_user(email="back@test.nhs.uk")
    client.post(f"/admin/users/{victim.id}/active", data={"active": "0"})
    page = _page(client.get("/admin/users"))
    form = re.search(rf'action="/admin/users/{victim.id}/active">(.*?)</form>', page, re.S)
    assert 'name="active" value="1"' in form.group(1) and "Reactivate" in form.group(1)
    client.post(f"/admin/users/{victim.id}/active", data={"active": "1"})
    db.session.expire_all()
    assert db.session.get(User, victim.id).active
    assert _log("admin.user_activate")[-1].detail == "back@test.nhs.uk"
    assert client.__class__(client.application).login("back@test.nhs.uk").status_code == 302


def test_an_admin_cannot_deactivate_themself(client, admin):
    response = client.post(f"/admin/users/{admin.id}/active", data={"active": "0"})
    assert "You cannot deactivate your own account." in _page(client.get(response.location))
    db.session.expire_all()
    assert db.session.get(User, admin.id).active
    assert client.get("/admin/").status_code == 200  # still signed in
    row = _log("admin.user_deactivate", "denied")[-1]
    assert (row.user_id, row.detail) == (admin.id, "admin@test.nhs.uk: own account")
    assert _log("admin.user_deactivate") == []


def test_resetting_a_password_ends_the_old_password_and_their_sessions(app, client, admin,
                                                                        make_user):
    user = make_user(email="forgot@test.nhs.uk")
    theirs = app.test_client()
    theirs.login("forgot@test.nhs.uk")
    assert theirs.get("/").status_code == 200

    assert "New password for" in _page(client.get(f"/admin/users/{user.id}/password"))
    response = client.post(f"/admin/users/{user.id}/password",
                           data={"password": "brand new password"})
    assert response.status_code == 302
    assert "their open sessions were ended" in _page(client.get(response.location))

    assert theirs.get("/").status_code == 302
    assert theirs.login("forgot@test.nhs.uk", TEST_PASSWORD).status_code == 401
    assert theirs.login("forgot@test.nhs.uk", "brand new password").status_code == 302
    row = _log("admin.password_reset")[-1]
    assert (row.user_id, row.detail) == (admin.id, "forgot@test.nhs.uk")


def test_a_weak_reset_password_is_refused_and_the_old_one_still_works(app, client, admin,
                                                                       make_user):
    user = make_user(email="keep@test.nhs.uk")
    response = client.post(f"/admin/users/{user.id}/password", data={"password": "short"})
    assert response.status_code == 422
    assert "Use at least 10 characters." in _page(response)
    assert _log("admin.password_reset") == []
    assert app.test_client().login("keep@test.nhs.uk").status_code == 302


def test_an_unknown_user_id_is_a_404_page(client, admin):
    assert client.get("/admin/users/9999/password").status_code == 404
    assert client.post("/admin/users/9999/active", data={"active": "0"}).status_code == 404


def _table_rows(page: str) -> list[str]:
    body = re.search(r"<tbody>(.*?)</tbody>", page, re.S).group(1)
    return re.findall(r"<tr\b.*?</tr>", body, re.S)


def test_the_hospitals_page_lists_every_hospital_with_its_trust_hubs_and_pacs(client, admin,
                                                                             network):
    from models import PacsEndpoint

    qmc = db.session.scalar(select(Hospital).where(Hospital.code == "QMC"))
    db.session.add(PacsEndpoint(hospital=qmc, base_url="https://pacs.qmc.example/dicom-web"))
    db.session.commit()
    rows = _table_rows(_page(client.get("/admin/hospitals")))
    assert len(rows) == _count(Hospital)
    qmc_row = next(r for r in rows if "Queen's Medical Centre" in r)
    for text in ("QMC", "Nottingham University Hospitals NHS Trust", "major trauma",
                 "stroke", "https://pacs.qmc.example/dicom-web"):
        assert text in qmc_row, text
    pilgrim = next(r for r in rows if "Pilgrim Hospital" in r)
    assert "United Lincolnshire Hospitals NHS Trust" in pilgrim and "none" in pilgrim


def test_an_admin_runs_the_integrity_check_from_the_status_page(app, client, network, admin):
    from workflow import scheduler

    page = _page(client.get("/admin/status"))
    assert "not run yet" in page and "Run the integrity check now" in page
    db.session.commit()  # the check runs in its own thread (SQLite: one writer)
    response = client.post("/admin/status/integrity-check")
    assert response.status_code == 302 and response.location.endswith("/admin/status#integrity")
    scheduler.wait_for_integrity_check(60)
    db.session.expire_all()
    page = _page(client.get("/admin/status"))
    assert "intact" in page and "OK: 0 referrals, 0 events" in page
    assert "The integrity check is running" in page  # the flash, shown once
    assert len(_log("admin.integrity_check")) == 1


def test_the_integrity_check_button_needs_its_csrf_token(app, client, network, admin):
    response = client.post("/admin/status/integrity-check", csrf=False)
    assert response.status_code in (302, 400)
    assert _log("admin.integrity_check") == []
