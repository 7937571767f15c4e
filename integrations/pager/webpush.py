"""Web Push pages (RFC 8030), encrypted for each browser (RFC 8291, aes128gcm) and signed
with our VAPID key (RFC 8292), through ``pywebpush``.

A push is "sent" when a push service took it (201): it says nothing about whether a
person saw it, so, as for SMS, a page is reached only when someone acknowledges. The
payload names the referral's reference, its specialty and the page link, nothing about
the patient: the push service is one more party that must not learn who is ill.

Every push service answer is translated here, like Twilio's codes in twilio_client:
no ``requests`` or ``pywebpush`` exception reaches the caller, only TransportError.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import urlsplit

import requests
from py_vapid import Vapid
from pywebpush import WebPusher, WebPushException
from urllib3.exceptions import NewConnectionError

from integrations.pager.base import (
    PageMessage,
    PushTarget,
    Receipt,
    TransportError,
    push_host,
)

log = logging.getLogger("goldenhour.pager")

# What a push service's refusal means, and what to do about it.
GONE = {404, 410}  # the browser unsubscribed, or its subscription expired
REFUSED = {
    400: "the push service found the push malformed: report this as a bug",
    401: "the push service refused our VAPID signature: check VAPID_PRIVATE_KEY and "
         "VAPID_SUBJECT",
    403: "the push service refused our VAPID key: the browser subscribed with another "
         "key (VAPID_PRIVATE_KEY changed?); they must allow notifications again",
    413: "the push is larger than the push service takes (4 KB): report this as a bug",
}
RETRY_STATUSES = {429} | set(range(500, 600))
TTL = timedelta(minutes=10)  # a page the phone gets later than this is of no use


@dataclass(frozen=True)
class PushSettings:
    private_key: str  # VAPID_PRIVATE_KEY: PEM, or base64url DER or raw 32-byte key
    subject: str  # VAPID_SUBJECT: mailto: or https: contact for push services
    timeout: float = 5.0  # seconds, for connect and for each read
    retries: int = 2  # only after a 429, a 5xx or a connection that never opened
    backoff: float = 0.25  # seconds; the n-th retry waits n * backoff


def load_vapid(private_key: str) -> Vapid:
    """Our VAPID key from its PEM text, or its base64url DER or raw form.

    Raises ValueError when it is none of these (config.py reports it at start-up).
    """
    text = private_key.strip()
    try:
        if text.startswith("-----BEGIN"):
            return Vapid.from_pem(text.encode())
        return Vapid.from_string(text)
    except Exception as exc:  # py_vapid raises whatever its decoders raise
        raise ValueError(f"not a P-256 private key ({type(exc).__name__})") from None


def public_key(vapid: Vapid) -> str:
    """The applicationServerKey a browser subscribes with: the uncompressed P-256
    point, base64url without padding."""
    from cryptography.hazmat.primitives import serialization
    from py_vapid.utils import b64urlencode

    return b64urlencode(vapid.public_key.public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint))


def payload(message: PageMessage) -> str:
    """The JSON the service worker shows: reference, specialty, link. No patient data."""
    return json.dumps({
        "title": f"{message.specialty} referral {message.referral_reference}".strip(),
        "reference": message.referral_reference, "specialty": message.specialty,
        "url": message.link,
    }, separators=(",", ":"))


class WebPushChannel:
    name = "webpush"

    def __init__(self, settings: PushSettings, session: requests.Session | None = None):
        self.settings = settings
        self.vapid = load_vapid(settings.private_key)
        self.session = session or requests.Session()

    def notify(self, message: PageMessage) -> Receipt:
        """Push the page to every browser in ``message.subscriptions``; "sent" when at
        least one push service took it. The receipt's ``gone`` lists the endpoints that
        answered 404/410, for the caller to forget.

        Raises TransportError when no browser took it: permanent when none can (no
        subscription, all gone, our VAPID key refused, a push too big); transient (unsent)
        when the push services rate-limited us or failed after the retries; transient
        for a timeout. ``gone`` is set on the error too.
        """
        if not message.subscriptions:
            raise TransportError("Push: no browser of theirs takes pages: they must open "
                                 "the app and allow notifications", permanent=True)
        body = payload(message)
        sent, gone, problems = 0, [], []
        for target in message.subscriptions:  # a phone and a desktop: push to both
            try:
                self._push(target, body)
                sent += 1
            except _Gone:
                gone.append(target.endpoint)
            except TransportError as exc:
                log.warning("Push %s to %s failed: %s", message.reference,
                            push_host(target.endpoint), exc)
                problems.append(exc)
        if gone:
            log.info("Push %s: %d unsubscribed browser(s) to forget", message.reference,
                     len(gone))
        if sent:
            return Receipt(self.name, None, "sent", gone=tuple(gone))
        if not problems:
            raise TransportError("Push: every browser of theirs has unsubscribed: they "
                                 "must open the app and allow notifications again",
                                 permanent=True, gone=tuple(gone))
        raise TransportError(str(problems[0]), permanent=all(p.permanent for p in problems),
                             unsent=all(p.unsent for p in problems), gone=tuple(gone))

    def _push(self, target: PushTarget, body: str) -> None:
        """One push, retried (at most ``settings.retries`` times) on 429/5xx or an
        unopened connection. Raises _Gone on 404/410, TransportError otherwise."""
        s = self.settings
        host = push_host(target.endpoint)
        attempt = 0
        while True:
            try:
                answer = self._post(target, body)
            except (requests.RequestException, OSError) as exc:
                if not _never_sent(exc):
                    raise TransportError(
                        f"Push: the push service at {host} did not answer within "
                        f"{s.timeout:g} s" if isinstance(exc, requests.Timeout)
                        else f"Push: the connection to {host} broke mid-request") from None
                problem = f"the push service at {host} could not be reached"
            except WebPushException as exc:  # a subscription we cannot encrypt for
                raise TransportError(f"Push: the browser's subscription is unusable "
                                     f"({exc.message}): they must allow notifications again",
                                     permanent=True) from None
            else:
                status = answer.status_code
                if status in (200, 201, 202):
                    return
                if status in GONE:
                    raise _Gone()
                if status not in RETRY_STATUSES:
                    advice = REFUSED.get(status, "the push service refused the push")
                    raise TransportError(f"Push: {advice} (HTTP {status} from {host})",
                                         permanent=True)
                problem = (f"the push service at {host} is rate-limiting us (429)"
                           if status == 429 else f"the push service at {host} answered {status}")
            if attempt >= s.retries:
                raise TransportError(f"Push: {problem}, {attempt + 1} attempts", unsent=True)
            attempt += 1
            time.sleep(s.backoff * attempt)

    def _post(self, target: PushTarget, body: str) -> requests.Response:
        """Encrypt ``body`` for the browser and POST it, signed with our VAPID key."""
        parts = urlsplit(target.endpoint)
        claims = {"sub": self.settings.subject, "aud": f"{parts.scheme}://{parts.netloc}",
                  "exp": int(time.time() + 12 * 3600)}
        headers = {**self.vapid.sign(claims), "Urgency": "high"}
        pusher = WebPusher({"endpoint": target.endpoint,
                            "keys": {"p256dh": target.p256dh, "auth": target.auth}},
                           requests_session=self.session)
        return pusher.send(body, headers, ttl=int(TTL.total_seconds()),
                           content_encoding="aes128gcm", timeout=self.settings.timeout)


class _Gone(Exception):
    """The push service said this subscription no longer exists (404/410)."""


def _never_sent(exc: Exception) -> bool:
    """Whether the connection failed before any of the request was sent."""
    if isinstance(exc, requests.ConnectTimeout):
        return True
    reason = getattr(exc.args[0], "reason", None) if exc.args else None
    return isinstance(exc, requests.ConnectionError) and isinstance(reason, NewConnectionError)
