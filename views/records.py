"""Decision record PDFs: served exactly as stored; every download is logged."""

from __future__ import annotations

from flask import Blueprint, Response, abort
from flask_login import current_user, login_required
from sqlalchemy import select

from extensions import db
from models import DecisionRecord
from views.access import client_address, visible_or_refuse
from workflow import access_log

bp = Blueprint("records", __name__)


@bp.get("/referrals/<int:referral_id>/records/<int:version>.pdf")
@login_required
def download(referral_id: int, version: int):
    """The stored PDF; abort(404) when there is no such version or it is not ready."""
    visible_or_refuse(referral_id, "record.download")
    record = db.session.scalar(select(DecisionRecord).where(
        DecisionRecord.referral_id == referral_id, DecisionRecord.version == version))
    if record is None or record.status != "ready":
        abort(404)
    access_log.record("record.download", "ok", user=current_user, address=client_address(),
                      referral_id=referral_id, detail=f"v{version} sha256 {record.pdf_sha256}")
    response = Response(record.pdf, mimetype="application/pdf")
    response.headers["Content-Disposition"] = (
        f'attachment; filename="decision-{record.content["reference"]}-v{version}.pdf"')
    response.headers["X-Content-SHA256"] = record.content_sha256
    return response
