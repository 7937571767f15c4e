"""The official twilio client, with our base URL, timeout, retries and error translation."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import requests
from twilio.base.exceptions import TwilioException, TwilioRestException
from twilio.http.http_client import TwilioHttpClient
from twilio.rest import Client

from integrations.pager.base import TransportError

TWILIO_BASE = "https://api.twilio.com"
# Twilio error codes for which a retry can never succeed.
PERMANENT = {
    21211: "invalid phone number for this user",
    21214: "this phone number cannot be reached",
    21217: "invalid phone number for this user",
    21401: "invalid phone number for this user",
    21407: "this number's country is not enabled on the Twilio account",
    21408: "this number's region is not enabled on the Twilio account",
    21610: "the user has replied STOP to our number",
    21612: "Twilio cannot route to this number",
    21614: "this number is not a mobile number",
}
RETRY_STATUSES = {429, 500, 502, 503, 504}
T = TypeVar("T")

# The twilio library logs whole requests (phone numbers included) at INFO.
_quiet = logging.getLogger("goldenhour.twilio.http")
_quiet.setLevel(logging.WARNING)


@dataclass(frozen=True)
class TwilioSettings:
    account_sid: str
    auth_token: str
    from_number: str
    api_base: str = TWILIO_BASE
    timeout: float = 5.0
    retries: int = 2
    backoff: float = 0.25


class _BaseUrlHttpClient(TwilioHttpClient):
    """Sends every request to ``api_base`` instead of api.twilio.com (Prism in tests)."""

    def __init__(self, api_base: str, timeout: float):
        super().__init__(timeout=timeout, logger=_quiet)
        self.api_base = api_base.rstrip("/")

    def request(self, method, url, *args, **kwargs):
        if url.startswith(TWILIO_BASE) and self.api_base != TWILIO_BASE:
            url = self.api_base + url[len(TWILIO_BASE):]
        return super().request(method, url, *args, **kwargs)


def make_client(settings: TwilioSettings) -> Client:
    http = _BaseUrlHttpClient(settings.api_base, settings.timeout)
    return Client(settings.account_sid, settings.auth_token, http_client=http)


def call_twilio(action: Callable[[], T], settings: TwilioSettings, what: str) -> T:
    """Run one Twilio API call with bounded retries on 429/5xx and timeouts.

    Raises TransportError: permanent for the error codes in PERMANENT (and other 4xx),
    transient for timeouts, connection failures, 429 and 5xx after the retries.
    """
    attempt = 0
    while True:
        try:
            return action()
        except TwilioRestException as exc:
            code = exc.code if isinstance(exc.code, int) else None
            if code in PERMANENT:
                raise TransportError(f"{what}: {PERMANENT[code]} (Twilio {code})",
                                     permanent=True) from None
            if exc.status not in RETRY_STATUSES:
                raise TransportError(f"{what}: Twilio refused the request "
                                     f"({exc.status}{f', code {code}' if code else ''})",
                                     permanent=400 <= exc.status < 500) from None
            problem = ("Twilio is rate-limiting us (429)" if exc.status == 429
                       else f"Twilio answered {exc.status}")
        except requests.Timeout:
            problem = f"Twilio did not answer within {settings.timeout:g} s"
        except (requests.RequestException, TwilioException, OSError) as exc:
            problem = f"Twilio could not be reached ({type(exc).__name__})"
        if attempt >= settings.retries:
            raise TransportError(f"{what}: {problem}")
        attempt += 1
        time.sleep(settings.backoff * attempt)
