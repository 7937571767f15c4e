"""Pager channels against the test Twilio (Prism + Twilio's contract) and a real SMTP server."""

import logging
import smtplib
import time

import pytest

from integrations.pager.base import PageMessage, TransportError
from integrations.pager.console import ConsoleChannel
from integrations.pager.email import EmailChannel, SmtpSettings
from integrations.pager.twilio_sms import TwilioSmsChannel
from integrations.pager.twilio_voice import TwilioVoiceChannel
from tests.services import free_port

pytestmark = pytest.mark.prism

PAGE = PageMessage(to="+447700900021", text="URGENT Stroke referral from Pilgrim Hospital.",
                   link="https://gh.example/ack/abc",
                   status_callback="https://gh.example/webhooks/twilio/status",
                   voice_url="https://gh.example/webhooks/twilio/voice?delivery=7")


def test_an_sms_reaches_twilio_with_body_link_and_status_callback(twilio):
    receipt = TwilioSmsChannel(twilio.settings()).notify(PAGE)
    assert receipt.provider_id.startswith("SM") and receipt.status == "queued"
    [seen] = twilio.sent("Messages")
    assert seen.form["To"] == ["+447700900021"]
    assert seen.form["From"] == ["+15005550006"]
    assert seen.form["Body"] == [f"{PAGE.text} {PAGE.link}"]
    assert seen.form["StatusCallback"] == [PAGE.status_callback]


def test_a_call_asks_for_machine_detection_and_fetches_our_twiml(twilio):
    receipt = TwilioVoiceChannel(twilio.settings()).notify(PAGE)
    assert receipt.provider_id.startswith("CA")
    [seen] = twilio.sent("Calls")
    assert seen.form["MachineDetection"] == ["Enable"]
    assert seen.form["Url"] == [PAGE.voice_url]


def test_each_send_gets_its_own_sid(twilio):
    channel = TwilioSmsChannel(twilio.settings())
    assert channel.notify(PAGE).provider_id != channel.notify(PAGE).provider_id


def test_it_marks_an_invalid_number_permanent(twilio):
    twilio.twilio_error(21211)
    with pytest.raises(TransportError, match="invalid phone number") as raised:
        TwilioSmsChannel(twilio.settings()).notify(PAGE)
    assert raised.value.permanent
    assert len(twilio.sent()) == 1  # never retried


@pytest.mark.parametrize("status, words", [(500, "answered 500"), (429, "rate-limiting")])
def test_it_retries_a_bounded_number_of_times_then_gives_up(twilio, status, words):
    twilio.fail_with(status)
    with pytest.raises(TransportError, match=words) as raised:
        TwilioSmsChannel(twilio.settings()).notify(PAGE)
    assert not raised.value.permanent
    assert len(twilio.sent()) == 1 + twilio.settings().retries


def test_a_stalled_twilio_never_blocks_past_the_timeout(twilio):
    twilio.stall(10)
    settings = twilio.settings()
    started = time.monotonic()
    with pytest.raises(TransportError, match="did not answer within 2 s"):
        TwilioSmsChannel(settings).notify(PAGE)
    elapsed = time.monotonic() - started
    budget = (settings.retries + 1) * settings.timeout + 1
    assert elapsed < budget, f"took {elapsed:.1f} s"


def test_an_email_page_arrives(smtp_server):
    settings = SmtpSettings(host=smtp_server.host, port=smtp_server.port,
                            sender="pager@gh.test", starttls=False, timeout=5)
    receipt = EmailChannel(settings).notify(
        PageMessage(to="duty@qmc.nhs.uk", text=PAGE.text, link=PAGE.link))
    assert receipt.status == "sent"
    [(sender, to, mail)] = smtp_server.messages
    assert (sender, to) == ("pager@gh.test", ["duty@qmc.nhs.uk"])
    assert PAGE.link in mail.get_payload()
    assert mail["Subject"].startswith("URGENT Stroke referral")


def test_an_unreachable_mail_server_is_a_transient_error():
    settings = SmtpSettings(host="127.0.0.1", port=free_port(), sender="p@gh.test",
                            starttls=False, timeout=2)
    with pytest.raises(TransportError, match="did not take the email") as raised:
        EmailChannel(settings).notify(PageMessage(to="a@b.nhs.uk", text="x"))
    assert not raised.value.permanent
    assert smtplib  # the channel uses the standard library client


def test_the_console_channel_masks_the_number(caplog):
    with caplog.at_level(logging.INFO, logger="goldenhour.pager"):
        receipt = ConsoleChannel("sms").notify(PAGE)
    assert receipt.status == "delivered"
    assert "+447700900021" not in caplog.text
    assert "+44770•••021" in caplog.text
