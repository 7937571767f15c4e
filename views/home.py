"""Home page, liveness (/health) and readiness (/ready)."""

from __future__ import annotations

from flask import Blueprint, render_template
from flask_login import login_required

from workflow import readiness

bp = Blueprint("home", __name__)


@bp.route("/")
@login_required
def index():
    return render_template("home.html")


@bp.route("/health")
def health():
    """Liveness for load balancers and process supervisors: the process answers. No
    database access, so a database outage never restarts every web worker."""
    return {"status": "ok"}, 200


@bp.route("/ready")
def ready():
    """Readiness: 200 when the database answers at the migrations' head and a scheduler
    swept in the last 2 minutes, else 503; each check named (workflow/readiness.py)."""
    is_ready, body = readiness.check()
    return body, 200 if is_ready else 503
