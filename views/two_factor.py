"""Two-factor sign-in pages: set up an authenticator app (QR code, then a first code),
see whether it is on, and replace the recovery codes.

The set-up page serves a signed-in user, and one whose role requires two-factor sign-in
and who has only given their password (views/auth.py holds that half-signed-in state):
confirming the first code then signs them in.
"""

from __future__ import annotations

from flask import Blueprint, flash, make_response, redirect, render_template, request, url_for
from flask_login import current_user, login_required
from flask_wtf import FlaskForm
from wtforms import StringField
from wtforms.validators import DataRequired, Length

from models import User
from views import auth
from views.access import client_address
from workflow.accounts import accounts, two_factor
from workflow.errors import ValidationFailed

bp = Blueprint("two_factor", __name__, url_prefix="/two-factor")


class CodeForm(FlaskForm):
    code = StringField("Code from your authenticator app",
                       validators=[DataRequired("Enter the 6-digit code your authenticator "
                                                "app shows."), Length(max=20)],
                       render_kw={"autocomplete": "one-time-code", "inputmode": "numeric"})


def _private(body, status: int = 200):
    """A response no cache keeps: it shows a secret or recovery codes."""
    response = make_response(body, status)
    response.headers["Cache-Control"] = "no-store"
    return response


def _recovery_codes_page(codes: list[str], next_url: str):
    return _private(render_template("two_factor/recovery_codes.html", codes=codes,
                                    next_url=next_url))


@bp.route("/")
@login_required
def settings():
    return render_template("two_factor/settings.html", form=CodeForm(),
                           left=two_factor.recovery_codes_left(current_user))


def _enrolling() -> tuple[User | None, bool]:
    """Who is setting up an authenticator, and whether it finishes their sign-in."""
    if current_user.is_authenticated:
        return current_user._get_current_object(), False
    return auth.pending_user("enrol"), True


@bp.route("/enrol", methods=["GET", "POST"])
def enrol():
    user, signing_in = _enrolling()
    if user is None:
        return redirect(url_for("auth.login"))
    if user.totp_enabled:
        flash(two_factor.ALREADY_ON)
        return redirect(url_for("two_factor.settings"))
    form = CodeForm()
    status = 200
    if form.validate_on_submit():
        try:
            codes = two_factor.confirm_enrolment(user, form.code.data, client_address())
        except ValidationFailed as exc:
            form.code.errors = [exc.errors["code"]]
            status = 422
        else:
            if not signing_in:
                return _recovery_codes_page(codes, url_for("two_factor.settings"))
            target = auth.pending_next()
            auth.open_session(user, accounts.start_session(
                user, client_address(), detail="password and a new authenticator"))
            return _recovery_codes_page(codes, target)
    elif request.method == "POST":
        status = 422
    return _private(render_template("two_factor/enrol.html", form=form, signing_in=signing_in,
                                    setup=two_factor.enrolment(user)), status)


@bp.route("/recovery-codes", methods=["POST"])
@login_required
def new_recovery_codes():
    form = CodeForm()
    if form.validate_on_submit():
        try:
            codes = two_factor.new_recovery_codes(current_user._get_current_object(),
                                                  form.code.data, client_address())
        except ValidationFailed as exc:
            form.code.errors = [exc.errors["code"]]
        else:
            return _recovery_codes_page(codes, url_for("two_factor.settings"))
    return render_template("two_factor/settings.html", form=form,
                           left=two_factor.recovery_codes_left(current_user)), 422
