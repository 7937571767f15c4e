"""Admin pages for paging: system status and escalation policies."""

from __future__ import annotations

import json

from flask import current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user
from flask_wtf import FlaskForm
from sqlalchemy import select
from wtforms import TextAreaField
from wtforms.validators import DataRequired, Length

from extensions import db
from models import EscalationPolicy, HubService
from views.access import client_address, requires
from views.admin import bp
from workflow import access_log, scheduler
from workflow.errors import ValidationFailed
from workflow.paging import escalation, leadership, rota_cover
from workflow.times import now


class PolicyForm(FlaskForm):
    steps = TextAreaField("Steps (JSON)", validators=[DataRequired("Enter at least one step."),
                                                      Length(max=5000)])


def integration_status() -> dict:
    config = current_app.config
    return {
        "twilio": bool(config.get("TWILIO_ACCOUNT_SID")),
        "twilio_base": config.get("TWILIO_API_BASE"),
        "webhooks": bool(config.get("TWILIO_AUTH_TOKEN")),
        "smtp": bool(config.get("SMTP_HOST")),
        "webpush": bool(config.get("VAPID_PRIVATE_KEY")),
        "scheduler": scheduler.heartbeat_status(now()),
        "leader": leadership.current(now()),
        "integrity": scheduler.last_integrity_check(),
        "public_base_url": config["PUBLIC_BASE_URL"],
        "rota_gaps": _rota_gaps(),
    }


def _rota_gaps() -> list[dict]:
    """The rota's gaps in the next 72 hours as the rota says now, each with what the
    scheduler's check told people about it (a gap it has not seen yet says so)."""
    kept = rota_cover.open_gaps()
    rows = []
    for gap in rota_cover.find_gaps(now()):
        told = rota_cover.kept_row(gap, kept)
        rows.append({"gap": gap, "told": told.email_result if told and told.emailed_at
                     else "not yet emailed (the scheduler checks every few minutes)"})
    return rows


@bp.get("/status")
@requires("admin.manage")
def status():
    return render_template("admin/status.html", status=integration_status(),
                           check_form=FlaskForm(),
                           checking=scheduler.integrity_check_running())


@bp.post("/status/integrity-check")
@requires("admin.manage")
def run_integrity_check():
    """Start `flask audit verify`'s check in the background; the page shows its result."""
    if not FlaskForm().validate_on_submit():
        flash("The form had expired; press the button again.")
        return redirect(url_for("admin.status"))
    started = scheduler.start_integrity_check(current_app._get_current_object())
    access_log.record("admin.integrity_check", "ok" if started else "failure",
                      user=current_user, address=client_address(),
                      detail="started" if started else "one is already running")
    db.session.commit()
    flash("The integrity check is running; reload this page in a minute for its result."
          if started else "An integrity check is already running.")
    return redirect(url_for("admin.status") + "#integrity")


@bp.get("/escalation")
@requires("admin.manage")
def escalation_policies():
    services = db.session.scalars(select(HubService).order_by(HubService.name)).all()
    policies = {s.id: escalation.policy_steps(s.id) for s in services}
    return render_template("admin/escalation.html", services=services, policies=policies)


@bp.route("/escalation/<int:service_id>", methods=["GET", "POST"])
@requires("admin.manage")
def edit_escalation(service_id: int):
    service = db.get_or_404(HubService, service_id)
    form = PolicyForm()
    status = 200
    if request.method == "GET":
        form.steps.data = json.dumps(escalation.policy_steps(service.id), indent=2)
    elif form.validate_on_submit():
        try:
            steps = escalation.check_steps(json.loads(form.steps.data))
        except json.JSONDecodeError as exc:
            form.steps.errors = [f"Not valid JSON: {exc.msg} at line {exc.lineno}."]
            status = 422
        except ValidationFailed as exc:
            form.steps.errors = [f"{k}: {v}" for k, v in exc.errors.items()]
            status = 422
        else:
            policy = db.session.scalar(select(EscalationPolicy)
                                       .where(EscalationPolicy.hub_service_id == service.id))
            if policy is None:
                policy = EscalationPolicy(hub_service_id=service.id, steps=steps)
                db.session.add(policy)
            policy.steps, policy.updated_at = steps, now()
            policy.updated_by_id = current_user.id
            db.session.commit()
            access_log.record("admin.escalation_policy", "ok", user=current_user,
                              address=client_address(), detail=service.name)
            flash(f"Saved the escalation policy for {service.name}. Referrals already paging "
                  "keep the policy they started with.")
            return redirect(url_for("admin.escalation_policies"))
    else:
        status = 422
    return render_template("admin/escalation_edit.html", service=service, form=form), status
