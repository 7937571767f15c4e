"""Pure helpers for Twilio webhooks: signatures, TwiML, replies, status order."""

from __future__ import annotations

from twilio.request_validator import RequestValidator
from twilio.twiml.voice_response import VoiceResponse

ACK_REPLIES = {"1", "ACK", "YES", "Y", "ACCEPT"}
# Progress order; a status callback may never move a delivery back down this list.
_RANK = {
    "sending": 0, "accepted": 1, "scheduled": 1, "queued": 1, "initiated": 2,
    "ringing": 3, "sent": 3, "in-progress": 4, "answered": 4, "delivered": 5, "read": 6,
    "completed": 6, "console": 6,
}
FAILURES = {"failed", "undelivered", "no-answer", "busy", "canceled"}


def verify_twilio_signature(auth_token: str, public_base_url: str, path_with_query: str,
                            params, signature: str) -> bool:
    """True when ``signature`` is Twilio's for the public URL of this request.

    The URL is rebuilt from PUBLIC_BASE_URL, not from the request, because Twilio
    signs the address it was given: behind a TLS-terminating proxy the app itself
    sees http and another port.
    """
    if not auth_token or not signature:
        return False
    url = public_base_url.rstrip("/") + path_with_query
    return RequestValidator(auth_token).validate(url, params, signature)


def gather_twiml(prompt: str, action_url: str) -> str:
    """TwiML that reads ``prompt`` and waits for one key, posting it to ``action_url``."""
    response = VoiceResponse()
    gather = response.gather(num_digits=1, action=action_url, method="POST", timeout=10)
    gather.say(prompt)
    gather.say("Press 1 to accept this referral.")
    response.say("No key was pressed. Goodbye.")
    response.hangup()
    return str(response)


def is_acknowledgement_reply(body: str) -> bool:
    return (body or "").strip().upper().rstrip(".!") in ACK_REPLIES


def status_rank(status: str) -> int:
    return _RANK.get(status, 0)


def is_failure(status: str, answered_by: str = "") -> bool:
    """A delivery that will not reach a human: failed, undelivered, unanswered, voicemail."""
    return status in FAILURES or (answered_by or "").startswith("machine") or \
        answered_by == "fax"
