"""Accounts: passwords, sign-in (throttled by account and address, with a second step for
two-factor sign-in), server-side login sessions, API tokens, signatures."""

from __future__ import annotations

import hashlib
import math
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

from flask import current_app
from sqlalchemy import bindparam, func, select, update
from sqlalchemy.orm import joinedload
from werkzeug.security import check_password_hash, generate_password_hash

from extensions import db
from models import AccessLog, ApiToken, Hospital, LoginSession, Role, Specialty, User
from workflow import access_log
from workflow.accounts import two_factor
from workflow.errors import NotFound, ValidationFailed

MIN_PASSWORD_LENGTH = 10


class SignInRefused(Exception):
    """Sign-in failed; the message is safe to show: it never says whether an account
    uses the email address, nor which of email and password was wrong."""


class SignInThrottled(SignInRefused):
    """Too many recent failures from this address (for this email, or in all): try
    again after ``retry_after`` seconds."""

    def __init__(self, message: str, retry_after: int):
        super().__init__(message)
        self.retry_after = retry_after


SIGN_IN_FAILED = ("That email address and password do not match an active account. Check "
                  "both and try again; if your account was deactivated or you have forgotten "
                  "your password, ask your network admin.")
CODE_REFUSED = ("That code is not right, or it was already used. Enter the 6-digit code your "
                "authenticator app shows now, or one of your recovery codes.")
# After LOGIN_MAX_FAILURES failures of one email from one address, each further attempt
# waits this long after the last failure, doubling each time (at most the window).
FIRST_WAIT = timedelta(seconds=30)
_DUMMY_HASHES: dict[str, str] = {}


def hash_password(password: str) -> str:
    method = current_app.config.get("PASSWORD_HASH_METHOD", "scrypt")
    return generate_password_hash(password, method=method)


