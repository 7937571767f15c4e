"""Development channel: the page goes to the log (the app also keeps it for its inbox)."""

from __future__ import annotations

import logging
import uuid

from integrations.pager.base import PageMessage, Receipt, mask

log = logging.getLogger("goldenhour.pager")


class ConsoleChannel:
    name = "console"

    def __init__(self, stands_in_for: str = "console"):
        self.stands_in_for = stands_in_for  # "sms", "voice" or "email" when not configured

    def notify(self, message: PageMessage) -> Receipt:
        """Log the page with the address masked and return a "delivered" receipt.

        Never raises.
        """
        log.info("PAGE (%s, console) %s to %s: %s %s", self.stands_in_for, message.reference,
                 mask(message.to), message.text, message.link)
        return Receipt("console", f"console-{uuid.uuid4().hex[:16]}", "delivered")
