"""Sign-in (the password, then a two-factor code where the user has one), sign-out, idle
expiry and API bearer tokens."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    current_app,
    flash,
    g,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_login import current_user, login_user, logout_user
from flask_wtf import FlaskForm
from wtforms import EmailField, PasswordField, StringField
from wtforms.validators import DataRequired, Length

from extensions import db, login_manager
from models import LoginSession, User
from views.access import client_address
from workflow import access_log
from workflow.accounts import accounts, two_factor

bp = Blueprint("auth", __name__)


class LoginForm(FlaskForm):
    email = EmailField("Email", validators=[DataRequired("Enter your email address."),
                                            Length(max=254)])
    password = PasswordField("Password", validators=[DataRequired("Enter your password."),
                                                     Length(max=200)])


class CodeForm(FlaskForm):
    code = StringField("Code", validators=[DataRequired("Enter the code from your "
                                                        "authenticator app."), Length(max=40)],
                       render_kw={"autocomplete": "one-time-code", "autocapitalize": "off",
                                  "spellcheck": "false"})


# Between a right password and the second step, the session holds only this: who, which
# step, until when, and where to go next. It signs nobody in (no login_user, no
# LoginSession), so it reaches nothing but the step's own page, and only for minutes:
# enough to open an authenticator app, or to install one.
PENDING = "pending_sign_in"
PENDING_FOR = {"code": timedelta(minutes=5), "enrol": timedelta(minutes=15)}


SIGNED_IN_BY = "signed_in_by"  # "sso" when the identity provider vouched for the session


def hold_sign_in(user: User, step: str, next_url: str) -> None:
    """Replace the session with the half-signed-in state of ``user`` awaiting ``step``."""
    session.clear()
    until = datetime.now(UTC) + PENDING_FOR[step]
    session[PENDING] = {"user_id": user.id, "step": step, "next": next_url,
                        "until": until.timestamp()}


def pending_user(step: str) -> User | None:
    """The active user whose sign-in awaits ``step`` in this session and has not timed
    out; None otherwise (an expired wait is dropped and the sign-in page says so)."""
    held = session.get(PENDING)
    if not isinstance(held, dict) or held.get("step") != step:
        return None
    if datetime.now(UTC).timestamp() > held.get("until", 0):
        session.pop(PENDING)
        session["pending_expired"] = True
        return None
    user = db.session.get(User, held.get("user_id"))
    return user if user is not None and user.active else None


def pending_next() -> str:
    """Where the held sign-in was going (a path on this site, checked at the password)."""
    return (session.get(PENDING) or {}).get("next") or url_for("home.index")


def open_session(user: User, row: LoginSession) -> None:
    """Sign ``user`` in to this browser with the server-side session ``row``, in a new
    session (no fixation): whatever was held before is gone."""
    session.clear()
    session["sid"] = row.id
    session.permanent = False
    login_user(user)


def _is_api_request() -> bool:
    return request.path.startswith("/api/")


def _bearer_token() -> str | None:
    """The credentials of an ``Authorization: Bearer`` header ("" when there are none),
    or None when the request claims no token: no header, or another scheme (a proxy's
    Basic credentials, junk), which authenticates nothing here."""
    scheme, _, credentials = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer":
        return None
    return credentials.strip()


def _token_user() -> User | None:
    """The owner of the request's bearer token when it verifies, once per request."""
    if "token_user" not in g:
        token = _bearer_token()
        g.token_user = accounts.user_for_token(token) if token else None
        if g.token_user is not None:
            g.authenticated_by = "token"
    return g.token_user


def token_authenticated() -> bool:
    """True when this request was signed in by a verified API token, not by a cookie:
    only then may the session checks and CSRF be skipped."""
    return g.get("authenticated_by") == "token"


@login_manager.user_loader
def _load_user(user_id: str) -> User | None:
    if _bearer_token() is not None:
        return _token_user()  # a request that claims a token is judged by it alone
    try:
        user_id = int(user_id)
    except ValueError:
        return None
    # g keeps the row for the rest of the request: the database session holds rows
    # weakly, and _authenticate's touch_session then finds it without another query.
    row = g.login_session = accounts.load_login_session(session["sid"]) \
        if session.get("sid") else None
    if row is not None and row.user_id == user_id:
        return row.user
    return db.session.get(User, user_id)


@login_manager.request_loader
def _load_user_from_bearer(req) -> User | None:
    return _token_user() if _bearer_token() is not None else None


@login_manager.unauthorized_handler
def _unauthorized():
    if _is_api_request():
        return {"error": "authentication required: send Authorization: Bearer <token>"}, 401
    return redirect(url_for("auth.login", next=request.full_path.rstrip("?")))


BAD_TOKEN = ("The API token was not accepted: it is unknown, revoked, or its user is "
             "deactivated. Send Authorization: Bearer <token> with a valid token.")


