"""The access matrix: every route of the URL map against every actor, checked against
the table in tests/security_matrix/rules.py.

Each cell is one real request through the Flask test client, signed in (a browser
session with its CSRF token) as the actor, against the seeded demo network and one
stroke referral raised by Pilgrim. URL variables get real ids; a POST sends an empty
body (a JSON ``{}`` under /api/), or the rule's smallest body that reaches the role
check.

What counts as refused: a 401, a 403, or a redirect to the sign-in page carrying
``next`` (what Flask-Login's unauthorized handler sends; signing out also redirects to
the sign-in page, without ``next``). Anything else below 500 got through: a 400 or 422
from a permitted user means the access check let the request reach its input, and a
404 means the route looked for what the URL names after the check (no decision
record, no such study). That reading is exact because the app refuses a referral
outside the user's rights with 403, never a 404 (views.access.visible_or_refuse); a
route that hid a referral behind a 404 would show up here as "got through". A 5xx is
a mismatch in every cell, and every 403 to a signed-in actor must leave a `denied`
access-log row. No refused answer may contain the test patient's NHS
number or family name.

One test per database loops through every cell, so the network is seeded once.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

import pytest
from flask import current_app
from sqlalchemy import func, select
from twilio.request_validator import RequestValidator

from extensions import db
from models import AccessLog, Delivery, HubService, Specialty
from tests.conftest import TEST_PASSWORD, make_app, stamp_migrations_head
from tests.security_matrix.rules import (
    ACTORS,
    ANONYMOUS_OUTCOMES,
    API,
    LOGIN,
    OUTSIDERS,
    PUBLIC,
    RULES,
    SIGNED,
    STUDY,
    Rule,
)
from tests.workflow.helpers import stroke_payload, user
from workflow.accounts import accounts
from workflow.paging import ack_links, sweep
from workflow.referrals import actions as referrals
from workflow.seed import DEMO_PASSWORD

pytestmark = pytest.mark.clock(tick=True)  # the suite's night: the night registrars on call

RULES_FILE = "tests/security_matrix/rules.py"
SKIPPED_ENDPOINTS = {"static"}
SKIPPED_METHODS = {"HEAD", "OPTIONS"}
TWILIO_TOKEN = "matrix-twilio-auth-token"
REFUSED = {"login", "401", "403"}

NHS_NUMBER = "9434765919"
FAMILY_NAME = "Quarrington"
PATIENT = {"nhs_number": "943 476 5919", "family_name": FAMILY_NAME, "given_name": "Ann",
           "birth_date": "1950-01-01", "sex": "female"}

DEMO_ACTORS = {
    "referrer:own": "referrer@pil.demo.nhs.uk",
    "referrer:other": "referrer@lch.demo.nhs.uk",
    "specialist:hub": "stroke.night@qmc.demo.nhs.uk",
    "specialist:other-service": "spinal.night@qmc.demo.nhs.uk",
    "specialist:other-hub": "vascular.night@lri.demo.nhs.uk",
    "duty_manager:hub": "duty.manager@qmc.demo.nhs.uk",
    "audit_lead": "audit@em.demo.nhs.uk",
    "admin": "admin@em.demo.nhs.uk",
}
OTHER_DUTY_MANAGER = "duty.manager@lri.matrix.nhs.uk"  # the demo has none at Leicester
DEACTIVATED = "deactivated@pil.matrix.nhs.uk"


@pytest.fixture
def app_config():
    # With a token the webhooks check signatures (without one they answer 503).
    # Live streams are read whole: keep each one short.
    return {"TWILIO_AUTH_TOKEN": TWILIO_TOKEN, "LIVE_STREAM_SECONDS": 1, "LIVE_POLL_MS": 250}


def _url_map_routes(app) -> list[tuple]:
    """(werkzeug rule, method) for every route the matrix covers, in path order."""
    routes = [(rule, method) for rule in app.url_map.iter_rules()
              if rule.endpoint not in SKIPPED_ENDPOINTS
              for method in rule.methods - SKIPPED_METHODS]
    return sorted(routes, key=lambda route: (route[0].rule, route[1]))


@pytest.fixture
def bare_app(tmp_path):
    """The app without a database: enough to read its URL map."""
    return make_app(f"sqlite:///{tmp_path / 'unused.sqlite3'}", tmp_path)


def test_every_route_has_an_access_rule_and_every_rule_a_route(bare_app):
    endpoints = {r.endpoint for r, _ in _url_map_routes(bare_app)}
    problems = [f"new route {e} has no access rule: add it to {RULES_FILE}"
                for e in sorted(endpoints - RULES.keys())]
    problems += [f"{e} has an access rule in {RULES_FILE} but no route: remove the rule"
                 for e in sorted(RULES.keys() - endpoints)]
    assert not problems, "\n".join(problems)


def test_every_rule_reads_in_the_tables_words():
    problems = []
    for endpoint, rule in RULES.items():
        if rule.anonymous not in ANONYMOUS_OUTCOMES:
            problems.append(f"{endpoint}: anonymous={rule.anonymous!r} is not one of "
                            f"{ANONYMOUS_OUTCOMES}")
        try:
            rule.actors()
        except KeyError as exc:
            problems.append(f"{endpoint}: {exc.args[0]}")
    assert not problems, "\n".join(problems)


def test_no_rule_lets_another_hospital_reach_a_referral(bare_app):
    """Whatever a rule says, a route under a referral id refuses the users of a hospital
    that neither referred the patient nor is the hub."""
    problems = []
    for route, _ in _url_map_routes(bare_app):
        if "referral_id" in route.arguments and route.endpoint in RULES:
            if outsiders := RULES[route.endpoint].actors() & OUTSIDERS:
                problems.append(f"{route.endpoint} ({route.rule}) lets "
                                f"{', '.join(sorted(outsiders))} through: another hospital's "
                                "users must never reach a referral")
    assert not problems, "\n".join(sorted(set(problems)))


# --- The matrix ----------------------------------------------------------------------


@dataclass
class Cell:
    endpoint: str
    method: str
    actor: str
    expected: str
    got: str

    def __str__(self):
        return f"{self.endpoint:28} {self.method:5} {self.actor:26} expected {self.expected}, " \
               f"got {self.got}"


def _scene(make_user) -> tuple[dict[str, tuple[str, str]], dict]:
    """The people (actor -> email, password) and the values for URL variables."""
    people = {actor: (email, DEMO_PASSWORD) for actor, email in DEMO_ACTORS.items()}
    make_user(roles=["duty_manager"], hospital="LRI", email=OTHER_DUTY_MANAGER)
    people["duty_manager:other-hub"] = (OTHER_DUTY_MANAGER, TEST_PASSWORD)
    assert set(people) == set(ACTORS)

    referrer = user(DEMO_ACTORS["referrer:own"])
    referral = referrals.raise_referral(referrer, stroke_payload(patient=PATIENT))
    # The page link goes with a referral of its own: accepting it through the link
    # (a cell of the matrix) must not change the referral the other cells use.
    paged = referrals.raise_referral(referrer, stroke_payload(patient=PATIENT))
    sweep.run_once(current_app.extensions["goldenhour.channels"])
    stamp_migrations_head()  # and the sweep just ran: /ready answers 200
    registrar = user(DEMO_ACTORS["specialist:hub"])
    delivery = db.session.scalar(select(Delivery).where(
        Delivery.referral_id == paged.id, Delivery.recipient_id == registrar.id)
        .order_by(Delivery.id).limit(1))
    assert delivery is not None, "the sweep paged nobody at the stroke hub"
    stroke = db.session.scalar(select(HubService.id).join(Specialty)
                               .where(Specialty.code == "stroke"))
    values = {
        "referral_id": referral.id, "action": "messages", "version": 1,
        "study_uid": STUDY, "series_uid": STUDY + ".1", "sop_uid": STUDY + ".1.1",
        "user_id": user(DEMO_ACTORS["referrer:other"]).id, "service_id": stroke,
        "code": "PIL", "token": ack_links.make_token(delivery.id), "which": "worklist",
        "offer_id": 1,
    }
    db.session.commit()
    return people, values


def _outcome(response) -> str:
    """refused ("login", "401", "403"), "through" or "error", with the status."""
    status = response.status_code
    if status >= 500:
        return f"error ({status})"
    if status in (401, 403):
        return str(status)
    if 300 <= status < 400:
        location = urlsplit(response.headers.get("Location", ""))
        if location.path == "/login" and "next" in parse_qs(location.query):
            return "login"
    return f"through ({status})"


def _kind(outcome: str) -> str:
    return outcome.split(" ")[0]


def _send(client, app, route, method: str, rule: Rule, values: dict, signed: bool = False):
    arguments = {name: values[name] for name in route.arguments}
    path = app.url_map.bind("localhost").build(route.endpoint, arguments, method=method)
    kwargs, headers = {}, {}
    if method != "GET":
        if rule.form is not None or (rule.json is None and not path.startswith("/api/")):
            kwargs["data"] = dict(rule.form or {})
        else:
            kwargs["json"] = dict(rule.json or {})
    if signed:
        headers["X-Twilio-Signature"] = RequestValidator(TWILIO_TOKEN).compute_signature(
            app.config["PUBLIC_BASE_URL"] + path, kwargs.get("data") or {})
    # buffered: a streamed answer (the CSV exports) is read inside the request's context
    return client.open(path, method=method, headers=headers, buffered=True, **kwargs)


def _anonymous_cells(rule: Rule, actor: str) -> list[tuple[str, bool, str]]:
    """(actor label, signed, expected outcome) for requests without a live session."""
    if rule.anonymous == SIGNED:
        signed = [(f"{actor}, Twilio-signed", True, "through")] if actor == "anonymous" else []
        return [(actor, False, "403"), *signed]
    return [(actor, False, {LOGIN: "login", API: "401", PUBLIC: "through"}[rule.anonymous])]


def _deactivated_client(app, make_user):
    """A client holding the session cookie of a referrer at Pilgrim who was deactivated
    while signed in, and a function that puts that cookie back (the app drops the
    session on its first refused request; each cell replays the cookie)."""
    person = make_user(roles=["referrer"], hospital="PIL", email=DEACTIVATED)
    client = app.test_client()
    _sign_in(client, DEACTIVATED, TEST_PASSWORD)
    client.fetch_csrf_token()  # the token of this session, sent with each replayed post
    name = app.config["SESSION_COOKIE_NAME"]
    cookie = client.get_cookie(name).value
    accounts.set_active(person, False)
    return client, lambda: client.set_cookie(name, cookie)


def _leaks(body: str) -> list[str]:
    spaced = f"{NHS_NUMBER[:3]} {NHS_NUMBER[3:6]} {NHS_NUMBER[6:]}"
    found = [f"NHS number {n}" for n in (NHS_NUMBER, spaced) if n in body]
    return found + ([f"family name {FAMILY_NAME}"] if FAMILY_NAME.lower() in body.lower() else [])


def _last_denial() -> int:
    """The id of the newest access-log row recording a refusal (0 for none)."""
    db.session.rollback()
    return db.session.scalar(select(func.max(AccessLog.id)).where(
        AccessLog.outcome == "denied")) or 0


def _sign_in(client, email: str, password: str) -> None:
    response = client.login(email, password)
    assert response.status_code == 302, f"{email} could not sign in"


def test_each_actor_reaches_exactly_the_routes_its_rule_allows(app, network, make_user):
    people, values = _scene(make_user)
    routes = [(r, m) for r, m in _url_map_routes(app) if r.endpoint in RULES]
    for route, _ in routes:
        missing = set(route.arguments) - values.keys()
        assert not missing, f"{route.endpoint} ({route.rule}) takes {sorted(missing)}: give " \
                            "the matrix a value in _scene's values"
    mismatches: list[Cell] = []
    leaks: list[str] = []
    unlogged: list[str] = []
    cells = 0

    def check(client, route, method, actor, expected, signed=False):
        nonlocal cells
        cells += 1
        before = _last_denial()
        response = _send(client, app, route, method, RULES[route.endpoint], values, signed)
        body = response.get_data(as_text=True)
        got = _outcome(response)
        kind = _kind(got)
        if not (kind in REFUSED if expected == "refused" else kind == expected):
            mismatches.append(Cell(route.endpoint, method, actor, expected, got))
        if kind == "403" and actor in ACTORS and _last_denial() == before:
            unlogged.append(f"{route.endpoint} {method} as {actor}")
        if expected != "through" or kind in REFUSED:
            for leak in _leaks(body):
                leaks.append(f"{route.endpoint} {method} as {actor} ({got}): {leak}")

    anonymous = app.test_client()
    for route, method in routes:
        for actor, signed, expected in _anonymous_cells(RULES[route.endpoint], "anonymous"):
            check(anonymous, route, method, actor, expected, signed)
        if route.endpoint == "auth.logout":
            anonymous.csrf_token = None  # signing out clears the session and its token

    deactivated, replay_cookie = _deactivated_client(app, make_user)
    for route, method in routes:
        for actor, signed, expected in _anonymous_cells(RULES[route.endpoint], "deactivated"):
            replay_cookie()
            check(deactivated, route, method, actor, expected, signed)

    for actor in ACTORS:
        client = app.test_client()
        _sign_in(client, *people[actor])
        for route, method in routes:
            rule = RULES[route.endpoint]
            check(client, route, method, actor,
                  "through" if actor in rule.actors() else "refused")
            if route.endpoint == "auth.logout":
                _sign_in(client, *people[actor])

    report = []
    if mismatches:
        report.append(f"{len(mismatches)} of {cells} cells disagree with {RULES_FILE}:")
        report += [f"  {cell}" for cell in mismatches]
    if leaks:
        report.append("answers to someone the table refuses that show the test patient:")
        report += [f"  {leak}" for leak in leaks]
    if unlogged:
        report.append("refusals (403) of a signed-in user with no access-log row:")
        report += [f"  {cell}" for cell in unlogged]
    assert not report, "\n".join(report)
