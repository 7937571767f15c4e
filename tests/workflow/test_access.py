"""Who sees which referral through the API, and the access log of every view and refusal.

Two referrals: a stroke referral from Pilgrim (PIL) to the Queen's Medical Centre hub
(QMC), and a vascular one from Lincoln (LCH) to Leicester (LRI). Each person below
tries every endpoint on both.
"""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from extensions import db
from models import AccessLog, Referral
from tests.workflow.helpers import (
    ADMIN,
    AUDIT,
    DUTY_MANAGER,
    OTHER_REFERRER,
    REFERRER,
    STROKE_SPECIALISTS,
    VASCULAR,
    bearer,
    stroke_payload,
    user,
)
from views.present import ACTION_PATHS
from workflow.referrals import actions as referrals
from workflow.referrals import states
from workflow.referrals.access import actor_kinds

SPINAL = "spinal.day@qmc.demo.nhs.uk"  # a specialist at the stroke hub, another service

# email: which of (stroke, vascular) the person may see
SEES = {
    REFERRER: {"stroke"},
    OTHER_REFERRER: {"vascular"},
    STROKE_SPECIALISTS[0]: {"stroke"},
    SPINAL: set(),
    VASCULAR: {"vascular"},
    DUTY_MANAGER: {"stroke"},
    AUDIT: {"stroke", "vascular"},
    ADMIN: {"stroke", "vascular"},
}
EVENT_FOR_PATH = {path: event for event, path in ACTION_PATHS.items()}
BODY = {"question": "Any anticoagulant?", "text": "None", "reason": "Resolved",
        "note": "Note", "outcome": "advice_only", "advice": "Aspirin", "rationale": "Mimic",
        "to": STROKE_SPECIALISTS[1]}

# The suite's night, with the clock running.
pytestmark = pytest.mark.clock(tick=True)


def vascular_payload():
    return stroke_payload(specialty="vascular", referring_hospital="LCH",
                          question="Leaking AAA?",
                          clinical={"diagnosis": "Ruptured AAA", "haemodynamics": "unstable"})


@pytest.fixture
def two_referrals(network):
    stroke = referrals.raise_referral(user(REFERRER), stroke_payload())
    vascular = referrals.raise_referral(user(OTHER_REFERRER), vascular_payload())
    assert vascular.hub_service.hospital.code == "LRI"
    return {"stroke": stroke.id, "vascular": vascular.id}


def _log_rows(email: str, referral_id: int | None = None) -> list[AccessLog]:
    db.session.expire_all()
    query = select(AccessLog).where(AccessLog.email == email).order_by(AccessLog.id)
    if referral_id is not None:
        query = query.where(AccessLog.referral_id == referral_id)
    return list(db.session.scalars(query))


@pytest.mark.parametrize("email", list(SEES))
def test_each_person_sees_only_referrals_within_their_rights(client, two_referrals, email):
    headers = bearer(email)
    visible = SEES[email]

    listed = client.get("/api/v1/referrals", headers=headers)
    assert listed.status_code == 200
    assert {r["id"] for r in listed.json["referrals"]} == {two_referrals[k] for k in visible}

    for name, rid in two_referrals.items():
        before = len(_log_rows(email, rid))
        response = client.get(f"/api/v1/referrals/{rid}", headers=headers)
        rows = _log_rows(email, rid)[before:]
        assert len(rows) == 1, [(r.action, r.outcome) for r in rows]
        row = rows[0]
        assert (row.user_id, row.role, row.address, row.action) == (
            user(email).id, ",".join(sorted(user(email).roles)), "127.0.0.1", "referral.view")
        if name in visible:
            assert response.status_code == 200
            assert response.json["id"] == rid
            assert row.outcome == "ok"
        else:
            assert response.status_code == 403
            assert response.json["error"]
            assert "patient" not in response.json
            assert row.outcome == "denied"


@pytest.mark.parametrize("email", list(SEES))
def test_every_action_outside_a_persons_rights_is_refused_and_logged(client, two_referrals,
                                                                     email):
    headers = bearer(email)
    for name, rid in two_referrals.items():
        referral = db.session.get(Referral, rid)
        kinds = actor_kinds(user(email), referral)
        for path, event in EVENT_FOR_PATH.items():
            move = states._BY_KEY.get((referral.state, event))
            permitted = move is not None and move.permits(kinds, referral.outcome)
            if permitted and move.target != move.source:
                continue  # a real move: tried in the workflow tests, not here
            before = len(_log_rows(email, rid))
            response = client.post(f"/api/v1/referrals/{rid}/{path}", json=BODY,
                                   headers=headers)
            rows = _log_rows(email, rid)[before:]
            where = f"{email} {path} on the {name} referral"
            if name not in SEES[email]:
                assert response.status_code == 403, where
                assert [r.outcome for r in rows] == ["denied"], where
            elif permitted:
                assert response.status_code == 200, where
                assert [r.outcome for r in rows] == ["ok"], where
            elif move is None:
                assert response.status_code == 409, (where, response.json)
                assert [r.outcome for r in rows] == ["failure"], where
            else:
                assert response.status_code == 403, (where, response.json)
                assert [r.outcome for r in rows] == ["denied"], where
            db.session.expire_all()
            assert db.session.get(Referral, rid).state == "submitted", where


