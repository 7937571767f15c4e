"""Twilio webhook helpers: signatures behind a proxy, TwiML, replies, status order."""

from __future__ import annotations

from xml.etree import ElementTree

import pytest
from twilio.request_validator import RequestValidator
from werkzeug.datastructures import MultiDict

from integrations.pager.webhooks import (
    gather_twiml,
    is_acknowledgement_reply,
    is_failure,
    is_final,
    status_rank,
    verify_twilio_signature,
)

TOKEN = "12345678901234567890123456789012"
PUBLIC = "https://goldenhour.example.nhs.uk"
PATH = "/webhooks/twilio/sms"
FORM = {"MessageSid": "SM" + "a" * 32, "From": "+447700900021", "Body": "1"}


def signed(url: str, form, token: str = TOKEN) -> str:
    """The X-Twilio-Signature Twilio would send for ``url`` and ``form``."""
    return RequestValidator(token).compute_signature(url, form)


# --- signatures ------------------------------------------------------------------------

def test_a_valid_signature_is_accepted():
    assert verify_twilio_signature(TOKEN, PUBLIC, PATH, FORM, signed(PUBLIC + PATH, FORM))


@pytest.mark.parametrize("signature", ["", None])
def test_a_request_without_a_signature_is_refused(signature):
    assert not verify_twilio_signature(TOKEN, PUBLIC, PATH, FORM, signature)


def test_a_signature_made_with_another_token_is_refused():
    forged = signed(PUBLIC + PATH, FORM, token="not-our-token-at-all-0000000000000")
    assert not verify_twilio_signature(TOKEN, PUBLIC, PATH, FORM, forged)


def test_without_an_auth_token_nothing_verifies():
    assert not verify_twilio_signature("", PUBLIC, PATH, FORM, signed(PUBLIC + PATH, FORM))


@pytest.mark.parametrize("tamper", [
    {"Body": "2"},                        # a changed field
    {"From": "+447700900999"},            # someone else's number
    {"AccountSid": "AC" + "0" * 32},      # an added field
])
def test_a_tampered_form_is_refused(tamper):
    signature = signed(PUBLIC + PATH, FORM)
    assert not verify_twilio_signature(TOKEN, PUBLIC, PATH, {**FORM, **tamper}, signature)


def test_a_dropped_field_is_refused():
    signature = signed(PUBLIC + PATH, FORM)
    form = {k: v for k, v in FORM.items() if k != "Body"}
    assert not verify_twilio_signature(TOKEN, PUBLIC, PATH, form, signature)


def test_a_signature_for_another_path_is_refused():
    signature = signed(PUBLIC + "/webhooks/twilio/status", FORM)
    assert not verify_twilio_signature(TOKEN, PUBLIC, PATH, FORM, signature)


def test_behind_a_tls_proxy_the_public_url_is_what_counts():
    # Twilio signed the public https URL; the app itself is reached by the proxy over
    # plain http on another host and port. Only the public URL verifies.
    signature = signed(PUBLIC + PATH, FORM)
    assert verify_twilio_signature(TOKEN, PUBLIC, PATH, FORM, signature)
    assert not verify_twilio_signature(TOKEN, "http://10.0.0.5:8000", PATH, FORM, signature)
    assert not verify_twilio_signature(TOKEN, "http://goldenhour.example.nhs.uk", PATH, FORM,
                                       signature)


@pytest.mark.parametrize("twilio_signed, public_base_url", [
    ("https://goldenhour.example.nhs.uk:443", "https://goldenhour.example.nhs.uk"),
    ("https://goldenhour.example.nhs.uk", "https://goldenhour.example.nhs.uk:443"),
    ("http://gh.trust.local:80", "http://gh.trust.local"),
])
def test_an_explicit_default_port_on_either_side_does_not_matter(twilio_signed,
                                                                 public_base_url):
    signature = signed(twilio_signed + PATH, FORM)
    assert verify_twilio_signature(TOKEN, public_base_url, PATH, FORM, signature)


def test_a_public_url_with_a_path_prefix_and_trailing_slash_verifies():
    public = "https://trust.example.nhs.uk/goldenhour/"
    signature = signed("https://trust.example.nhs.uk/goldenhour" + PATH, FORM)
    assert verify_twilio_signature(TOKEN, public, PATH, FORM, signature)


