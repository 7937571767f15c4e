"""What every pager channel shares: the message, the receipt, the one error type."""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from urllib.parse import urlsplit


class DeliveryStatus(enum.StrEnum):
    """Where one delivery stands: ours (sending) then the provider's words, as stored."""

    SENDING = "sending"  # claimed by a sweep, not yet answered by the channel
    ACCEPTED = "accepted"
    SCHEDULED = "scheduled"
    QUEUED = "queued"
    SENT = "sent"
    DELIVERED = "delivered"
    READ = "read"
    INITIATED = "initiated"
    RINGING = "ringing"
    IN_PROGRESS = "in-progress"
    ANSWERED = "answered"
    COMPLETED = "completed"
    FAILED = "failed"
    UNDELIVERED = "undelivered"
    NO_ANSWER = "no-answer"
    BUSY = "busy"
    CANCELED = "canceled"
    MACHINE = "machine"  # ours: a call answered by a voicemail, not a person


# The statuses of a delivery that will not reach a human: escalation moves on at once.
FAILED = frozenset({DeliveryStatus.FAILED, DeliveryStatus.UNDELIVERED, DeliveryStatus.NO_ANSWER,
                    DeliveryStatus.BUSY, DeliveryStatus.CANCELED, DeliveryStatus.MACHINE})


@dataclass(frozen=True)
class PushTarget:
    """One browser's Web Push subscription, as the browser's PushManager gave it."""

    endpoint: str  # the push service's URL for this browser
    p256dh: str  # the browser's P-256 public key, base64url
    auth: str  # its auth secret, base64url


@dataclass(frozen=True)
class PageMessage:
    """One page to one person. ``text`` carries no patient identifiers (the caller's job)."""

    to: str  # E.164 phone number, or an email address for the email channel
    text: str
    link: str = ""  # where the specialist acknowledges or opens the referral
    status_callback: str = ""  # where the provider reports delivery status
    voice_url: str = ""  # TwiML for a call ("press 1 to accept"), fetched by Twilio
    keypress_url: str = ""  # without voice_url: where the inline <Gather> posts the key
    reference: str = ""  # our id for this delivery (referral, step, attempt), for logs
    # For the webpush channel: the person's browsers, and the only referral facts a push
    # carries (a push service is one more party: no patient identifiers).
    subscriptions: tuple[PushTarget, ...] = ()
    referral_reference: str = ""  # "STR-2026-000001"
    specialty: str = ""  # "Stroke"


@dataclass(frozen=True)
class Receipt:
    """What the provider said when it took the page."""

    channel: str  # "sms", "voice", "email", "webpush", "console"
    provider_id: str | None  # Twilio's SID, the email Message-ID, ...
    status: str  # the provider's first status, e.g. "queued"
    gone: tuple[str, ...] = ()  # push endpoints the push service said no longer exist


class TransportError(Exception):
    """A page could not be handed to the provider.

    ``permanent`` means retrying is pointless until someone changes something (an
    invalid number, refused credentials); otherwise the provider was down, slow or
    rate-limiting, and a later attempt may work.

    ``unsent`` means the provider surely never took the page (it refused it with
    429/5xx, or the connection never opened): sending it again later cannot page
    anyone twice. A timeout or a connection lost mid-request is not unsent.

    ``gone`` lists push endpoints the push service said no longer exist (404/410):
    the caller forgets those subscriptions.
    """

    def __init__(self, message: str, permanent: bool = False, unsent: bool = False,
                 gone: tuple[str, ...] = ()):
        super().__init__(message)
        self.permanent = permanent
        self.unsent = unsent and not permanent
        self.gone = gone


def push_host(endpoint: str) -> str:
    """A push endpoint that is safe to log: its host (the path names one browser)."""
    return urlsplit(endpoint).netloc or "?"


def mask(address: str) -> str:
    """An address that is safe to log: '+447700900123' -> '+44770•••123',
    'ann@x.nhs.uk' -> 'a•••@x.nhs.uk', anything short -> '•••'."""
    if "@" in address:
        name, _, domain = address.partition("@")
        return f"{name[:1]}•••@{domain}"
    compact = re.sub(r"[\s().-]", "", address)
    return f"{compact[:6]}•••{compact[-3:]}" if len(compact) > 9 else "•••"