def test_an_unknown_referral_is_404(client, two_referrals):
    headers = bearer(AUDIT)
    assert client.get("/api/v1/referrals/999999", headers=headers).status_code == 404
    response = client.post("/api/v1/referrals/999999/cancel", json=BODY, headers=headers)
    assert response.status_code == 404
    assert response.json["error"]


def test_an_unknown_action_is_404(client, two_referrals):
    response = client.post(f"/api/v1/referrals/{two_referrals['stroke']}/approve", json={},
                           headers=bearer(REFERRER))
    assert response.status_code == 404


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer gh_not-a-token"},
                                     {"Authorization": "Basic dXNlcjpwYXNz"}])
def test_without_a_valid_token_the_api_answers_401_in_json(client, two_referrals, headers):
    rid = two_referrals["stroke"]
    for method, path in (("get", "/api/v1/referrals"), ("get", f"/api/v1/referrals/{rid}"),
                         ("post", f"/api/v1/referrals/{rid}/acknowledge")):
        response = getattr(client, method)(path, headers=headers, csrf=False)
        assert response.status_code == 401, (path, response.status_code)
        assert response.is_json and response.json["error"], path


def test_a_signed_in_browser_session_still_needs_the_csrf_token(client, two_referrals):
    client.login(REFERRER, "goldenhour-demo")
    rid = two_referrals["stroke"]
    forged = client.post(f"/api/v1/referrals/{rid}/messages", json=BODY, csrf=False)
    assert forged.status_code == 400
    assert client.post(f"/api/v1/referrals/{rid}/messages", json=BODY).status_code == 200


@pytest.mark.parametrize("path, email, accepted, status", [
    ("decide", REFERRER, True, 403),               # a referrer never decides
    ("decide", STROKE_SPECIALISTS[1], True, 403),  # nor a colleague of the one who accepted
    ("decide", STROKE_SPECIALISTS[0], False, 409),  # nobody has accepted it yet
    ("cancel", STROKE_SPECIALISTS[0], False, 403),  # only the referrer or the assigned one
    ("request-info", STROKE_SPECIALISTS[0], False, 409),
    ("provide-info", REFERRER, True, 409),          # nobody asked
    ("addendum", STROKE_SPECIALISTS[0], True, 409),  # nothing decided
    ("hand-over", REFERRER, False, 409),            # not while submitted
    ("close", REFERRER, False, 409),
])
def test_a_forbidden_or_illegal_action_is_refused_as_such_whatever_the_body(
        client, two_referrals, path, email, accepted, status):
    """Role and state are checked before the input: an empty body does not turn a 403 or
    409 into a 422 about the missing fields."""
    rid = two_referrals["stroke"]
    if accepted:
        referrals.acknowledge(rid, user(STROKE_SPECIALISTS[0]))
    response = client.post(f"/api/v1/referrals/{rid}/{path}", json={}, headers=bearer(email))
    assert response.status_code == status, response.json
    assert "errors" not in response.json
    if status == 409:
        event = EVENT_FOR_PATH[path]
        state = "under review" if accepted else "submitted"
        assert response.json["error"] == f"cannot {event.replace('_', ' ')} a referral that is " \
            f"{state}"


@pytest.mark.parametrize("email", [STROKE_SPECIALISTS[0], DUTY_MANAGER, AUDIT, ADMIN])
def test_only_referrers_raise_referrals_and_a_refusal_is_logged(client, two_referrals, email):
    before = db.session.scalar(select(func.count(Referral.id)))
    response = client.post("/api/v1/referrals", json=stroke_payload(), headers=bearer(email))
    assert response.status_code == 403, response.json
    assert response.json["error"] == "only referrers can raise referrals"
    assert [(r.action, r.outcome) for r in _log_rows(email)][-1:] == [("referral.raise",
                                                                       "denied")]
    db.session.expire_all()
    assert db.session.scalar(select(func.count(Referral.id))) == before
