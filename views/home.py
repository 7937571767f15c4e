"""Home page and the health check."""

from __future__ import annotations

from flask import Blueprint, render_template
from flask_login import login_required
from sqlalchemy import text

from extensions import db

bp = Blueprint("home", __name__)


@bp.route("/")
@login_required
def index():
    return render_template("home.html")


@bp.route("/health")
def health():
    """For load balancers and monitoring: 200 when the database answers, else 503."""
    checks = {}
    try:
        db.session.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except Exception as exc:  # noqa: BLE001 - any failure is "down"
        checks["database"] = f"down: {type(exc).__name__}"
    finally:
        db.session.rollback()
    healthy = all(v == "ok" for v in checks.values())
    return {"status": "ok" if healthy else "degraded", "checks": checks}, 200 if healthy else 503
