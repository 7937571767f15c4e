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
    """For load balancers and monitoring: 503 when the database is down; "degraded"
    when the paging scheduler has not swept for 30 s (pages are not going out)."""
    checks = {}
    try:
        db.session.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except Exception as exc:  # noqa: BLE001 - any failure is "down"
        checks["database"] = f"down: {type(exc).__name__}"
    finally:
        db.session.rollback()
    if checks["database"] != "ok":
        return {"status": "down", "checks": checks}, 503
    from workflow.scheduler import heartbeat_status

    beat = heartbeat_status()
    checks["scheduler"] = beat["state"]
    checks["scheduler_last_sweep_seconds_ago"] = beat["age_seconds"]
    healthy = beat["state"] == "ok"
    # A stale scheduler means pages are not going out: say so loudly, but keep serving.
    return {"status": "ok" if healthy else "degraded", "checks": checks}, 200