def check_new_password(password: str) -> None:
    """Raise ValidationFailed when ``password`` is too weak to set."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ValidationFailed(
            {"password": f"Use at least {MIN_PASSWORD_LENGTH} characters."}
        )


def create_user(
    *,
    email: str,
    name: str,
    password: str,
    roles: list[str],
    hospital_code: str | None = None,
    specialties: list[str] = (),
    phone: str = "",
) -> User:
    """Create and commit a user.

    Raises ValidationFailed naming each bad field (email taken, unknown role,
    hospital or specialty, weak password).
    """
    errors: dict[str, str] = {}
    email = email.strip().lower()
    if "@" not in email or email.startswith("@") or email.endswith("@") or " " in email:
        errors["email"] = "Enter an email address like name@hospital.nhs.uk."
    elif db.session.scalar(select(User).where(User.email == email)):
        errors["email"] = "A user with this email address already exists."
    if not name.strip():
        errors["name"] = "Enter the user's name."
    try:
        check_new_password(password)
    except ValidationFailed as exc:
        errors.update(exc.errors)
    bad_roles = sorted(set(roles) - {str(r) for r in Role})
    if bad_roles or not roles:
        errors["roles"] = (
            f"Unknown role {', '.join(bad_roles)}; choose from {', '.join(r.value for r in Role)}."
            if bad_roles
            else "Give the user at least one role."
        )
    hospital = None
    if hospital_code:
        hospital = db.session.scalar(select(Hospital).where(Hospital.code == hospital_code))
        if hospital is None:
            errors["hospital"] = f"No hospital has the code {hospital_code!r}."
    found = list(db.session.scalars(select(Specialty).where(Specialty.code.in_(specialties))))
    unknown = sorted(set(specialties) - {s.code for s in found})
    if unknown:
        errors["specialties"] = f"Unknown specialty {', '.join(unknown)}."
    if errors:
        raise ValidationFailed(errors)
    user = User(
        email=email,
        name=name.strip(),
        phone=phone.strip(),
        password_hash=hash_password(password),
        hospital=hospital,
        specialties=found,
    )
    user.roles = roles
    db.session.add(user)
    db.session.commit()
    return user


def _dummy_hash() -> str:
    """A hash of a random password, made like a real one: what an unknown email is
    checked against, so it costs the same time as a wrong password."""
    method = current_app.config.get("PASSWORD_HASH_METHOD", "scrypt")
    if method not in _DUMMY_HASHES:
        _DUMMY_HASHES[method] = hash_password(secrets.token_urlsafe(24))
    return _DUMMY_HASHES[method]


def _failures_since(since: datetime, address: str, email: str | None = None,
                    after_row: int = 0, limit: int | None = None) -> list[datetime]:
    """When sign-ins from ``address`` (for ``email``, when given) failed, newest first:
    since ``since`` and after the access-log row ``after_row``."""
    query = select(AccessLog.at).where(
        AccessLog.action == "login", AccessLog.outcome == "failure",
        AccessLog.address == address, AccessLog.at >= since, AccessLog.id > after_row)
    if email is not None:
        query = query.where(AccessLog.email == email)
    return list(db.session.scalars(query.order_by(AccessLog.at.desc(), AccessLog.id.desc())
                                   .limit(limit)))


def _wait_words(seconds: int) -> str:
    if seconds < 120:
        return f"{seconds} seconds"
    return f"{-(-seconds // 60)} minutes"


def refuse_if_throttled(email: str, address: str, now: datetime) -> None:
    """Raise SignInThrottled while this email from this address must wait (slowed after
    LOGIN_MAX_FAILURES failures since its last success, the wait doubling), or while the
    address has LOGIN_ADDRESS_MAX_FAILURES failures in the window, whatever the emails.

    Keyed by the email as typed, known or not, so the refusal says nothing about which
    accounts exist; keyed by address, so failures elsewhere never slow the owner. Wrong
    two-factor codes are failed sign-ins too, counted with the wrong passwords."""
    config = current_app.config
    window = timedelta(minutes=config["LOGIN_LOCKOUT_MINUTES"])
    free = config["LOGIN_MAX_FAILURES"]
    last_success = db.session.scalar(select(func.max(AccessLog.id)).where(
        AccessLog.action == "login", AccessLog.outcome == "ok", AccessLog.email == email,
        AccessLog.address == address, AccessLog.at >= now - window))
    pair = _failures_since(now - window, address, email, after_row=last_success or 0)
    until, reason = now, ""
    if len(pair) >= free:
        until = pair[0] + min(FIRST_WAIT * 2 ** (len(pair) - free), window)
        reason = "throttled: this email from this address"
    cap = config["LOGIN_ADDRESS_MAX_FAILURES"]
    everyone = _failures_since(now - window, address, limit=cap)
    if len(everyone) >= cap and everyone[-1] + window > until:
        until, reason = everyone[-1] + window, "throttled: this address"
    if until <= now:
        return
    access_log.record("login", "denied", email=email, address=address, detail=reason)
    wait = max(1, math.ceil((until - now).total_seconds()))
    raise SignInThrottled(f"Too many failed sign-ins from your network. Try again in "
                          f"{_wait_words(wait)}.", wait)


def authenticate(email: str, password: str, address: str) -> User:
    """Check a sign-in and log it (success or failure).

    Raises SignInThrottled while this email from this address, or the address, must
    wait; SignInRefused with one message for an unknown email, a wrong password and a
    deactivated account alike (the log says which). An unknown email is checked
    against a dummy hash, so no answer is quicker than another.
    """
    email = (email or "").strip().lower()
    refuse_if_throttled(email, address, datetime.now(UTC))
    user = db.session.scalar(select(User).where(User.email == email))
    right = check_password_hash(user.password_hash if user else _dummy_hash(), password or "")
    if user is None or not right or not user.active:
        why = "unknown user" if user is None else "bad password" if not right else "deactivated"
        access_log.record("login", "failure", email=email, address=address, detail=why)
        raise SignInRefused(SIGN_IN_FAILED)
    return user


def sign_in_step(user: User, address: str, required_roles: frozenset[str]) -> str:
    """What ``user``, whose password was right, needs before a session: "session"
    (nothing), "code" (a code of their authenticator app) or "enrol" (setting one up,
    as one of their roles in ``required_roles`` requires). The last two are logged as
    ``login.password``: they are not a sign-in yet, and do not forgive failed ones."""
    if user.totp_enabled:
        step, detail = "code", "password right; authenticator code needed"
    elif two_factor.must_enrol(user, required_roles):
        step, detail = "enrol", "password right; two-factor set-up needed"
    else:
        return "session"
    access_log.record("login.password", "ok", user=user, address=address, detail=detail)
    return step


def complete_sign_in(user: User, code: str, address: str) -> LoginSession:
    """The second step of ``user``'s sign-in: a code of their authenticator app (each
    works once) or an unused recovery code (spent); then their session is opened.

    Raises SignInThrottled while their email from this address must wait, and
    SignInRefused (logged as a failed sign-in, counted by the throttle) for a wrong,
    used or expired code.
    """
    refuse_if_throttled(user.email, address, datetime.now(UTC))
    code = (code or "").strip()
    if two_factor.is_authenticator_code(code):
        how, right = "authenticator code", two_factor.claim_code(user, code)
    else:
        how, right = "recovery code", two_factor.claim_recovery_code(user, code)
    if not right:
        access_log.record("login", "failure", user=user, address=address,
                          detail=f"bad {how}")
        raise SignInRefused(CODE_REFUSED)
    return start_session(user, address, detail=f"password and {how}")


def start_session(user: User, address: str, detail: str = "") -> LoginSession:
    """Open a server-side login session for ``user`` and log the sign-in."""
    row = LoginSession(id=secrets.token_urlsafe(32), user_id=user.id, address=address[:64])
    db.session.add(row)
    access_log.record("login", "ok", user=user, address=address, detail=detail, commit=False)
    db.session.commit()
    return row


# Built once: every signed-in request runs it, and building a select with its loader
# options costs more than the database takes to answer it.
_LOGIN_SESSION = (
    select(LoginSession).where(LoginSession.id == bindparam("session_id"))
    .options(joinedload(LoginSession.user).joinedload(User.role_rows),
             joinedload(LoginSession.user).joinedload(User.specialties)))


def load_login_session(session_id: str) -> LoginSession | None:
    """The login session a cookie names, with its user and the user's roles and
    specialties, in one query: every signed-in request starts here, and each query is a
    round trip to the database. Whether the session is still open is `touch_session`'s
    to say; it finds this row in the database session while the row is referenced."""
    return db.session.scalars(_LOGIN_SESSION, {"session_id": session_id}
                              ).unique().one_or_none()


def touch_session(session_id: str | None, user_id: int, idle: timedelta) -> bool:
    """Refresh an open session; False (and the session ended) when it is closed or idle."""
    if not session_id:
        return False
    now = datetime.now(UTC)
    row = db.session.get(LoginSession, session_id)
    if row is None or row.user_id != user_id or row.ended_at is not None:
        return False
    if now - row.last_seen_at > idle:
        row.ended_at = now
        db.session.commit()
        return False
    # Write at most once a minute: a page load should not always be a write.
    if now - row.last_seen_at > timedelta(seconds=60):
        row.last_seen_at = now
        db.session.commit()
    return True


def end_sessions(user: User, address: str) -> None:
    """Sign ``user`` out everywhere: close every open login session of theirs, so no
    cookie of theirs (this browser's, a phone's, a copied one) works again; log it."""
    _close_sessions(user)
    access_log.record("logout", "ok", user=user, address=address, commit=False)
    db.session.commit()


def _close_sessions(user: User) -> None:
    db.session.execute(
        update(LoginSession)
        .where(LoginSession.user_id == user.id, LoginSession.ended_at.is_(None))
        .values(ended_at=datetime.now(UTC))
    )


def _token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def issue_token(email: str, label: str = "") -> str:
    """Create an API token for the user with ``email``; return it (shown once).

    Raises NotFound when no active user has that email.
    """
    user = db.session.scalar(select(User).where(User.email == email.strip().lower()))
    if user is None or not user.active:
        raise NotFound(f"no active user with email {email!r}")
    token = "gh_" + secrets.token_urlsafe(32)
    created = datetime.now(UTC)
    expires = created + timedelta(days=current_app.config.get("API_TOKEN_DAYS", 90))
    db.session.add(ApiToken(user_id=user.id, token_hash=_token_digest(token), label=label,
                            created_at=created, expires_at=expires))
    db.session.commit()
    return token


def revoke_tokens(email: str) -> int:
    """Revoke every live API token of the user with ``email``; return how many.

    Raises NotFound when no user has that email.
    """
    user = db.session.scalar(select(User).where(User.email == email.strip().lower()))
    if user is None:
        raise NotFound(f"no user with email {email!r}")
    result = db.session.execute(
        update(ApiToken)
        .where(ApiToken.user_id == user.id, ApiToken.revoked_at.is_(None))
        .values(revoked_at=datetime.now(UTC))
    )
    db.session.commit()
    return result.rowcount


def _unrevoked(token: str) -> ApiToken | None:
    return db.session.scalar(
        select(ApiToken).where(
            ApiToken.token_hash == _token_digest(token), ApiToken.revoked_at.is_(None)
        )
    )


def user_for_token(token: str) -> User | None:
    """The active user owning a live (unrevoked, unexpired) API token, or None."""
    row = _unrevoked(token)
    if row is None or not row.user.active or row.expires_at <= datetime.now(UTC):
        return None
    _note_use(row)
    return row.user


def token_expired_at(token: str) -> datetime | None:
    """When ``token`` expired, if it is an unrevoked token past its expiry; else None."""
    row = _unrevoked(token)
    if row is not None and row.expires_at <= datetime.now(UTC):
        return row.expires_at
    return None


TOKEN_USE_GRANULARITY = timedelta(minutes=1)


def _note_use(token: ApiToken) -> None:
    """Stamp the token's last use, at most once a minute (one write, not one per call)."""
    now = datetime.now(UTC)
    if token.last_used_at is not None and now - token.last_used_at < TOKEN_USE_GRANULARITY:
        return
    db.session.execute(
        update(ApiToken).where(ApiToken.id == token.id)
        .values(last_used_at=now).execution_options(synchronize_session=False))
    db.session.commit()


