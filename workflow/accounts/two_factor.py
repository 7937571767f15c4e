"""Two-factor sign-in: an authenticator app's TOTP secret (RFC 6238: 6 digits, 30-second
steps), encrypted at rest; enrolment by QR code, confirmed by a first code; codes that
work once; one-time recovery codes, stored hashed.

Sign-in's throttle and login sessions stay in accounts.py, which calls this module; this
module calls nothing of accounts.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass

import pyotp
import segno
from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from flask import current_app
from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.orm.attributes import set_committed_value

from extensions import db
from models import RecoveryCode, User
from workflow import access_log
from workflow.errors import Conflict, ValidationFailed
from workflow.times import now

ISSUER = "goldenhour"
# The steps before and after now are accepted too: a phone's clock a little off, or a
# code typed just as it changed.
VALID_WINDOW = 1
RECOVERY_CODE_COUNT = 10
RECOVERY_CODE_LENGTH = 10  # ~49 bits, hashed with a key the database does not hold
RECOVERY_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"  # no 0/o, 1/l/i to misread

ALREADY_ON = ("Two-factor sign-in is already on for this account; its key is never shown "
              "again. If you lost your authenticator, ask your network admin to reset it.")
WRONG_CODE = ("That code is not right, or it was already used. Enter the 6-digit code "
              "your authenticator app shows now.")
UNREADABLE = ("Your authenticator key cannot be read: the server's SECRET_KEY changed "
              "since you set it up. Ask your network admin to reset your two-factor "
              "sign-in, then set it up again.")


class SecretUnreadable(Conflict):
    """The stored secret does not decrypt with the key derived from SECRET_KEY (HTTP 409):
    only an admin's reset and a new enrolment mend it."""


def _key(purpose: bytes) -> bytes:
    """A 32-byte key for one purpose, derived from the app's SECRET_KEY (HKDF-SHA256)."""
    secret_key = current_app.config["SECRET_KEY"].encode()
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=purpose).derive(secret_key)


def _fernet() -> Fernet:
    return Fernet(base64.urlsafe_b64encode(_key(b"goldenhour totp secret")))


def _secret(user: User) -> str:
    """The user's TOTP secret in clear. Raises SecretUnreadable."""
    try:
        return _fernet().decrypt(user.totp_secret.encode()).decode()
    except InvalidToken:
        raise SecretUnreadable(UNREADABLE) from None


def must_enrol(user: User, required_roles: frozenset[str]) -> bool:
    """True when one of ``user``'s roles requires two-factor sign-in and they have none."""
    return not user.totp_enabled and bool(user.roles & required_roles)


@dataclass(frozen=True)
class Enrolment:
    """What the user needs to set up their authenticator app."""

    secret: str  # base32, to type in
    uri: str  # otpauth://totp/goldenhour:<email>?secret=...&issuer=goldenhour
    qr_svg: str  # the URI as a QR code, an inline <svg> element


def enrolment(user: User) -> Enrolment:
    """Start (or show again, until its first code confirms it) the set-up of ``user``'s
    authenticator app: a new secret, stored encrypted, its otpauth:// URI and QR code.

    Raises Conflict once two-factor sign-in is on: the secret is never shown again.
    """
    if user.totp_enabled:
        raise Conflict(ALREADY_ON)
    try:
        secret = _secret(user) if user.totp_secret else ""
    except SecretUnreadable:
        secret = ""  # an unconfirmed set-up under an old key: start afresh
    if not secret:
        secret = pyotp.random_base32()
        user.totp_secret = _fernet().encrypt(secret.encode()).decode()
        db.session.commit()
    uri = pyotp.TOTP(secret).provisioning_uri(name=user.email, issuer_name=ISSUER)
    return Enrolment(secret=secret, uri=uri, qr_svg=qr_svg(uri))


def qr_svg(text: str) -> str:
    """``text`` as a QR code: an inline SVG element, drawn here (no network, no script),
    black on white with its quiet zone so it scans on a dark page too."""
    return segno.make(text, error="m").svg_inline(
        scale=5, border=4, dark="#000", light="#fff",
        title="QR code to scan with your authenticator app")


def _matching_step(secret: str, code: str) -> int | None:
    """The time step (now, or one either side) whose code ``code`` is, or None."""
    code = "".join(code.split())
    if len(code) != 6 or not code.isdigit():
        return None
    totp = pyotp.TOTP(secret)
    current = totp.timecode(now())
    for step in range(current - VALID_WINDOW, current + VALID_WINDOW + 1):
        if hmac.compare_digest(totp.generate_otp(step), code):
            return step
    return None


