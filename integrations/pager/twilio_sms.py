"""Pages by SMS through Twilio."""

from __future__ import annotations

from integrations.pager.base import PageMessage, Receipt
from integrations.pager.twilio_client import TwilioSettings, call_twilio, make_client


class TwilioSmsChannel:
    name = "sms"

    def __init__(self, settings: TwilioSettings):
        self.settings = settings
        self.client = make_client(settings)

    def notify(self, message: PageMessage) -> Receipt:
        """Send one SMS. Raises TransportError (see call_twilio)."""
        body = f"{message.text} {message.link}".strip()

        def create():
            return self.client.messages.create(
                to=message.to, from_=self.settings.from_number, body=body,
                status_callback=message.status_callback or None)

        sent = call_twilio(create, self.settings, "SMS")
        return Receipt("sms", sent.sid, sent.status or "queued")
