"""Pure helpers for Twilio webhooks: signatures, TwiML, replies, status order.

Nothing here touches Flask's request: the view passes in what it read.
"""

from __future__ import annotations

from collections.abc import Mapping

from twilio.request_validator import RequestValidator
from twilio.twiml.voice_response import VoiceResponse

from integrations.pager.base import FAILED

ACK_REPLIES = {"1", "ACK", "YES", "Y", "ACCEPT"}
# How far a message or call has got. A status callback is applied only when it ranks
# higher than the recorded status, so a late or repeated callback never moves a
# delivery backwards, and nothing moves a delivery on from a final status.
_FINAL = 9
_RANK = {
    # messages: accepted/scheduled < queued < sending < sent < a final status
    "accepted": 1, "scheduled": 1, "queued": 2, "sending": 3, "sent": 4,
    # calls: queued < initiated < ringing < in-progress < a final status
    "initiated": 3, "ringing": 4, "in-progress": 5, "answered": 5,
    **dict.fromkeys(("delivered", "read", "completed", "busy", "no-answer", "failed", "canceled",
                     "undelivered", "machine"), _FINAL),
}


def verify_twilio_signature(auth_token: str, public_base_url: str, path_with_query: str,
                            form_params: Mapping, signature_header: str) -> bool:
    """True when ``signature_header`` is Twilio's signature of this request.

    The URL is rebuilt from PUBLIC_BASE_URL, never from what the app saw, because
    Twilio signs the public address it was given: behind a TLS-terminating proxy the
    app sees http, another host and another port. ``path_with_query`` is the path
    below PUBLIC_BASE_URL (with its query string, if any); ``form_params`` the POSTed
    fields (a MultiDict keeps repeated fields). Never raises: a missing token or
    signature is simply not valid.
    """
    if not auth_token or not signature_header:
        return False
    path = path_with_query.rstrip("?")  # Flask's full_path ends in "?" without a query
    if not path.startswith("/"):
        path = "/" + path
    url = public_base_url.rstrip("/") + path
    return RequestValidator(auth_token).validate(url, form_params or {}, signature_header)


def gather_twiml(prompt_text: str, action_url: str) -> str:
    """TwiML that reads ``prompt_text``, asks for 1 and posts the key to ``action_url``.

    If no key is pressed within 10 s the call says so and hangs up; the page's status
    callback then moves escalation on. Never raises.
    """
    response = VoiceResponse()
    gather = response.gather(num_digits=1, action=action_url, method="POST", timeout=10)
    gather.say(prompt_text)
    gather.say("Press 1 to accept this referral.")
    response.say("No key was pressed. Goodbye.")
    response.hangup()
    return str(response)


def is_acknowledgement_reply(body: str | None) -> bool:
    """True for an SMS reply that accepts the page: "1", "ACK", "YES" (any case, spacing)."""
    return (body or "").strip().upper().rstrip(".!") in ACK_REPLIES


def status_rank(status: str) -> int:
    """How far a message or call has got; unknown statuses rank 0, final ones highest."""
    return _RANK.get((status or "").lower(), 0)


def is_final(status: str) -> bool:
    """True when no later callback may change ``status`` (delivered, failed, completed...)."""
    return status_rank(status) >= _FINAL


def is_failure(status: str, answered_by: str | None = "") -> bool:
    """True when the delivery will not reach a human: failed, undelivered, busy, no
    answer, canceled, or answered by a voicemail (``answered_by`` machine_*) or a fax."""
    answered_by = (answered_by or "").lower()
    return (status or "").lower() in FAILED or answered_by.startswith("machine") \
        or answered_by == "fax"
