"""JSON API under /api/v1. Bearer token or session (with CSRF) authentication."""

from __future__ import annotations

from flask import Blueprint, request
from flask_login import current_user, login_required
from sqlalchemy import select

from extensions import csrf, db
from models import Hospital, Referral, Specialty
from views.access import client_address, visible_or_refuse
from views.auth import token_authenticated
from views.openapi import openapi_document
from views.present import referral_json, referral_summary, thread_json
from workflow import access_log
from workflow.accounts import accounts
from workflow.errors import DomainError, NotAllowed, ValidationFailed
from workflow.referrals import access
from workflow.referrals import actions as referrals
from workflow.referrals.states import State
from workflow.times import now

bp = Blueprint("api", __name__, url_prefix="/api/v1")
csrf.exempt(bp)


@bp.before_request
def _csrf_for_sessions():
    """A client signed in by a verified bearer token is not a browser: CSRF applies to
    every other signed-in request, whatever Authorization header it carries.

    A caller with no session at all has nothing to forge; login_required answers
    them with 401 rather than a CSRF 400.
    """
    if current_user.is_authenticated and not token_authenticated():
        csrf.protect()


def _json_body() -> dict:
    body = request.get_json(silent=True)
    if body is None:
        raise ValidationFailed({"": "Send a JSON object with Content-Type: application/json."})
    return body


def _log(action: str, outcome: str, referral_id: int | None = None, detail: str = "") -> None:
    access_log.record(action, outcome, user=current_user, address=client_address(),
                      referral_id=referral_id, detail=detail)


@bp.get("/openapi.json")
def openapi():
    return openapi_document()


@bp.post("/referrals")
@login_required
def create_referral():
    try:
        referral = referrals.raise_referral(current_user, _json_body(), hold_duplicates=True)
    except DomainError as exc:
        db.session.rollback()
        _log("referral.raise", "denied" if isinstance(exc, NotAllowed) else "failure",
             detail=type(exc).__name__)
        raise
    _log("referral.raise", "ok", referral.id)
    return referral_json(referral, current_user, now()), 201


def _filter_value(name: str, allowed: set[str]) -> str | None:
    value = request.args.get(name) or None
    if value is not None and value not in allowed:
        raise ValidationFailed({name: f"{value!r} is not one of {', '.join(sorted(allowed))}."})
    return value


@bp.get("/referrals")
@login_required
def list_referrals():
    state = _filter_value("state", {s.value for s in State})
    specialty = _filter_value("specialty", set(db.session.scalars(select(Specialty.code))))
    hospital = _filter_value("hospital", set(db.session.scalars(select(Hospital.code))))
    query = access.visible(current_user, select(Referral))
    if state:
        query = query.where(Referral.state == state)
    if specialty:
        query = query.join(Specialty, Referral.specialty_id == Specialty.id) \
            .where(Specialty.code == specialty)
    if hospital:
        query = query.join(Hospital, Referral.referring_hospital_id == Hospital.id) \
            .where(Hospital.code == hospital)
    rows = db.session.scalars(query.order_by(Referral.created_at.desc()).limit(200)).all()
    _log("referral.list", "ok", detail=request.query_string.decode()[:200])
    return {"referrals": [referral_summary(r) for r in rows]}



@bp.get("/referrals/<int:referral_id>")
@login_required
def get_referral(referral_id: int):
    referral = visible_or_refuse(referral_id, "referral.view")
    body = referral_json(referral, current_user, now())
    _log("referral.view", "ok", referral_id)
    return body


@bp.get("/referrals/<int:referral_id>/messages")
@login_required
def list_messages(referral_id: int):
    """The thread with each message's receipts and photo UIDs (reading it here marks
    nothing delivered or read: only a page that shows it does). 403/404 as the referral."""
    referral = visible_or_refuse(referral_id, "referral.messages")
    body = {"messages": thread_json(referral)}
    _log("referral.messages", "ok", referral_id)
    return body


# Its own route beside the thread's GET, so the API document names both on one path.
@bp.post("/referrals/<int:referral_id>/messages")
@login_required
def post_message(referral_id: int):
    return _act(referral_id, "messages")


@bp.post("/referrals/<int:referral_id>/<action>")
@login_required
def act(referral_id: int, action: str):
    return _act(referral_id, action)


# Their own routes, so the API document can say their bodies need the signature.
@bp.post("/referrals/<int:referral_id>/decide")
@login_required
def decide(referral_id: int):
    return _act(referral_id, "decide")


@bp.post("/referrals/<int:referral_id>/addendum")
@login_required
def addendum(referral_id: int):
    return _act(referral_id, "addendum")


def _act(referral_id: int, action: str):
    payload = request.get_json(silent=True) or {}
    visible_or_refuse(referral_id, f"referral.{action}"[:64])
    try:
        referral = referrals.perform(action, referral_id, current_user, payload)
    except DomainError as exc:
        db.session.rollback()
        refused = isinstance(exc, NotAllowed | accounts.SignatureRefused)
        _log(f"referral.{action}"[:64], "denied" if refused else "failure",
             referral_id, str(exc)[:200])
        raise
    _log(f"referral.{action}"[:64], "ok", referral_id)
    return referral_json(referral, current_user, now())
