"""What every pager channel shares: the message, the receipt, the one error type."""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class PageMessage:
    """One page to one person. ``text`` carries no patient identifiers."""

    to: str  # E.164 phone number, or an email address for email
    text: str
    link: str = ""
    status_callback: str = ""  # where the provider reports delivery status
    voice_url: str = ""  # TwiML for a call ("press 1 to accept")
    reference: str = ""  # our id for the delivery, for logs


@dataclass(frozen=True)
class Receipt:
    channel: str
    provider_id: str | None
    status: str


class TransportError(Exception):
    """A page could not be handed to the provider.

    ``permanent`` means retrying is pointless (an invalid number); otherwise the
    provider was down, slow or rate-limiting.
    """

    def __init__(self, message: str, permanent: bool = False):
        super().__init__(message)
        self.permanent = permanent


def mask(address: str) -> str:
    """'+447700900123' -> '+44770•••123'; 'ann@x.nhs.uk' -> 'a•••@x.nhs.uk'. For logs."""
    if "@" in address:
        name, _, domain = address.partition("@")
        return f"{name[:1]}•••@{domain}"
    digits = re.sub(r"\s", "", address)
    return digits[:6] + "•••" + digits[-3:] if len(digits) > 9 else "•••"
