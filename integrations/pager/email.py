"""Email pages through an SMTP server."""

from __future__ import annotations

import smtplib
import ssl
import uuid
from dataclasses import dataclass
from email.message import EmailMessage

from integrations.pager.base import PageMessage, Receipt, TransportError


@dataclass(frozen=True)
class SmtpSettings:
    host: str
    port: int = 587
    user: str = ""
    password: str = ""
    sender: str = ""
    starttls: bool = True
    timeout: float = 10.0


class EmailChannel:
    name = "email"

    def __init__(self, settings: SmtpSettings):
        self.settings = settings

    def notify(self, message: PageMessage) -> Receipt:
        """Send the page by email. Raises TransportError (permanent for a refused address)."""
        s = self.settings
        mail = EmailMessage()
        mail["From"], mail["To"] = s.sender, message.to
        mail["Subject"] = message.text.split(".")[0][:120] or "goldenhour page"
        message_id = f"<{uuid.uuid4().hex}@goldenhour>"
        mail["Message-ID"] = message_id
        mail.set_content(f"{message.text}\n\n{message.link}\n")
        try:
            with smtplib.SMTP(s.host, s.port, timeout=s.timeout) as smtp:
                if s.starttls:
                    smtp.starttls(context=ssl.create_default_context())
                if s.user:
                    smtp.login(s.user, s.password)
                smtp.send_message(mail)
        except smtplib.SMTPRecipientsRefused:
            raise TransportError("the mail server refused this email address",
                                 permanent=True) from None
        except (smtplib.SMTPException, OSError) as exc:
            raise TransportError(f"the mail server {s.host}:{s.port} did not take the email "
                                 f"({type(exc).__name__})") from None
        return Receipt("email", message_id, "sent")
