"""Home page and the health check."""

from __future__ import annotations

from flask import Blueprint, render_template
from flask_login import login_required
from sqlalchemy import text

from extensions import db
from workflow.paging import rota_cover
from workflow.times import now

bp = Blueprint("home", __name__)


@bp.route("/")
@login_required
def index():
    return render_template("home.html")


@bp.route("/health")
def health():
    """For load balancers and monitoring: 503 when the database is down; "degraded"
    when the paging scheduler has not swept for 30 s (pages are not going out) or a
    hub service's tier has nobody reachable on call now. Rota gaps in the next 72
    hours are listed in ``checks.rota_gaps``."""
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
    at = now()
    gaps = rota_cover.find_gaps(at)
    checks["rota"] = "covered" if not gaps else f"{len(gaps)} gap(s) in the next 72 h"
    checks["rota_gaps"] = [{"service": g.service_name, "tier": g.tier,
                            "starts_at": g.starts_at.isoformat(),
                            "ends_at": g.ends_at.isoformat(), "reasons": list(g.reasons)}
                           for g in gaps]
    # A gap now means a referral raised now pages nobody at that tier.
    healthy = beat["state"] == "ok" and not any(g.starts_at <= at for g in gaps)
    # A stale scheduler means pages are not going out: say so loudly, but keep serving.
    return {"status": "ok" if healthy else "degraded", "checks": checks}, 200
