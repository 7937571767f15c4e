"""Pages by SMS through Twilio."""

from __future__ import annotations

from integrations.pager.base import PageMessage, Receipt, mask
from integrations.pager.twilio_client import TwilioChannel, log


class TwilioSmsChannel(TwilioChannel):
    name, label = "sms", "SMS"

    def notify(self, message: PageMessage) -> Receipt:
        """Send one SMS: the text, then the link. Raises TransportError (see call_twilio)."""
        body = f"{message.text} {message.link}".strip()
        sent = self._create(lambda: self.client.messages.create(
            to=message.to, from_=self.settings.from_number, body=body,
            status_callback=message.status_callback or None), message)
        log.info("SMS %s to %s: %s %s", message.reference, mask(message.to), sent.sid,
                 sent.status)
        return Receipt("sms", sent.sid, sent.status or "queued")
