"""The official twilio client with our base URL and timeout, and its errors translated.

Every Twilio call of the channels goes through :func:`call_twilio`, so no ``twilio`` or
``requests`` exception reaches the caller: only :class:`TransportError`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar
from urllib.parse import urlsplit

import requests
from twilio.base.exceptions import TwilioException, TwilioRestException, TwilioServiceException
from twilio.http.http_client import TwilioHttpClient
from twilio.rest import Client
from urllib3.exceptions import NewConnectionError

from integrations.pager.base import TransportError

TWILIO_BASE = "https://api.twilio.com"
INVALID_NUMBER = "invalid phone number for this user"
# Twilio error codes a retry can never fix, with what an admin should do about them.
PERMANENT = {
    20003: "Twilio refused our credentials: check TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN",
    21211: f"{INVALID_NUMBER}: correct it on their profile",
    21214: f"{INVALID_NUMBER}: it cannot be reached",
    21217: f"{INVALID_NUMBER}: correct it on their profile",
    21401: f"{INVALID_NUMBER}: correct it on their profile",
    21408: f"{INVALID_NUMBER}: its country is not enabled on our Twilio account",
    21610: f"{INVALID_NUMBER}: it replied STOP; they must text START to our number",
    21612: f"{INVALID_NUMBER}: Twilio cannot route to it",
    21614: f"{INVALID_NUMBER}: it is not a mobile number, so it cannot take SMS",
    21212: "TWILIO_FROM_NUMBER is not a valid sending number",
    21606: "TWILIO_FROM_NUMBER cannot send SMS: choose an SMS-capable number",
}
RETRY_STATUSES = {429} | set(range(500, 600))
T = TypeVar("T")
log = logging.getLogger("goldenhour.pager")


@dataclass(frozen=True)
class TwilioSettings:
    account_sid: str
    auth_token: str
    from_number: str
    api_base: str = TWILIO_BASE  # Prism in tests and `make run`
    timeout: float = 5.0  # seconds, for connect and for each read
    retries: int = 2  # only after a 429, a 5xx or a connection that never opened
    backoff: float = 0.25  # seconds; the n-th retry waits n * backoff


class BaseUrlHttpClient(TwilioHttpClient):
    """Sends every request to ``api_base`` instead of api.twilio.com, with a timeout.

    The library's own request log is switched off: it writes query parameters, which
    can hold phone numbers. The channels log what happened, with numbers masked.
    """

    def __init__(self, api_base: str, timeout: float):
        super().__init__(timeout=timeout)
        self.api_base = api_base.rstrip("/")

    def request(self, method, url, *args, **kwargs):
        if url.startswith(TWILIO_BASE) and self.api_base != TWILIO_BASE:
            url = self.api_base + url[len(TWILIO_BASE):]
        return super().request(method, url, *args, **kwargs)

    def log_request(self, kwargs) -> None:
        pass

    def log_response(self, status_code, response) -> None:
        pass


def make_client(settings: TwilioSettings) -> Client:
    """The official client, talking to ``settings.api_base``. Makes no request."""
    http = BaseUrlHttpClient(settings.api_base, settings.timeout)
    return Client(settings.account_sid, settings.auth_token, http_client=http)


def call_twilio(action: Callable[[], T], settings: TwilioSettings, what: str) -> T:
    """Run one Twilio API call; retry it (at most ``settings.retries`` times) only on 429/5xx.

    A connection that could not be opened (refused, or no answer to connect) is also
    retried: no byte of the request left us, so a retry cannot page twice.

    Raises TransportError: permanent for a refused request (the codes in PERMANENT and
    any other 4xx); transient for 429/5xx or an unopened connection once the retries
    are spent, and at once for a read timeout or a connection lost mid-request (that
    POST may have been sent, so whether to try again is the sweep's decision, not ours).
    """
    attempt = 0
    while True:
        try:
            return action()
        except (TwilioRestException, TwilioServiceException) as exc:
            status = int(exc.status or 0)
            if status not in RETRY_STATUSES:
                raise _refused(what, status, exc.code) from None
            problem = ("Twilio is rate-limiting us (429)" if status == 429
                       else f"Twilio answered {status}")
        except (requests.RequestException, OSError) as exc:
            host = urlsplit(settings.api_base).netloc
            if _never_sent(exc):
                problem = f"Twilio could not be reached at {host}"
            elif isinstance(exc, requests.Timeout):
                raise TransportError(f"{what}: Twilio did not answer within "
                                     f"{settings.timeout:g} s") from None
            elif isinstance(exc, requests.ConnectionError):
                raise TransportError(f"{what}: the connection to Twilio at {host} broke "
                                     "mid-request") from None
            else:
                raise TransportError(f"{what}: Twilio could not be reached at {host}") \
                    from None
        except TwilioException as exc:
            raise TransportError(f"{what}: the Twilio client failed ({exc})") from None
        if attempt >= settings.retries:
            raise TransportError(f"{what}: {problem}, {attempt + 1} attempts", unsent=True)
        attempt += 1
        time.sleep(settings.backoff * attempt)


def _never_sent(exc: Exception) -> bool:
    """Whether the connection failed before any of the request was sent."""
    if isinstance(exc, requests.ConnectTimeout):
        return True
    reason = getattr(exc.args[0], "reason", None) if exc.args else None
    return isinstance(exc, requests.ConnectionError) and isinstance(reason, NewConnectionError)


def _refused(what: str, status: int, code) -> TransportError:
    # Twilio's own message is left out on purpose: it quotes the phone number.
    code = code if isinstance(code, int) and code != status else None
    if code in PERMANENT:
        return TransportError(f"{what}: {PERMANENT[code]} (Twilio error {code})",
                              permanent=True)
    detail = f"HTTP {status}" + (f", Twilio error {code}" if code else "")
    return TransportError(f"{what}: Twilio refused the request ({detail})",
                          permanent=400 <= status < 500)


class TwilioChannel:
    """What the SMS and voice channels share: the client, and one create call that
    is logged with the number masked. Subclasses set ``name`` and ``label``."""

    name = ""
    label = ""  # "SMS", "Call": starts every error and log line

    def __init__(self, settings: TwilioSettings):
        self.settings = settings
        self.client = make_client(settings)

    def warm(self) -> None:
        """Load the client's lazily imported Messages and Calls modules (about 0.3 s),
        so that the first page after the scheduler starts is not the one that pays.
        Makes no request."""
        self.client.api.v2010.account.messages  # noqa: B018 - the access loads them
        self.client.api.v2010.account.calls  # noqa: B018

    def _create(self, create: Callable[[], T], message) -> T:
        """Run ``create`` through call_twilio. Raises TransportError (logged, masked)."""
        from integrations.pager.base import mask

        try:
            return call_twilio(create, self.settings, self.label)
        except TransportError as exc:
            log.warning("%s %s to %s failed: %s", self.label, message.reference,
                        mask(message.to), exc)
            raise