def _refuse_bad_token():
    """401 for a bearer token that did not verify; an expired one is told so."""
    expired = accounts.token_expired_at(_bearer_token() or "")
    message = BAD_TOKEN if expired is None else (
        f"This API token expired on {expired:%Y-%m-%d %H:%M} UTC; ask an admin for a new "
        "one (flask users token EMAIL).")
    access_log.record("token", "denied", address=client_address(),
                      detail=f"{'expired' if expired else 'invalid'} bearer token: "
                             f"{request.method} {request.path}")
    if _is_api_request() or request.accept_mimetypes.best == "application/json":
        response = current_app.make_response(({"error": message}, 401))
    else:
        response = current_app.make_response(
            (render_template("error.html", status=401, message=message), 401))
    response.headers["WWW-Authenticate"] = 'Bearer error="invalid_token"'
    return response


# Answered alike for everyone, without the database: a signed-in browser's cookie on
# /health must not cost it the session and user queries (nor fail it when PostgreSQL
# is down, which would restart every web worker).
NO_SIGN_IN = frozenset({"static", "home.health"})


def _authenticate():
    """Decide how this request is signed in: by a bearer token that verifies (a bad one
    is a 401, whatever cookie comes with it), or by a cookie whose server-side session is
    still open and not idle (sign-out, a password reset, deactivation and idle time
    close it). No other header changes anything."""
    if request.endpoint in NO_SIGN_IN:
        return None
    if _bearer_token() is not None:
        return None if _token_user() is not None else _refuse_bad_token()
    if not current_user.is_authenticated:
        return None
    idle = timedelta(minutes=current_app.config["IDLE_TIMEOUT_MINUTES"])
    if accounts.touch_session(session.get("sid"), current_user.id, idle):
        if session.get(SIGNED_IN_BY) != "sso" and \
                two_factor.must_enrol(current_user, current_app.config["REQUIRE_2FA_ROLES"]):
            return _send_to_enrol()
        g.authenticated_by = "session"
        return None
    logout_user()
    session.clear()
    session["expired"] = True
    return None


def _send_to_enrol():
    """A session opened before the user's role required two-factor sign-in: it ends, and
    the user sets up an authenticator before anything else (an API call is a 401)."""
    user = current_user._get_current_object()
    accounts.end_sessions(user, client_address())
    logout_user()
    hold_sign_in(user, "enrol", _safe_next(request.full_path.rstrip("?"))
                 if request.method == "GET" else url_for("home.index"))
    if _is_api_request():
        return None
    return redirect(url_for("two_factor.enrol"))


def init_app(app) -> None:
    app.before_request(_authenticate)
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


def sign_in_by_sso(user: User, next_url: str | None):
    """Open a session for ``user``, whom the identity provider has just vouched for, and
    redirect to ``next_url`` when it is a path on this site, else the home page.

    No authenticator code is asked for: the provider did the strong sign-in (NHS CIS2: a
    smartcard or its app), so roles that require two-factor sign-in here are not sent to
    enrol for the session it opened.
    """
    open_session(user, accounts.start_session(user, client_address(), detail="single sign-on"))
    session[SIGNED_IN_BY] = "sso"
    return redirect(_safe_next(next_url))


@bp.route("/login", methods=["GET", "POST"])
def login():
    form = LoginForm()
    message, status, headers = None, 200, {}
    if request.method == "GET" and session.pop("expired", False):
        message = (f"Your session ended after {current_app.config['IDLE_TIMEOUT_MINUTES']} "
                   "minutes without activity, or you signed out. Sign in again.")
    if request.method == "GET" and session.pop("pending_expired", False):
        message = "Your sign-in waited too long for its next step. Sign in again."
    if form.validate_on_submit():
        try:
            user = accounts.authenticate(form.email.data, form.password.data, client_address())
        except accounts.SignInThrottled as exc:
            message, status, headers = str(exc), 429, {"Retry-After": str(exc.retry_after)}
        except accounts.SignInRefused as exc:
            message, status = str(exc), 401
        else:
            target = _safe_next(request.args.get("next"))
            step = accounts.sign_in_step(user, client_address(),
                                         current_app.config["REQUIRE_2FA_ROLES"])
            if step == "session":
                open_session(user, accounts.start_session(user, client_address()))
                return redirect(target)
            hold_sign_in(user, step, target)
            return redirect(url_for("auth.code" if step == "code" else "two_factor.enrol"))
    return render_template("auth/login.html", form=form, message=message), status, headers


@bp.route("/login/code", methods=["GET", "POST"])
def code():
    """The second step of sign-in: the authenticator's code, or a recovery code."""
    user = pending_user("code")
    if user is None:
        return redirect(url_for("auth.login"))
    form = CodeForm()
    message, status, headers = None, 200, {}
    if form.validate_on_submit():
        try:
            row = accounts.complete_sign_in(user, form.code.data, client_address())
        except accounts.SignInThrottled as exc:
            message, status, headers = str(exc), 429, {"Retry-After": str(exc.retry_after)}
        except accounts.SignInRefused as exc:
            message, status = str(exc), 401
        else:
            target = pending_next()
            open_session(user, row)
            return redirect(target)
    elif request.method == "POST":
        status = 422
    return render_template("auth/code.html", form=form, message=message), status, headers


@bp.route("/logout", methods=["POST"])
def logout():
    if current_user.is_authenticated:
        accounts.end_sessions(current_user, client_address())
    logout_user()
    session.clear()
    flash("You have signed out.")
    return redirect(url_for("auth.login"))
