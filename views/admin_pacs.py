"""Admin pages for the hospitals' PACS endpoints: status, settings, "test connection"."""

from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_login import current_user
from sqlalchemy import select

from extensions import db
from models import Hospital
from views.access import client_address, requires
from workflow import access_log
from workflow.errors import ValidationFailed
from workflow.imaging import endpoints as pacs_endpoints

bp = Blueprint("admin_pacs", __name__, url_prefix="/admin/pacs")


def _log(detail: str) -> None:
    access_log.record("admin.pacs", "ok", user=current_user, address=client_address(),
                      detail=detail)


@bp.app_template_global()
def pacs_status() -> list[Hospital]:
    """Hospitals with a PACS endpoint, for the admin status page."""
    return [h for h in db.session.scalars(select(Hospital).order_by(Hospital.name))
            if h.pacs is not None and h.pacs.base_url]


@bp.get("/")
@requires("admin.manage")
def index():
    hospitals = db.session.scalars(select(Hospital).order_by(Hospital.name)).all()
    return render_template("admin/pacs.html", hospitals=hospitals)


def _hospital(code: str) -> Hospital:
    """The hospital with ``code``; abort(404) when there is none."""
    hospital = db.session.scalar(select(Hospital).where(Hospital.code == code))
    if hospital is None:
        abort(404)
    return hospital


@bp.route("/<code>", methods=["GET", "POST"])
@requires("admin.manage")
def edit(code: str):
    hospital = _hospital(code)
    errors: dict[str, str] = {}
    if request.method == "POST":
        try:
            pacs_endpoints.update_endpoint(hospital, request.form)
        except ValidationFailed as exc:
            db.session.rollback()
            errors = exc.errors
        else:
            _log(f"PACS endpoint of {code} changed")
            flash(f"{hospital.name} PACS settings saved.")
            return redirect(url_for("admin_pacs.index"))
    return render_template("admin/pacs_edit.html", hospital=hospital, errors=errors,
                           form=request.form if request.method == "POST" else None,
                           auth_types=pacs_endpoints.AUTH_TYPES), 422 if errors else 200


@bp.post("/<code>/test")
@requires("admin.manage")
def test(code: str):
    hospital = _hospital(code)
    if hospital.pacs is None or not hospital.pacs.base_url:
        abort(404)
    outcome = pacs_endpoints.test_connection(hospital.pacs.id)
    _log(f"PACS test of {code}: {'ok' if outcome.ok else outcome.error}")
    if outcome.ok:
        flash(f"{hospital.name} PACS answered in {outcome.latency_ms} ms.")
    else:
        flash(f"{hospital.name} PACS test failed: {outcome.error}")
    return redirect(url_for("admin_pacs.index"))
