"""Browsers that take pages by Web Push: a signed-in person's browser subscribes, the
webpush channel pushes to each of their browsers, and a push service's "gone" (404/410)
deletes that subscription."""

from __future__ import annotations

import base64
import binascii
import ipaddress
import logging
from collections.abc import Iterable
from urllib.parse import urlsplit

from sqlalchemy import delete, select

from extensions import db
from integrations.pager.base import PushTarget
from models import PushBrowser, User
from workflow.errors import ValidationFailed
from workflow.times import now

log = logging.getLogger(__name__)

MAX_ENDPOINT = 1000  # the column; real push services use about 200 characters
MAX_PER_PERSON = 10  # a phone, a tablet, a desktop or two: the oldest go first


def _key(raw: object, size: int, field: str, errors: dict) -> str:
    """A base64url value that decodes to ``size`` bytes, as given; else an error."""
    text = raw if isinstance(raw, str) else ""
    try:
        decoded = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        decoded = b""
    if len(decoded) != size or (size == 65 and decoded[0] != 4):
        errors[field] = f"must be the browser's {size}-byte key in base64url"
    return text


def _endpoint(raw: object, allow_local: bool, errors: dict) -> str:
    """The push service's URL: https (http only to 127.0.0.1 outside production)."""
    url = raw.strip() if isinstance(raw, str) else ""
    parts = urlsplit(url)
    local = parts.hostname is not None and _is_loopback(parts.hostname)
    if not url or len(url) > MAX_ENDPOINT or not parts.hostname:
        errors["endpoint"] = f"must be the push service's URL (at most {MAX_ENDPOINT} " \
                             "characters)"
    elif parts.scheme != "https" and not (allow_local and local and parts.scheme == "http"):
        errors["endpoint"] = "must be an https URL"
    elif local and not allow_local:
        errors["endpoint"] = "must be a push service's public address"
    return url


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def subscribe(user: User, body: object, *, allow_local: bool) -> PushBrowser:
    """Store (or renew) the browser subscription ``body`` for ``user``, as the browser's
    ``PushSubscription.toJSON()`` gives it: {"endpoint", "keys": {"p256dh", "auth"}}.

    ``allow_local``: a push service on 127.0.0.1 is accepted (development and tests).
    An endpoint already stored moves to ``user`` (one browser, one person at a time).
    Raises ValidationFailed naming each bad field. Commits.
    """
    errors: dict[str, str] = {}
    body = body if isinstance(body, dict) else {}
    keys = body.get("keys") if isinstance(body.get("keys"), dict) else {}
    endpoint = _endpoint(body.get("endpoint"), allow_local, errors)
    p256dh = _key(keys.get("p256dh"), 65, "keys.p256dh", errors)
    auth = _key(keys.get("auth"), 16, "keys.auth", errors)
    if errors:
        raise ValidationFailed(errors)
    row = db.session.scalar(select(PushBrowser)
                            .where(PushBrowser.endpoint == endpoint))
    if row is None:
        row = PushBrowser(endpoint=endpoint, created_at=now())
        db.session.add(row)
    row.user_id, row.p256dh, row.auth = user.id, p256dh, auth
    db.session.flush()
    older = list(db.session.scalars(
        select(PushBrowser.id).where(PushBrowser.user_id == user.id)
        .order_by(PushBrowser.created_at.desc(), PushBrowser.id.desc())
        .offset(MAX_PER_PERSON)))
    if older:
        db.session.execute(delete(PushBrowser).where(PushBrowser.id.in_(older)))
    db.session.commit()
    return row


def unsubscribe(user: User, endpoint: str) -> bool:
    """Forget ``user``'s subscription at ``endpoint``; False when there was none. Commits."""
    gone = db.session.execute(delete(PushBrowser).where(
        PushBrowser.user_id == user.id, PushBrowser.endpoint == endpoint)).rowcount
    db.session.commit()
    return bool(gone)


def targets(user_id: int) -> tuple[PushTarget, ...]:
    """The browsers ``user_id`` takes pages on, newest first."""
    rows = db.session.scalars(select(PushBrowser)
                              .where(PushBrowser.user_id == user_id)
                              .order_by(PushBrowser.created_at.desc(),
                                        PushBrowser.id.desc()))
    return tuple(PushTarget(r.endpoint, r.p256dh, r.auth) for r in rows)


def forget(endpoints: Iterable[str]) -> int:
    """Delete the subscriptions a push service said are gone; how many. Does not commit."""
    endpoints = list(endpoints)
    if not endpoints:
        return 0
    count = db.session.execute(delete(PushBrowser)
                               .where(PushBrowser.endpoint.in_(endpoints))).rowcount
    log.info("forgot %d push subscription(s) their push service said are gone", count)
    return count
