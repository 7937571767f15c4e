"""Pager channels against the test Twilio (Prism with Twilio's contract, behind a recording,
fault-injecting proxy) and a real SMTP server (aiosmtpd)."""

from __future__ import annotations

import logging
import socket
import time
from xml.etree import ElementTree

import pytest
import requests

from integrations.pager import build_channels
from integrations.pager.base import PageMessage, TransportError
from integrations.pager.console import ConsoleChannel
from integrations.pager.email import EmailChannel, SmtpSettings
from integrations.pager.twilio_sms import TwilioSmsChannel
from integrations.pager.twilio_voice import TwilioVoiceChannel
from tests.services import free_port

NUMBER = "+447700900021"
MASKED = "+44770•••021"
PAGE = PageMessage(
    to=NUMBER, text="URGENT Stroke referral from Pilgrim Hospital. Reply 1 to accept.",
    link="https://gh.example.nhs.uk/ack/abc",
    status_callback="https://gh.example.nhs.uk/webhooks/twilio/status",
    voice_url="https://gh.example.nhs.uk/webhooks/twilio/voice?delivery=7",
    reference="delivery-7")


# --- SMS and calls through the test Twilio ---------------------------------------------

@pytest.mark.prism
def test_an_sms_returns_a_receipt_with_twilios_sid_and_status(twilio):
    receipt = TwilioSmsChannel(twilio.settings()).notify(PAGE)
    assert receipt.channel == "sms"
    assert receipt.provider_id.startswith("SM") and len(receipt.provider_id) == 34
    assert receipt.status == "queued"


@pytest.mark.prism
def test_the_sms_that_reaches_twilio_carries_to_from_body_and_status_callback(twilio):
    TwilioSmsChannel(twilio.settings()).notify(PAGE)
    [seen] = twilio.sent("Messages")
    assert seen.path == "/2010-04-01/Accounts/AC11111111111111111111111111111111/Messages.json"
    assert seen.field("To") == NUMBER
    assert seen.field("From") == "+15005550006"
    assert seen.field("Body") == f"{PAGE.text} {PAGE.link}"
    assert seen.field("StatusCallback") == PAGE.status_callback


@pytest.mark.prism
def test_each_page_gets_its_own_sid(twilio):
    channel = TwilioSmsChannel(twilio.settings())
    assert channel.notify(PAGE).provider_id != channel.notify(PAGE).provider_id


@pytest.mark.prism
def test_a_call_fetches_our_twiml_with_machine_detection_and_a_status_callback(twilio):
    receipt = TwilioVoiceChannel(twilio.settings()).notify(PAGE)
    assert receipt.channel == "voice" and receipt.provider_id.startswith("CA")
    # Prism's canned example says "completed"; a call just created cannot be.
    assert receipt.status == "queued"
    [seen] = twilio.sent("Calls")
    assert (seen.field("To"), seen.field("From")) == (NUMBER, "+15005550006")
    assert seen.field("Url") == PAGE.voice_url
    assert seen.field("MachineDetection") == "Enable"
    assert seen.field("StatusCallback") == PAGE.status_callback
    assert seen.field("Twiml") is None


@pytest.mark.prism
def test_a_call_without_a_voice_url_carries_an_inline_press_1_gather(twilio):
    page = PageMessage(to=NUMBER, text="URGENT Stroke referral from Pilgrim Hospital.",
                       keypress_url="https://gh.example.nhs.uk/webhooks/twilio/voice?delivery=8")
    TwilioVoiceChannel(twilio.settings()).notify(page)
    [seen] = twilio.sent("Calls")
    assert seen.field("Url") is None
    gather = ElementTree.fromstring(seen.field("Twiml")).find("Gather")
    assert gather.get("numDigits") == "1" and gather.get("action") == page.keypress_url
    assert "Press 1" in " ".join(say.text for say in gather.iter("Say"))
    assert seen.field("MachineDetection") == "Enable"


@pytest.mark.prism
def test_a_call_with_no_script_is_refused_before_twilio(twilio):
    page = PageMessage(to=NUMBER, text="x")
    with pytest.raises(TransportError, match="no voice_url") as raised:
        TwilioVoiceChannel(twilio.settings()).notify(page)
    assert raised.value.permanent
    assert twilio.requests == []


# --- errors, translated at the edge ----------------------------------------------------

@pytest.mark.prism
@pytest.mark.parametrize("code", [21211, 21610, 21614])
def test_it_marks_an_unusable_number_permanent_and_never_retries(twilio, code):
    twilio.twilio_error(code)
    with pytest.raises(TransportError, match="invalid phone number for this user") as raised:
        TwilioSmsChannel(twilio.settings()).notify(PAGE)
    assert raised.value.permanent
    assert f"Twilio error {code}" in str(raised.value)
    assert len(twilio.sent()) == 1


