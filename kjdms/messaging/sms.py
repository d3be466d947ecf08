"""SMS gateways: the default writes a masked line to the log (there is no real gateway here)."""
from __future__ import annotations

import logging

from .masking import mask_phone, mask_text

log = logging.getLogger(__name__)


class LoggingSmsGateway:
    """Pretends to send: logs the masked number, the start of the text and its length."""

    def __init__(self):
        self.sent = 0

    def send(self, phone: str, text: str, *, message_id: str) -> None:
        """Log that text went to phone, masked, under message_id."""
        log.info("SMS %s to %s: %s", message_id, mask_phone(phone), mask_text(text))
        self.sent += 1
