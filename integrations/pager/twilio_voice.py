"""Pages by phone call through Twilio: "press 1 to accept", voicemail detected."""

from __future__ import annotations

from integrations.pager.base import PageMessage, Receipt
from integrations.pager.twilio_client import TwilioSettings, call_twilio, make_client


class TwilioVoiceChannel:
    name = "voice"

    def __init__(self, settings: TwilioSettings):
        self.settings = settings
        self.client = make_client(settings)

    def notify(self, message: PageMessage) -> Receipt:
        """Start a call that fetches its TwiML from ``voice_url``. Raises TransportError."""

        def create():
            return self.client.calls.create(
                to=message.to, from_=self.settings.from_number, url=message.voice_url,
                method="POST", machine_detection="Enable",
                # The final callback (completed / busy / no-answer / failed) is the one
                # that matters; Prism's contract check also refuses a one-item event list.
                status_callback=message.status_callback or None,
                timeout=30)

        call = call_twilio(create, self.settings, "Call")
        return Receipt("voice", call.sid, call.status or "queued")