def tokens_of(email: str) -> list[ApiToken]:
    """The user's API tokens, newest first (revoked ones too).

    Raises NotFound when no user has that email.
    """
    user = db.session.scalar(select(User).where(User.email == email.strip().lower()))
    if user is None:
        raise NotFound(f"no user with email {email!r}")
    return list(db.session.scalars(select(ApiToken).where(ApiToken.user_id == user.id)
                                   .order_by(ApiToken.created_at.desc(), ApiToken.id.desc())))


def set_password(user: User, password: str) -> None:
    """Set a new password and end the user's open sessions.

    Raises ValidationFailed when the password is too weak.
    """
    check_new_password(password)
    user.password_hash = hash_password(password)
    _close_sessions(user)
    db.session.commit()


def reset_two_factor(user: User) -> None:
    """Turn ``user``'s two-factor sign-in off (a lost phone) and end their open sessions:
    they sign in with their password again and, where a role requires it, enrol anew."""
    two_factor.clear(user)
    _close_sessions(user)
    db.session.commit()


def set_active(user: User, active: bool) -> None:
    """Activate or deactivate a user; deactivating ends their sessions and tokens."""
    user.active = active
    if not active:
        _close_sessions(user)
        db.session.execute(
            update(ApiToken)
            .where(ApiToken.user_id == user.id, ApiToken.revoked_at.is_(None))
            .values(revoked_at=datetime.now(UTC))
        )
    db.session.commit()


