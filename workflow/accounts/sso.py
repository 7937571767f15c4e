"""Single sign-on: from a person the identity provider vouches for to a goldenhour user.

The identity provider (integrations.oidc) says who someone is; goldenhour alone says
what they may do. A verified identity signs in the user already linked to its subject
or, the first time, the user with its verified email address (and links the subject).
Nobody is ever created here: an unknown or deactivated person is refused, and every
sign-in, each refusal with its reason too, is a ``login.sso`` row in the access log.
"""

from __future__ import annotations

import hmac

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from extensions import db
from integrations.oidc import Authorization, Identity, OIDCError, OpenIDProvider
from models import User
from workflow import access_log

ACTION = "login.sso"
# Failures of the provider itself (not of the person signing in): a 502 page.
PROVIDER_REASONS = frozenset({"timeout", "unreachable", "discovery", "issuer", "client", "key"})


class SSORefused(Exception):
    """Single sign-on did not sign anyone in; the message is safe to show.

    ``status`` is the HTTP status for the page: 403 for the person or their token,
    502 when the identity provider failed or is misconfigured.
    """

    def __init__(self, message: str, *, status: int = 403):
        super().__init__(message)
        self.message = message
        self.status = status


def _refuse(reason: str, message: str, *, address: str, email: str = "",
            status: int = 403) -> SSORefused:
    db.session.rollback()
    access_log.record(ACTION, "denied" if status == 403 else "failure", email=email,
                      address=address, detail=f"{reason}: {message}")
    return SSORefused(message, status=status)


def begin(provider: OpenIDProvider, redirect_uri: str, address: str) -> tuple[str, dict]:
    """Start a sign-in: the identity provider's URL to send the browser to, and what
    to keep in the signed session until it comes back.

    Raises SSORefused (logged) when the identity provider cannot be reached.
    """
    db.session.rollback()  # no transaction (nor SQLite's write lock) held over the call
    try:
        started = provider.authorization(redirect_uri)
    except OIDCError as exc:
        raise _refuse(exc.reason, f"The identity provider is not available: {exc.message}.",
                      address=address, status=502) from None
    pending = {"state": started.state, "nonce": started.nonce,
               "code_verifier": started.code_verifier}
    return started.url, pending


def complete(
    provider: OpenIDProvider,
    pending: dict | None,
    *,
    redirect_uri: str,
    code: str | None,
    state: str | None,
    returned_issuer: str | None,
    error: str | None,
    error_description: str | None,
    address: str,
) -> User:
    """Finish a sign-in the browser came back from; return the user to sign in.

    ``pending`` is what `begin` kept (None when the session holds none); everything
    else is what the browser brought back, of which only ``code`` and ``state`` are
    believed, and ``state`` only when it equals the kept one. The token exchange runs
    outside any database transaction.

    Raises SSORefused (logged) for a wrong or missing state, a refusal by the identity
    provider, a token that fails verification, an unknown, unlinkable or deactivated
    person, or an identity provider that fails.
    """
    db.session.rollback()  # no transaction (nor SQLite's write lock) held over the call
    if not pending or not state or not hmac.compare_digest(
            state.encode(), str(pending.get("state", "")).encode()):
        raise _refuse("state", "This sign-in did not start in this browser, or was already "
                      "used (state). Start again from the sign-in page.", address=address)
    if error:
        said = f": {error_description}" if error_description else ""
        raise _refuse("refused", f"The identity provider did not sign you in ({error}{said}).",
                      address=address)
    if not code:
        raise _refuse("code", "The identity provider sent no sign-in code. Start again from "
                      "the sign-in page.", address=address)
    started = Authorization(url="", state=pending["state"], nonce=pending["nonce"],
                            code_verifier=pending["code_verifier"])
    try:
        identity = provider.identify(code, redirect_uri, started, returned_issuer)
    except OIDCError as exc:
        provider_fault = exc.reason in PROVIDER_REASONS
        then = "Tell your admin." if provider_fault or "sign in again" in exc.message \
            else "Sign in again; if this happens again, tell your admin."
        raise _refuse(exc.reason, f"Single sign-on failed: {exc.message}. {then}",
                      address=address, status=502 if provider_fault else 403) from None
    return _match(identity, address)


def _match(identity: Identity, address: str) -> User:
    """The active user for a verified identity, linking its subject on first use."""
    user = db.session.scalar(select(User).where(User.oidc_subject == identity.subject))
    how = "subject"
    if user is None:
        if not identity.email:
            raise _refuse("no email", "The identity provider did not send your email "
                          "address, so goldenhour cannot tell who you are: ask your admin.",
                          address=address)
        if not identity.email_verified:
            raise _refuse("email not verified", f"The identity provider has not verified "
                          f"{identity.email}: ask your admin.", address=address,
                          email=identity.email)
        user = db.session.scalar(select(User).where(User.email == identity.email))
        how = "email"
        if user is None:
            raise _refuse("unknown user", f"No goldenhour account for {identity.email}: "
                          "ask your admin.", address=address, email=identity.email)
        if user.oidc_subject is not None:
            raise _refuse("linked elsewhere", f"The goldenhour account for {identity.email} "
                          "is linked to another single sign-on identity: ask your admin.",
                          address=address, email=identity.email)
    if not user.active:
        raise _refuse("deactivated", f"The goldenhour account for {user.email} has been "
                      "deactivated: ask your admin.", address=address, email=user.email)
    if user.oidc_subject is None:
        user.oidc_subject = identity.subject
        how = "email, subject linked"
    access_log.record(ACTION, "ok", user=user, address=address, commit=False,
                      detail=f"{identity.issuer} subject {identity.subject}, matched by {how}")
    try:
        db.session.commit()
    except IntegrityError:  # another sign-in linked this subject a moment ago
        raise _refuse("linked elsewhere", "This single sign-on identity is already linked "
                      "to another goldenhour account: ask your admin.", address=address,
                      email=identity.email) from None
    return user
