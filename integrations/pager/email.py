"""Email pages through an SMTP server (settings are passed in, never read from env here)."""

from __future__ import annotations

import logging
import smtplib
import ssl
import uuid
from dataclasses import dataclass
from email.message import EmailMessage

from integrations.pager.base import PageMessage, Receipt, TransportError, mask

log = logging.getLogger("goldenhour.pager")


@dataclass(frozen=True)
class SmtpSettings:
    host: str  # SMTP_HOST
    port: int = 587  # SMTP_PORT
    user: str = ""  # SMTP_USER; empty: no login
    password: str = ""  # SMTP_PASSWORD
    sender: str = ""  # SMTP_FROM
    starttls: bool = True  # SMTP_STARTTLS
    timeout: float = 10.0  # seconds, for the connection and each command


class EmailChannel:
    name = "email"

    def __init__(self, settings: SmtpSettings):
        self.settings = settings

    def notify(self, message: PageMessage) -> Receipt:
        """Send the page by email; the receipt's provider_id is the Message-ID.

        Raises TransportError: permanent when the server refuses the address, our sender
        or our login (someone must change a setting); transient when the server cannot
        be reached, times out or fails otherwise.
        """
        s = self.settings
        mail = self._compose(message)
        where = f"{s.host}:{s.port}"
        try:
            with smtplib.SMTP(s.host, s.port, timeout=s.timeout) as smtp:
                if s.starttls:
                    smtp.starttls(context=ssl.create_default_context())
                if s.user:
                    smtp.login(s.user, s.password)
                smtp.send_message(mail)
        except smtplib.SMTPRecipientsRefused:
            error = TransportError(f"Email: the mail server {where} refused this user's "
                                   "email address", permanent=True)
        except smtplib.SMTPSenderRefused:
            error = TransportError(f"Email: the mail server {where} refused SMTP_FROM "
                                   f"{s.sender!r}", permanent=True)
        except smtplib.SMTPAuthenticationError:
            error = TransportError(f"Email: the mail server {where} refused our login: "
                                   "check SMTP_USER and SMTP_PASSWORD", permanent=True)
        except smtplib.SMTPNotSupportedError:
            error = TransportError(f"Email: the mail server {where} does not offer STARTTLS "
                                   "(SMTP_STARTTLS is on)", permanent=True)
        except (smtplib.SMTPException, OSError) as exc:
            # smtplib turns a read timeout into SMTPServerDisconnected; the cause tells.
            if isinstance(exc, TimeoutError) or isinstance(exc.__context__, TimeoutError):
                error = TransportError(f"Email: the mail server {where} did not answer "
                                       f"within {s.timeout:g} s")
            else:
                error = TransportError(f"Email: the mail server {where} did not take the "
                                       f"email ({type(exc).__name__})")
        else:
            log.info("Email %s to %s: %s", message.reference, mask(message.to),
                     mail["Message-ID"])
            return Receipt("email", mail["Message-ID"], "sent")
        log.warning("Email %s to %s failed: %s", message.reference, mask(message.to), error)
        raise error

    def _compose(self, message: PageMessage) -> EmailMessage:
        mail = EmailMessage()
        mail["From"] = self.settings.sender
        mail["To"] = message.to
        # The first sentence is the headline: service, hospital, urgency.
        mail["Subject"] = message.text.split(". ")[0].rstrip(".")[:120] or "goldenhour page"
        mail["Message-ID"] = f"<{uuid.uuid4().hex}@goldenhour>"
        mail.set_content(f"{message.text}\n\n{message.link}\n" if message.link
                         else f"{message.text}\n")
        return mail
