"""Every name a person reads for a value the code stores: one table for the pages, the
decision record, the audit dashboard and the API descriptions.

The stored values ("awaiting_specialist", "in_app", "escalation_exhausted") never reach
a reader; a value missing here falls back to a tidied form of itself, and
tests/workflow/test_labels.py fails when an enum grows a member this table lacks.
Pure data and lookups: nothing here raises.
"""

from __future__ import annotations

from workflow.referrals.clinical import FIELDS
from workflow.referrals.states import Outcome, State

STATES = {
    State.SUBMITTED: "Submitted",
    State.AWAITING_SPECIALIST: "Paging specialist",
    State.UNDER_REVIEW: "Accepted, under review",
    State.INFO_REQUESTED: "Info requested",
    State.DECIDED: "Decided",
    State.IN_TRANSFER: "In transfer",
    State.CLOSED: "Closed",
    State.CANCELLED: "Cancelled",
    State.UNANSWERED: "Unanswered",
}
OUTCOMES = {
    Outcome.TRANSFER: "Transfer",
    Outcome.TREAT_LOCALLY: "Treat locally",
    Outcome.ADVICE_ONLY: "Advice only",
    Outcome.NOT_ACCEPTED: "Not accepted",
}
# How sure the referrer is of the onset time; the form's words.
ONSET_CERTAINTY = {
    "precise": "Precise", "estimated": "Estimated", "unknown": "Unknown",
    "during_sleep": "During sleep (last known well)",
}
# The same, after "Since onset" / "Since last known well", where the clock already
# says "last known well".
ONSET_CERTAINTY_SHORT = {
    "precise": "precise", "estimated": "estimated", "unknown": "unknown",
    "during_sleep": "during sleep",
}
EVENTS = {
    "raise": "Referral raised", "page_sent": "Specialist paged", "acknowledge": "Accepted",
    "request_info": "Information requested", "provide_info": "Information provided",
    "decide": "Decision", "addendum": "Addendum", "cancel": "Cancelled",
    "depart": "Departed", "arrive": "Arrived at hub", "close": "Closed",
    "hand_over": "Handed over", "message": "Message", "studies_linked": "Images linked",
    "escalation_exhausted": "Nobody answered",
    "page_again": "Paged again",
}
CHANNELS = {"sms": "SMS", "voice": "Voice call", "email": "Email", "webpush": "Push notification",
            "in_app": "In app",
            "console": "Console", "none": "—"}
TRANSFER_URGENCY = {"immediate": "Immediate", "within_1_hour": "Within 1 hour",
                    "within_4_hours": "Within 4 hours", "routine": "Routine"}
URGENCY = {"emergency": "Emergency", "urgent": "Urgent"}
SEXES = {"female": "Female", "male": "Male", "other": "Other", "unknown": "Unknown"}
# What a provider's delivery status means to the person reading the page log.
DELIVERY_STATUS = {
    "sending": "Sending", "queued": "Sent", "sent": "Sent", "accepted": "Sent",
    "scheduled": "Scheduled", "delivered": "Delivered", "read": "Read",
    "initiated": "Call placed", "ringing": "Ringing", "in-progress": "Answered",
    "answered": "Answered", "completed": "Call ended", "failed": "Failed",
    "undelivered": "Not delivered", "no-answer": "No answer", "busy": "Busy",
    "canceled": "Cancelled", "machine": "Voicemail (not an answer)",
}
# A voice call "delivered" only means the call was placed; it is answered only when
# the provider says so (in-progress, or a key pressed).
VOICE_STATUS = {"queued": "Call placed", "sent": "Call placed", "accepted": "Call placed",
                "delivered": "Call placed", "completed": "Call ended"}


def _tidy(value: str | None) -> str:
    if not value:
        return "—"
    return str(value).replace("_", " ").replace("-", " ").capitalize()


def state(value: str | None) -> str:
    return STATES.get(value, _tidy(value))


def outcome(value: str | None) -> str:
    return OUTCOMES.get(value, _tidy(value))


def event(kind: str | None) -> str:
    return EVENTS.get(kind, _tidy(kind))


def channel(value: str | None) -> str:
    return CHANNELS.get(value, _tidy(value))


def certainty(value: str | None) -> str:
    return ONSET_CERTAINTY.get(value, _tidy(value))


def certainty_short(value: str | None) -> str:
    return ONSET_CERTAINTY_SHORT.get(value, _tidy(value).lower())


def since_onset(value: str | None) -> str:
    """The name of the onset clock: "Since last known well" when the patient woke
    with symptoms, else "Since onset"."""
    return "Since last known well" if value == "during_sleep" else "Since onset"


def transfer_urgency(value: str | None) -> str:
    return TRANSFER_URGENCY.get(value, _tidy(value))


def sex(value: str | None) -> str:
    return SEXES.get(value, _tidy(value))


def delivery_status(channel_name: str | None, status: str | None) -> str:
    """A delivery's status as its channel means it: a voice call "delivered" is
    "Call placed", never "Delivered"."""
    if channel_name == "voice" and status in VOICE_STATUS:
        return VOICE_STATUS[status]
    return DELIVERY_STATUS.get(status, _tidy(status))


def in_sentence(label: str) -> str:
    """A label inside a sentence ("voice call to Dr Reid"): the first letter lowered
    unless the first word is an abbreviation ("SMS")."""
    head = label.split(" ", 1)[0]
    return label if head.isupper() else label[:1].lower() + label[1:]


def yes_no(value) -> str:
    return "Yes" if value else "No"


def field(key: str) -> str:
    """The form's label of a clinical field, whichever specialty has it ("nihss" →
    "NIHSS"); a key no specialty has is tidied."""
    for fields in FIELDS.values():
        for f in fields:
            if f.key == key:
                return f.label
    return _tidy(key)


def register(app) -> None:
    """Make the lookups Jinja filters (``{{ r.state|state_label }}``) in ``app``."""
    for name, fn in (("state_name", state), ("outcome_label", outcome),
                     ("event_label", event), ("channel_label", channel),
                     ("certainty_label", certainty), ("certainty_short", certainty_short),
                     ("since_onset_label", since_onset), ("urgency_label", transfer_urgency),
                     ("sex_label", sex), ("field_label", field), ("yes_no", yes_no)):
        app.add_template_filter(fn, name)
    app.add_template_global(delivery_status, "delivery_status")
