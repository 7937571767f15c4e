"""Sign-in, sign-out, idle expiry and API bearer tokens."""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_login import current_user, login_user, logout_user
from flask_wtf import FlaskForm
from wtforms import EmailField, PasswordField
from wtforms.validators import DataRequired, Length

from extensions import db, login_manager
from models import User
from views.access import client_address
from workflow.accounts import accounts

bp = Blueprint("auth", __name__)


class LoginForm(FlaskForm):
    email = EmailField("Email", validators=[DataRequired("Enter your email address."),
                                            Length(max=254)])
    password = PasswordField("Password", validators=[DataRequired("Enter your password."),
                                                     Length(max=200)])


def _is_api_request() -> bool:
    return request.path.startswith("/api/")


@login_manager.user_loader
def _load_user(user_id: str) -> User | None:
    try:
        return db.session.get(User, int(user_id))
    except ValueError:
        return None


@login_manager.request_loader
def _load_user_from_bearer(req) -> User | None:
    header = req.headers.get("Authorization", "")
    if header.startswith("Bearer "):
        return accounts.user_for_token(header[len("Bearer "):].strip())
    return None


@login_manager.unauthorized_handler
def _unauthorized():
    if _is_api_request():
        return {"error": "authentication required: send Authorization: Bearer <token>"}, 401
    return redirect(url_for("auth.login", next=request.full_path.rstrip("?")))


def _check_session() -> None:
    """Refuse a cookie whose server-side session is closed or idle (logout, timeout)."""
    if not current_user.is_authenticated or request.headers.get("Authorization"):
        return
    if request.endpoint in {"static", None}:
        return
    idle = timedelta(minutes=current_app.config["IDLE_TIMEOUT_MINUTES"])
    if not accounts.touch_session(session.get("sid"), current_user.id, idle):
        logout_user()
        session.clear()
        session["expired"] = True


def init_app(app) -> None:
    app.before_request(_check_session)
    login_manager.login_view = "auth.login"
    login_manager.session_protection = None  # our server-side session does this job


def _safe_next(target: str | None) -> str:
    """``target`` when it is a path on this site, else the home page.

    Browsers read a backslash as a slash, so "/\\evil.example" would leave the site.
    """
    if target and "\\" not in target and not any(ord(c) < 32 for c in target):
        parts = urlsplit(target)
        if not parts.scheme and not parts.netloc and target.startswith("/"):
            return target
    return url_for("home.index")


@bp.route("/login", methods=["GET", "POST"])
def login():
    form = LoginForm()
    message = None
    if request.method == "GET" and session.pop("expired", False):
        message = (f"Your session ended after {current_app.config['IDLE_TIMEOUT_MINUTES']} "
                   "minutes without activity, or you signed out. Sign in again.")
    if form.validate_on_submit():
        try:
            user = accounts.authenticate(form.email.data, form.password.data, client_address())
        except accounts.SignInRefused as exc:
            message = str(exc)
        else:
            session.clear()  # a new session on sign-in: no fixation
            row = accounts.start_session(user, client_address())
            session["sid"] = row.id
            session.permanent = False
            login_user(user)
            return redirect(_safe_next(request.args.get("next")))
    status = 401 if message and request.method == "POST" else 200
    return render_template("auth/login.html", form=form, message=message), status


@bp.route("/logout", methods=["POST"])
def logout():
    user = current_user if current_user.is_authenticated else None
    accounts.end_session(session.get("sid"), user, client_address())
    logout_user()
    session.clear()
    flash("You have signed out.")
    return redirect(url_for("auth.login"))
