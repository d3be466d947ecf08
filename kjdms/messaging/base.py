"""What a mailer and an SMS gateway must do; a refusal is a DeliveryFailed whose message may be logged."""
from __future__ import annotations

from typing import Protocol


class DeliveryFailed(Exception):
    """A message was not sent; the text names the cause in Chinese and never holds an address in full."""

    def __init__(self, message: str, *, permanent: bool = False):
        super().__init__(message)
        # A permanent failure (a refused address) is not retried.
        self.permanent = permanent


class Mailer(Protocol):
    """Sends one e-mail."""

    def send(self, to: str, subject: str, body: str, *, message_id: str) -> None:
        """Send body to the address to; message_id is stable across retries, so receivers drop a duplicate."""


class SmsGateway(Protocol):
    """Sends one text message."""

    def send(self, phone: str, text: str, *, message_id: str) -> None:
        """Send text to phone; message_id is stable across retries, for gateways that deduplicate."""