def test_the_query_string_is_part_of_what_twilio_signed():
    url = PUBLIC + "/webhooks/twilio/voice?delivery=7"
    signature = signed(url, FORM)
    assert verify_twilio_signature(TOKEN, PUBLIC, "/webhooks/twilio/voice?delivery=7", FORM,
                                   signature)
    assert not verify_twilio_signature(TOKEN, PUBLIC, "/webhooks/twilio/voice?delivery=8",
                                       FORM, signature)


def test_flasks_full_path_with_an_empty_query_verifies():
    signature = signed(PUBLIC + PATH, FORM)
    assert verify_twilio_signature(TOKEN, PUBLIC, PATH + "?", FORM, signature)


def test_repeated_fields_in_a_multidict_are_all_signed():
    form = MultiDict([("StatusCallbackEvent", "ringing"), ("StatusCallbackEvent", "answered"),
                      ("CallSid", "CA" + "b" * 32)])
    signature = signed(PUBLIC + PATH, form)
    assert verify_twilio_signature(TOKEN, PUBLIC, PATH, form, signature)
    one_dropped = MultiDict([("StatusCallbackEvent", "ringing"),
                             ("CallSid", "CA" + "b" * 32)])
    assert not verify_twilio_signature(TOKEN, PUBLIC, PATH, one_dropped, signature)


# --- TwiML -----------------------------------------------------------------------------

def test_the_call_asks_for_one_key_and_posts_it_to_the_action_url():
    action = "https://gh.example.nhs.uk/webhooks/twilio/voice?delivery=7&step=1"
    root = ElementTree.fromstring(gather_twiml("Urgent stroke referral & more.", action))
    assert root.tag == "Response"
    gather = root.find("Gather")
    assert gather.get("numDigits") == "1"
    assert gather.get("action") == action and gather.get("method") == "POST"
    said = [say.text for say in gather.iter("Say")]
    assert said[0] == "Urgent stroke referral & more."
    assert any("Press 1" in s for s in said)
    # with no key pressed the call ends instead of waiting
    assert [child.tag for child in root][-1] == "Hangup"


# --- replies ---------------------------------------------------------------------------

@pytest.mark.parametrize("body", ["1", "ACK", "ack", "Yes", " yes \n", "YES!", "\t1 "])
def test_these_replies_acknowledge_the_page(body):
    assert is_acknowledgement_reply(body)


@pytest.mark.parametrize("body", ["", None, "2", "no", "11", "yes please", "STOP",
                                  "1 2", "acknowledged later"])
def test_these_replies_do_not(body):
    assert not is_acknowledgement_reply(body)


# --- status order ----------------------------------------------------------------------

MESSAGE_PROGRESS = ["queued", "sending", "sent", "delivered"]
CALL_PROGRESS = ["queued", "ringing", "in-progress", "completed"]
FINAL = ["delivered", "undelivered", "failed", "completed", "busy", "no-answer", "canceled"]


@pytest.mark.parametrize("progress", [MESSAGE_PROGRESS, CALL_PROGRESS])
def test_statuses_rank_in_the_order_twilio_reports_them(progress):
    ranks = [status_rank(s) for s in progress]
    assert ranks == sorted(ranks) and len(set(ranks)) == len(ranks)


@pytest.mark.parametrize("final", FINAL)
def test_nothing_ranks_above_a_final_status(final):
    assert is_final(final)
    everything = MESSAGE_PROGRESS + CALL_PROGRESS + FINAL + ["initiated", "accepted"]
    assert all(status_rank(s) <= status_rank(final) for s in everything)


@pytest.mark.parametrize("status", ["queued", "sending", "sent", "ringing", "in-progress"])
def test_statuses_in_flight_are_not_final(status):
    assert not is_final(status)


def test_an_unknown_status_never_outranks_a_known_one():
    assert status_rank("someday-new") == 0 < status_rank("queued")


@pytest.mark.parametrize("status, answered_by, failed", [
    ("failed", "", True), ("undelivered", "", True), ("no-answer", "", True),
    ("busy", "", True), ("canceled", "", True),
    ("completed", "machine_end_beep", True), ("in-progress", "machine_start", True),
    ("completed", "fax", True),
    ("completed", "human", False), ("completed", None, False), ("delivered", "", False),
    ("in-progress", "unknown", False),
])
def test_a_voicemail_counts_as_a_failure_like_an_undelivered_page(status, answered_by, failed):
    assert is_failure(status, answered_by) is failed