def claim_code(user: User, code: str) -> bool:
    """True when ``code`` is ``user``'s authenticator code for now (a step either side
    allowed) and no code of that step or a later one was accepted before: its step is then
    taken, in the caller's transaction, so the same code never works twice (a replay, or a
    second request racing the first, finds the step taken).

    Raises SecretUnreadable when the stored secret does not decrypt.
    """
    if not user.totp_secret:
        return False
    step = _matching_step(_secret(user), code)
    if step is None:
        return False
    taken = db.session.execute(
        update(User)
        .where(User.id == user.id,
               or_(User.totp_last_step.is_(None), User.totp_last_step < step))
        .values(totp_last_step=step)
        .execution_options(synchronize_session=False)
    ).rowcount
    if taken:
        set_committed_value(user, "totp_last_step", step)
    return bool(taken)


def is_authenticator_code(code: str) -> bool:
    """True when ``code`` looks like an authenticator code (6 digits), not a recovery code."""
    code = "".join(code.split())
    return len(code) == 6 and code.isdigit()


def _recovery_digest(user_id: int, code: str) -> str:
    """HMAC-SHA256 of the code (letters and digits only, lower case) with a key derived
    from SECRET_KEY: the database alone cannot be searched for the codes."""
    plain = "".join(ch for ch in code.lower() if ch.isalnum())
    return hmac.new(_key(b"goldenhour recovery codes"), f"{user_id}:{plain}".encode(),
                    hashlib.sha256).hexdigest()


def _replace_recovery_codes(user: User) -> list[str]:
    """New recovery codes for ``user`` (shown once), the old ones deleted; not committed."""
    db.session.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user.id))
    codes = []
    for _ in range(RECOVERY_CODE_COUNT):
        plain = "".join(secrets.choice(RECOVERY_ALPHABET) for _ in range(RECOVERY_CODE_LENGTH))
        codes.append(f"{plain[:5]}-{plain[5:]}")
        db.session.add(RecoveryCode(user_id=user.id, code_hash=_recovery_digest(user.id, plain)))
    return codes


def claim_recovery_code(user: User, code: str) -> bool:
    """True when ``code`` is one of ``user``'s recovery codes not used yet: it is then
    spent, in the caller's transaction."""
    if not user.totp_enabled:
        return False
    return bool(db.session.execute(
        update(RecoveryCode)
        .where(RecoveryCode.user_id == user.id,
               RecoveryCode.code_hash == _recovery_digest(user.id, code),
               RecoveryCode.used_at.is_(None))
        .values(used_at=now())
        .execution_options(synchronize_session=False)
    ).rowcount)


def recovery_codes_left(user: User) -> int:
    return db.session.scalar(select(func.count()).select_from(RecoveryCode).where(
        RecoveryCode.user_id == user.id, RecoveryCode.used_at.is_(None)))


def _require_code(user: User, code: str, action: str, address: str) -> None:
    """Claim ``code`` (see `claim_code`) for ``action``; a wrong or used code is logged as
    a failure of ``action`` (committed) before ValidationFailed naming ``code`` is raised.

    Raises SecretUnreadable when the stored secret does not decrypt.
    """
    if not claim_code(user, code):
        access_log.record(action, "failure", user=user, address=address, detail="wrong code")
        raise ValidationFailed({"code": WRONG_CODE})


def confirm_enrolment(user: User, code: str, address: str) -> list[str]:
    """Turn two-factor sign-in on for ``user`` when ``code`` comes from the authenticator
    set up by `enrolment`; return their recovery codes (shown once). Logged either way.

    Raises Conflict when it is already on (or no set-up was started), SecretUnreadable,
    and ValidationFailed naming ``code`` when the code is wrong: it stays off.
    """
    if user.totp_enabled:
        raise Conflict(ALREADY_ON)
    if not user.totp_secret:
        raise Conflict("Open the set-up page again: no authenticator set-up was started.")
    _require_code(user, code, "2fa.enrol", address)
    user.totp_enabled_at = now()
    codes = _replace_recovery_codes(user)
    access_log.record("2fa.enrol", "ok", user=user, address=address, commit=False)
    db.session.commit()
    return codes


def new_recovery_codes(user: User, code: str, address: str) -> list[str]:
    """Replace ``user``'s recovery codes, once a current authenticator code proves it is
    them (a session alone is not enough); the old codes stop working. Logged either way.

    Raises Conflict when two-factor sign-in is off, SecretUnreadable, and ValidationFailed
    naming ``code`` when the code is wrong or used.
    """
    if not user.totp_enabled:
        raise Conflict("Two-factor sign-in is off for this account: set it up first.")
    _require_code(user, code, "2fa.recovery_codes", address)
    codes = _replace_recovery_codes(user)
    access_log.record("2fa.recovery_codes", "ok", user=user, address=address, commit=False)
    db.session.commit()
    return codes


def clear(user: User) -> None:
    """Turn ``user``'s two-factor sign-in off: secret, last code and recovery codes gone,
    so they must enrol again (not committed)."""
    user.totp_secret = ""
    user.totp_enabled_at = None
    user.totp_last_step = None
    db.session.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user.id))
