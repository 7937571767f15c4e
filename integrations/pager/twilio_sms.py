"""Pages by SMS through Twilio."""

from __future__ import annotations

import logging

from integrations.pager.base import PageMessage, Receipt, TransportError, mask
from integrations.pager.twilio_client import TwilioSettings, call_twilio, make_client

log = logging.getLogger("goldenhour.pager")


class TwilioSmsChannel:
    name = "sms"

    def __init__(self, settings: TwilioSettings):
        self.settings = settings
        self.client = make_client(settings)

    def notify(self, message: PageMessage) -> Receipt:
        """Send one SMS: the text, then the link. Raises TransportError (see call_twilio)."""
        body = f"{message.text} {message.link}".strip()

        def create():
            return self.client.messages.create(
                to=message.to, from_=self.settings.from_number, body=body,
                status_callback=message.status_callback or None)

        try:
            sent = call_twilio(create, self.settings, "SMS")
        except TransportError as exc:
            log.warning("SMS %s to %s failed: %s", message.reference, mask(message.to), exc)
            raise
        log.info("SMS %s to %s: %s %s", message.reference, mask(message.to), sent.sid,
                 sent.status)
        return Receipt("sms", sent.sid, sent.status or "queued")