class SignatureRefused(ValidationFailed):
    """A signature that does not verify (a wrong password or code): HTTP 422 naming the
    field, written to the access log as a refusal. Its text starts "signature refused",
    which is how `refuse_if_signing_throttled` finds the refusals in the log."""

    def __str__(self) -> str:
        return f"signature refused: {super().__str__()}"


class SigningThrottled(SignatureRefused):
    """Too many wrong signatures by this user lately (HTTP 429): a stolen session cannot
    guess the password or code by signing over and over. Nothing was checked, so its
    own refusals (logged "signing throttled") do not lengthen the wait."""

    status = 429

    def __str__(self) -> str:
        return f"signing throttled: {ValidationFailed.__str__(self)}"


SIGNED_ACTIONS = ("referral.decide", "referral.addendum")


def refuse_if_signing_throttled(user: User, now: datetime) -> None:
    """Raise SigningThrottled, naming the signature field, while ``user`` must wait: after
    LOGIN_MAX_FAILURES refused signatures since their last signed action, each further
    try waits twice as long (30 s at first, at most LOGIN_LOCKOUT_MINUTES), as sign-in
    does."""
    config = current_app.config
    window = timedelta(minutes=config["LOGIN_LOCKOUT_MINUTES"])
    signed = select(func.max(AccessLog.id)).where(
        AccessLog.user_id == user.id, AccessLog.action.in_(SIGNED_ACTIONS),
        AccessLog.outcome == "ok")
    refused = list(db.session.scalars(
        select(AccessLog.at).where(
            AccessLog.user_id == user.id, AccessLog.action.in_(SIGNED_ACTIONS),
            AccessLog.outcome == "denied", AccessLog.detail.like("signature refused%"),
            AccessLog.at >= now - window,
            AccessLog.id > func.coalesce(signed.scalar_subquery(), 0))
        .order_by(AccessLog.at.desc())))
    free = config["LOGIN_MAX_FAILURES"]
    if len(refused) < free:
        return
    until = refused[0] + min(FIRST_WAIT * 2 ** (len(refused) - free), window)
    if until <= now:
        return
    wait = _wait_words(max(1, math.ceil((until - now).total_seconds())))
    field = "signature.totp" if user.totp_enabled else "signature.password"
    raise SigningThrottled({field: f"Too many wrong signatures: nothing was checked. "
                                   f"Try again in {wait}."})


