"""Pager channels: each a small class with one notify(message) -> Receipt that raises
TransportError. `build_channels(config)` picks real or console channels from settings."""

from __future__ import annotations

from collections.abc import Mapping

from integrations.pager.base import PageMessage, Receipt, TransportError
from integrations.pager.console import ConsoleChannel

__all__ = ["PageMessage", "Receipt", "TransportError", "build_channels"]


def build_channels(config: Mapping) -> dict:
    """Channels by name ("sms", "voice", "email", "webpush", "console") from the app's
    settings.

    Without Twilio, SMTP or VAPID settings those channels are the console channel, which
    the admin status page reports. Makes no network request; raises KeyError when a
    required setting is missing (config.py has checked them at start-up).
    """
    channels: dict = {"console": ConsoleChannel()}
    if config.get("TWILIO_ACCOUNT_SID"):
        from integrations.pager.twilio_client import TWILIO_BASE, TwilioSettings
        from integrations.pager.twilio_sms import TwilioSmsChannel
        from integrations.pager.twilio_voice import TwilioVoiceChannel

        settings = TwilioSettings(
            account_sid=config["TWILIO_ACCOUNT_SID"], auth_token=config["TWILIO_AUTH_TOKEN"],
            from_number=config["TWILIO_FROM_NUMBER"],
            api_base=config.get("TWILIO_API_BASE") or TWILIO_BASE,
            timeout=float(config.get("TWILIO_TIMEOUT_SECONDS", 5)))
        channels["sms"] = TwilioSmsChannel(settings)
        channels["voice"] = TwilioVoiceChannel(settings)
    else:
        channels["sms"] = ConsoleChannel("sms")
        channels["voice"] = ConsoleChannel("voice")
    if config.get("SMTP_HOST"):
        from integrations.pager.email import EmailChannel, SmtpSettings

        channels["email"] = EmailChannel(SmtpSettings(
            host=config["SMTP_HOST"], port=int(config.get("SMTP_PORT", 587)),
            user=config.get("SMTP_USER", ""), password=config.get("SMTP_PASSWORD", ""),
            sender=config["SMTP_FROM"], starttls=bool(config.get("SMTP_STARTTLS", True)),
            timeout=float(config.get("SMTP_TIMEOUT_SECONDS", 10))))
    else:
        channels["email"] = ConsoleChannel("email")
    if config.get("VAPID_PRIVATE_KEY"):
        from integrations.pager.webpush import PushSettings, WebPushChannel

        channels["webpush"] = WebPushChannel(PushSettings(
            private_key=config["VAPID_PRIVATE_KEY"], subject=config["VAPID_SUBJECT"],
            timeout=float(config.get("PUSH_TIMEOUT_SECONDS", 5))))
    else:
        channels["webpush"] = ConsoleChannel("webpush")
    return channels


def warm(channels: Mapping) -> None:
    """Load what each channel would otherwise load on its first page (no request)."""
    for channel in channels.values():
        if hasattr(channel, "warm"):
            channel.warm()
