"""Pager pages: the in-app pager inbox and the signed "accept" link from a page."""

from __future__ import annotations

from flask import Blueprint, current_app, flash, redirect, render_template, url_for
from flask_login import current_user, login_required
from flask_wtf import FlaskForm

from extensions import db
from models import Delivery, Referral
from views.access import client_address, requires
from workflow import access_log
from workflow.errors import DomainError
from workflow.paging import ack_links
from workflow.paging import inbox as pager_inbox
from workflow.paging import replies as pager_replies
from workflow.referrals.summary import clinical_summary
from workflow.times import now

bp = Blueprint("paging", __name__)


class AcceptForm(FlaskForm):
    """Only the CSRF token: accepting is one tap."""


@bp.get("/pager")
@requires("pager.inbox")
def inbox():
    return render_template("paging/inbox.html", groups=pager_inbox.inbox(current_user),
                           push_key=current_app.config["VAPID_PUBLIC_KEY"])


@bp.route("/ack/<token>", methods=["GET", "POST"])
@login_required
def accept_link(token: str):
    """The link in a page: still needs sign-in, works once, expires."""
    form = AcceptForm()
    try:
        delivery_id = ack_links.read_token(token)
    except ack_links.BadLink as exc:
        access_log.record("page.link", "denied", user=current_user, address=client_address(),
                          detail=str(exc))
        return render_template("error.html", status=410, message=str(exc)), 410
    delivery = db.session.get(Delivery, delivery_id)
    if delivery is None or delivery.recipient_id != current_user.id:
        access_log.record("page.link", "denied", user=current_user, address=client_address(),
                          detail="link for someone else")
        return render_template("error.html", status=403,
                               message="This link was sent to someone else."), 403
    if form.validate_on_submit():
        try:
            reference = pager_replies.link_acknowledge(delivery_id, current_user)
        except DomainError as exc:
            db.session.rollback()
            flash(str(exc))
        else:
            access_log.record("referral.acknowledge", "ok", user=current_user,
                              address=client_address(), referral_id=delivery.referral_id,
                              detail="via page link")
            flash(f"You accepted {reference}.")
        return redirect(url_for("referrals.show", referral_id=delivery.referral_id))
    used = delivery.link_used_at is not None
    referral = db.session.get(Referral, delivery.referral_id)
    return render_template("paging/accept.html", delivery=delivery, form=form, used=used,
                           summary=clinical_summary(referral, now()))