@pytest.mark.prism
def test_twilios_own_contract_check_refuses_a_malformed_request(twilio):
    page = PageMessage(to=NUMBER, text="x", status_callback="not a url")
    with pytest.raises(TransportError, match="HTTP 422") as raised:
        TwilioSmsChannel(twilio.settings()).notify(page)
    assert raised.value.permanent
    [seen] = twilio.sent()
    assert seen.status == 422  # Prism's answer: StatusCallback must be a URI


@pytest.mark.prism
@pytest.mark.parametrize("status, words", [(500, "Twilio answered 500"),
                                           (503, "Twilio answered 503"),
                                           (429, "rate-limiting")])
def test_it_retries_429_and_5xx_a_bounded_number_of_times_then_gives_up(twilio, status, words):
    twilio.fail_with(status)
    settings = twilio.settings(retries=2)
    with pytest.raises(TransportError, match=words) as raised:
        TwilioSmsChannel(settings).notify(PAGE)
    assert not raised.value.permanent
    assert [r.status for r in twilio.sent()] == [status] * 3  # 1 + 2 retries, no more


@pytest.mark.prism
def test_a_retry_after_one_500_delivers_the_page_once(twilio):
    twilio.fail_with(500, times=1)
    receipt = TwilioSmsChannel(twilio.settings()).notify(PAGE)
    assert receipt.status == "queued"
    assert [r.status for r in twilio.sent()] == [500, 201]


@pytest.mark.prism
def test_a_refused_request_is_permanent_and_not_retried(twilio):
    twilio.fail_with(400)
    with pytest.raises(TransportError, match="refused the request") as raised:
        TwilioVoiceChannel(twilio.settings()).notify(PAGE)
    assert raised.value.permanent
    assert len(twilio.sent("Calls")) == 1


@pytest.mark.prism
def test_a_stalled_twilio_gives_up_at_the_timeout_without_retrying(twilio):
    twilio.stall(10)
    settings = twilio.settings(timeout=1)
    started = time.monotonic()
    with pytest.raises(TransportError, match="did not answer within 1 s") as raised:
        TwilioSmsChannel(settings).notify(PAGE)
    elapsed = time.monotonic() - started
    assert elapsed < 3, f"took {elapsed:.2f} s"
    assert not raised.value.permanent
    assert len(twilio.sent()) == 1  # it may have been sent: the sweep decides, not us


@pytest.mark.prism
def test_an_unreachable_twilio_is_a_transient_error(twilio):
    settings = twilio.settings()
    settings = type(settings)(**{**settings.__dict__,
                                 "api_base": f"http://127.0.0.1:{free_port()}"})
    with pytest.raises(TransportError, match="could not be reached .*, 3 attempts") as raised:
        TwilioSmsChannel(settings).notify(PAGE)
    assert not raised.value.permanent


def test_a_connection_refused_once_is_retried_and_pages_once():
    """A refused connection sent nothing, so it is retried; the retry gets through."""
    from integrations.pager.twilio_client import TwilioSettings, call_twilio

    port = free_port()
    attempts = []

    def create():
        attempts.append(port)
        if len(attempts) == 1:  # nothing listens yet: refused
            return requests.post(f"http://127.0.0.1:{port}/Messages.json", timeout=1)
        return "SM-created"

    settings = TwilioSettings("AC", "token", "+441", api_base=f"http://127.0.0.1:{port}",
                              backoff=0.01)
    assert call_twilio(create, settings, "SMS") == "SM-created"
    assert len(attempts) == 2


def test_a_connection_dropped_mid_request_is_not_retried():
    """Once the request was sent, Twilio may have made the page: no blind retry."""
    from integrations.pager.twilio_client import TwilioSettings, call_twilio

    attempts = []

    def create():
        attempts.append(1)
        raise requests.ConnectionError(ConnectionResetError(104, "Connection reset by peer"))

    with pytest.raises(TransportError, match="broke mid-request") as raised:
        call_twilio(create, TwilioSettings("AC", "token", "+441", backoff=0.01), "SMS")
    assert not raised.value.permanent and len(attempts) == 1


@pytest.mark.prism
def test_twilio_channels_never_log_the_whole_number(twilio, caplog):
    caplog.set_level(logging.DEBUG)  # every logger, the twilio library and urllib3 too
    TwilioSmsChannel(twilio.settings()).notify(PAGE)
    TwilioVoiceChannel(twilio.settings()).notify(PAGE)
    twilio.twilio_error(21211)
    with pytest.raises(TransportError):
        TwilioSmsChannel(twilio.settings()).notify(PAGE)
    assert NUMBER not in caplog.text
    assert caplog.text.count(MASKED) == 3


# --- email -----------------------------------------------------------------------------

