"""Development channel: the page goes to the log (and the in-app pager inbox)."""

from __future__ import annotations

import logging
import uuid

from integrations.pager.base import PageMessage, Receipt, mask

log = logging.getLogger("goldenhour.pager")


class ConsoleChannel:
    name = "console"

    def __init__(self, stands_in_for: str = "console"):
        self.stands_in_for = stands_in_for

    def notify(self, message: PageMessage) -> Receipt:
        """Log the page with the address masked. Never raises."""
        log.info("PAGE (%s, console) to %s: %s %s", self.stands_in_for, mask(message.to),
                 message.text, message.link)
        return Receipt("console", f"console-{uuid.uuid4().hex[:16]}", "delivered")
