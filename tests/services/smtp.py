"""A real SMTP server (aiosmtpd) on 127.0.0.1 that keeps what it receives.

Fixtures:
  ``smtp_server`` (session) a Mailbox: ``host``, ``port``, ``messages`` (a list of
      Received: ``mail_from``, ``rcpt_tos``, ``message`` parsed by the email package),
      ``clear()``, ``app_config()``. Messages persist across tests: clear them, or
  ``mailbox`` (function) the same Mailbox, emptied for this test.
"""

from __future__ import annotations

import email
import email.policy
import threading
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import NamedTuple

import pytest
from aiosmtpd.controller import Controller

from tests.services import free_port


class Received(NamedTuple):
    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage


@dataclass
class Mailbox:
    host: str
    port: int
    messages: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's name
        parsed = email.message_from_bytes(envelope.content, policy=email.policy.default)
        with self.lock:
            self.messages.append(Received(envelope.mail_from, list(envelope.rcpt_tos), parsed))
        return "250 OK"

    def clear(self) -> None:
        with self.lock:
            self.messages.clear()

    def app_config(self) -> dict:
        """Settings for the `app` fixture (see `app_config` in tests/conftest.py)."""
        return {"SMTP_HOST": self.host, "SMTP_PORT": self.port, "SMTP_FROM": "pager@gh.test",
                "SMTP_STARTTLS": False, "SMTP_TIMEOUT_SECONDS": 5}


@pytest.fixture(scope="session")
def smtp_server() -> Mailbox:
    """An aiosmtpd server on a free port of 127.0.0.1 for the whole session (per xdist worker)."""
    mailbox = Mailbox("127.0.0.1", free_port())
    controller = Controller(mailbox, hostname="127.0.0.1", port=mailbox.port)
    controller.start()
    yield mailbox
    controller.stop()


@pytest.fixture
def mailbox(smtp_server) -> Mailbox:
    """The test SMTP server with no messages from earlier tests."""
    smtp_server.clear()
    yield smtp_server
    smtp_server.clear()