def smtp_settings(server, **overrides) -> SmtpSettings:
    values = {"host": server.host, "port": server.port, "sender": "pager@gh.test",
              "starttls": False, "timeout": 5}
    return SmtpSettings(**{**values, **overrides})


def test_an_email_page_arrives_with_subject_body_and_link(mailbox):
    page = PageMessage(to="duty@qmc.nhs.uk", text=PAGE.text, link=PAGE.link)
    receipt = EmailChannel(smtp_settings(mailbox)).notify(page)
    assert receipt.channel == "email" and receipt.status == "sent"
    [(sender, recipients, mail)] = mailbox.messages
    assert (sender, recipients) == ("pager@gh.test", ["duty@qmc.nhs.uk"])
    assert mail["Subject"] == "URGENT Stroke referral from Pilgrim Hospital"
    assert mail["Message-ID"] == receipt.provider_id
    body = mail.get_content()
    assert PAGE.text in body and PAGE.link in body


def test_an_unreachable_mail_server_is_a_transient_error():
    settings = SmtpSettings(host="127.0.0.1", port=free_port(), sender="p@gh.test",
                            starttls=False, timeout=2)
    with pytest.raises(TransportError, match="did not take the email") as raised:
        EmailChannel(settings).notify(PageMessage(to="a@b.nhs.uk", text="x"))
    assert not raised.value.permanent


def test_a_silent_mail_server_gives_up_at_the_timeout():
    with socket.socket() as listener:  # accepts connections, never says hello
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        settings = SmtpSettings(host="127.0.0.1", port=listener.getsockname()[1],
                                sender="p@gh.test", starttls=False, timeout=1)
        started = time.monotonic()
        with pytest.raises(TransportError, match="did not answer within 1 s"):
            EmailChannel(settings).notify(PageMessage(to="a@b.nhs.uk", text="x"))
    assert time.monotonic() - started < 2


def test_starttls_that_the_server_cannot_do_is_a_permanent_error(mailbox):
    with pytest.raises(TransportError, match="STARTTLS") as raised:
        EmailChannel(smtp_settings(mailbox, starttls=True)).notify(
            PageMessage(to="a@b.nhs.uk", text="x"))
    assert raised.value.permanent
    assert mailbox.messages == []


# --- console and wiring ----------------------------------------------------------------

def test_the_console_channel_logs_the_page_with_the_number_masked(caplog):
    with caplog.at_level(logging.INFO, logger="goldenhour.pager"):
        receipt = ConsoleChannel("sms").notify(PAGE)
    assert receipt.channel == "console" and receipt.status == "delivered"
    assert NUMBER not in caplog.text
    assert MASKED in caplog.text and PAGE.link in caplog.text


def test_without_twilio_smtp_or_vapid_settings_every_channel_is_the_console():
    channels = build_channels({})
    assert {name: type(c).__name__ for name, c in channels.items()} == dict.fromkeys(
        ("console", "sms", "voice", "email", "webpush"), "ConsoleChannel")
    assert channels["sms"].stands_in_for == "sms"


def test_with_twilio_and_smtp_settings_the_real_channels_are_built():
    channels = build_channels({
        "TWILIO_ACCOUNT_SID": "AC" + "1" * 32, "TWILIO_AUTH_TOKEN": "t",
        "TWILIO_FROM_NUMBER": "+15005550006", "TWILIO_API_BASE": "http://127.0.0.1:9",
        "TWILIO_TIMEOUT_SECONDS": 5, "SMTP_HOST": "127.0.0.1", "SMTP_PORT": 25,
        "SMTP_FROM": "p@gh.test", "SMTP_STARTTLS": False})
    assert isinstance(channels["sms"], TwilioSmsChannel)
    assert isinstance(channels["voice"], TwilioVoiceChannel)
    assert isinstance(channels["email"], EmailChannel)
    assert channels["sms"].settings.timeout == 5.0


def test_warming_loads_the_twilio_modules_a_first_page_would_load_without_a_request():
    """The scheduler warms its channels before its first tick (workflow.scheduler)."""
    import subprocess
    import sys

    script = (
        "import sys\n"
        "from integrations.pager import build_channels, warm\n"
        "channels = build_channels({'TWILIO_ACCOUNT_SID': 'AC' + '0' * 32,\n"
        "    'TWILIO_AUTH_TOKEN': 't', 'TWILIO_FROM_NUMBER': '+441',\n"
        f"    'TWILIO_API_BASE': 'http://127.0.0.1:{free_port()}'}})\n"
        "modules = ('twilio.rest.api.v2010.account.message', "
        "'twilio.rest.api.v2010.account.call')\n"
        "print([m in sys.modules for m in modules])\n"
        "warm(channels)\n"
        "print([m in sys.modules for m in modules])\n")
    ran = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=60, check=True)
    assert ran.stdout.split("\n")[:2] == ["[False, False]", "[True, True]"]
