"""A real SMTP server (aiosmtpd) on 127.0.0.1 that keeps what it receives."""

from __future__ import annotations

import email
from dataclasses import dataclass, field

import pytest
from aiosmtpd.controller import Controller

from tests.services import free_port


@dataclass
class Mailbox:
    host: str
    port: int
    messages: list = field(default_factory=list)

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's name
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos),
                              email.message_from_bytes(envelope.content)))
        return "250 OK"

    def app_config(self) -> dict:
        return {"SMTP_HOST": self.host, "SMTP_PORT": self.port, "SMTP_FROM": "pager@gh.test",
                "SMTP_STARTTLS": False, "SMTP_TIMEOUT_SECONDS": 5}


@pytest.fixture(scope="session")
def _smtp_session():
    mailbox = Mailbox("127.0.0.1", free_port())
    controller = Controller(mailbox, hostname="127.0.0.1", port=mailbox.port)
    controller.start()
    yield mailbox
    controller.stop()


@pytest.fixture
def smtp_server(_smtp_session) -> Mailbox:
    _smtp_session.messages.clear()
    return _smtp_session
