"""FHIR R4 JSON for one referral, under /api/v1 beside the JSON API."""

from __future__ import annotations

import json

from flask import Blueprint, Response, current_app, request
from flask_login import current_user, login_required

from views.access import client_address, visible_or_refuse
from workflow import access_log
from workflow.referrals import fhir
from workflow.times import now

bp = Blueprint("api_fhir", __name__, url_prefix="/api/v1")


@bp.get("/referrals/<int:referral_id>/fhir")
@login_required
def referral_bundle(referral_id: int):
    """The referral as a FHIR Bundle; refused (and logged) outside the user's rights."""
    referral = visible_or_refuse(referral_id, "referral.view", "fhir")
    base_url = current_app.config.get("PUBLIC_BASE_URL") or request.host_url
    bundle = fhir.referral_bundle(referral, base_url, now())
    access_log.record("referral.view", "ok", user=current_user, address=client_address(),
                      referral_id=referral_id, detail="fhir")
    return Response(json.dumps(bundle, ensure_ascii=False), mimetype="application/fhir+json")
