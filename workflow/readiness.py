"""`/ready`: may a load balancer send this node traffic? Each check named, none calls out.

Ready means the database answers, its schema is at the migrations' head and a
scheduler process swept recently (pages are going out). A schema at a revision this
release does not know is the next release's (`flask db upgrade` runs before the web
nodes restart, and migrations stay backwards compatible for one release): still ready,
and the check says so. A schema behind the head is not ready. The PACS endpoints and the
rota are reported from what the app last saw of them; they never make a node unready
(a node cannot fix them by being taken out of the pool).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from functools import cache
from pathlib import Path

from sqlalchemy import func, select, text

from extensions import db
from models import PacsEndpoint
from workflow.paging import leadership, rota_cover
from workflow.scheduler import heartbeat_status
from workflow.times import now as utcnow

MIGRATIONS = Path(__file__).resolve().parents[1] / "migrations"
SCHEDULER_FRESH = timedelta(minutes=2)


@cache
def migrations_head() -> str:
    """The head revision of migrations/ (read once per process: it changes only with
    a deployment, which restarts the process)."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory(str(MIGRATIONS)).get_current_head()


@cache
def known_revisions() -> frozenset[str]:
    """Every revision in migrations/ (read once per process)."""
    from alembic.script import ScriptDirectory

    return frozenset(s.revision for s in ScriptDirectory(str(MIGRATIONS)).walk_revisions())


def _migrations(at: str | None) -> str:
    head = migrations_head()
    if at == head:
        return "ok"
    if at and at not in known_revisions():
        return f"ok (at {at}, newer than this release's head {head})"
    return f"at {at or 'nothing'}, head is {head}"


def check(now: datetime | None = None) -> tuple[bool, dict]:
    """(ready, body): body is {"status": "ready" | "not ready", "checks": {...},
    "scheduler_leader": {...} | None}. Never raises: a failing check is named."""
    now = now or utcnow()
    checks: dict = {}
    try:
        db.session.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except Exception as exc:  # noqa: BLE001 - any failure is "down"
        db.session.rollback()
        checks["database"] = f"down: {type(exc).__name__}"
        return False, {"status": "not ready", "checks": checks, "scheduler_leader": None}
    try:
        at = db.session.scalar(text("SELECT version_num FROM alembic_version"))
    except Exception:  # noqa: BLE001 - a database made without migrations
        db.session.rollback()
        at = None
    checks["migrations"] = _migrations(at)
    beat = heartbeat_status(now)
    age = beat["age_seconds"]
    fresh = age is not None and age < SCHEDULER_FRESH.total_seconds()
    checks["scheduler"] = ("ok" if fresh else "never swept" if beat["state"] == "never"
                           else f"last sweep {age} s ago")
    checks["pacs"] = _pacs_summary()
    checks["rota_open_gaps"] = len(rota_cover.open_gaps())
    db.session.rollback()
    ready = checks["database"] == checks["scheduler"] == "ok" and \
        checks["migrations"].startswith("ok")
    return ready, {"status": "ready" if ready else "not ready", "checks": checks,
                   "scheduler_leader": leadership.current(now)}


def _pacs_summary() -> dict:
    """How many endpoints are configured and how many failed at their last call."""
    configured = db.session.scalar(select(func.count(PacsEndpoint.id)))
    failing = db.session.scalar(select(func.count(PacsEndpoint.id)).where(
        PacsEndpoint.last_error_at.is_not(None),
        (PacsEndpoint.last_success_at.is_(None))
        | (PacsEndpoint.last_error_at > PacsEndpoint.last_success_at)))
    return {"configured": configured, "failing_at_last_call": failing}