def verify_signature(user: User, secret: Any, what: str = "decision") -> str:
    """Check that ``user`` signs ``what`` (a decision, an addendum) with their own secret,
    re-entered: ``{"password": ...}``, or ``{"totp": ...}`` once two-factor sign-in is on
    for them (then only the code: each code signs once, like it signs in once).

    Returns how they signed: "password" or "totp". Raises ValidationFailed naming the
    field ("signature.password" or "signature.totp") when the secret is missing or not
    text, SignatureRefused when it is wrong (or the code was used), SigningThrottled
    after too many wrong ones (see `refuse_if_signing_throttled`), and
    two_factor.SecretUnreadable when their TOTP secret no longer decrypts.
    """
    refuse_if_signing_throttled(user, datetime.now(UTC))
    given = secret if isinstance(secret, dict) else {}
    if user.totp_enabled:
        code = given.get("totp")
        if not isinstance(code, str) or not code.strip():
            raise ValidationFailed({"signature.totp": "Enter the 6-digit code from your "
                                                      f"authenticator app to sign the {what}."})
        if not two_factor.claim_code(user, code.strip()):
            raise SignatureRefused({"signature.totp": f"That code is not right, or it was "
                                                      f"already used; the {what} was not "
                                                      "signed. Enter the code shown now."})
        return "totp"
    password = given.get("password")
    if not isinstance(password, str) or not password:
        raise ValidationFailed({"signature.password": f"Enter your password to sign the {what}."})
    if not check_password_hash(user.password_hash, password):
        raise SignatureRefused({"signature.password": f"That password is not right; the {what} "
                                                      "was not signed."})
    return "password"
