"""Signed, single-use, expiring links in pages: "open <link> to accept"."""

from __future__ import annotations

from flask import current_app
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

MAX_AGE_SECONDS = 6 * 3600


class BadLink(Exception):
    """The link was altered, has expired, or was already used; the message says which."""


def _serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.secret_key, salt="goldenhour-page-ack")


def make_token(delivery_id: int) -> str:
    return _serializer().dumps(delivery_id)


def url_for_delivery(delivery_id: int) -> str:
    return f"{current_app.config['PUBLIC_BASE_URL']}/ack/{make_token(delivery_id)}"


def read_token(token: str) -> int:
    """The delivery id in ``token``. Raises BadLink (expired or altered)."""
    try:
        return int(_serializer().loads(token, max_age=MAX_AGE_SECONDS))
    except SignatureExpired:
        raise BadLink("This link has expired. Open the referral from your worklist.") from None
    except (BadSignature, ValueError, TypeError):
        raise BadLink("This link is not valid. Open the referral from your worklist.") from None
