"""Pages by phone call through Twilio: "press 1 to accept", voicemail detected."""

from __future__ import annotations

from integrations.pager.base import PageMessage, Receipt, TransportError, mask
from integrations.pager.twilio_client import TwilioChannel, log
from integrations.pager.webhooks import gather_twiml

# What a call create can truthfully answer; the outcome arrives by status callback.
STARTING = {"queued", "initiated", "ringing"}
RING_SECONDS = 30


class TwilioVoiceChannel(TwilioChannel):
    name, label = "voice", "Call"

    def notify(self, message: PageMessage) -> Receipt:
        """Place a call that asks the specialist to press 1.

        Twilio fetches the call's TwiML from ``message.voice_url``; without one the
        call carries an inline ``<Gather>`` that posts the key to ``message.keypress_url``.
        Answering-machine detection is on, so a voicemail is reported, not taken as an
        answer. Raises TransportError: permanent when the message has neither URL,
        otherwise as call_twilio.
        """
        if message.voice_url:
            script = {"url": message.voice_url, "method": "POST"}
        elif message.keypress_url:
            script = {"twiml": gather_twiml(message.text, message.keypress_url)}
        else:
            raise TransportError("Call: no voice_url or keypress_url for the call's script",
                                 permanent=True)

        def create():
            return self.client.calls.create(
                to=message.to, from_=self.settings.from_number, **script,
                machine_detection="Enable", timeout=RING_SECONDS,
                # Twilio's default events include the final one (completed, busy,
                # no-answer, failed), which is the one that moves the page on.
                status_callback=message.status_callback or None)

        call = self._create(create, message)
        # Prism answers with its canned example ("completed"); a call that was just
        # created has not finished, and recording "completed" would stop escalation.
        status = call.status if call.status in STARTING else "queued"
        log.info("Call %s to %s: %s %s", message.reference, mask(message.to), call.sid, status)
        return Receipt("voice", call.sid, status)
