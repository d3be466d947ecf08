"""A real SMTP server for the notification tests (aiosmtpd in a thread), never a mock of smtplib."""
from __future__ import annotations

import socket
from email import message_from_bytes, policy

from aiosmtpd.controller import Controller


def free_port() -> int:
    """Return a TCP port nobody listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Collecting:
    """An aiosmtpd handler keeping each message it accepts; it refuses recipients in refused."""

    def __init__(self, refused=()):
        self.messages, self.refused = [], set(refused)

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address in self.refused:
            return f"550 5.1.1 <{address}>: recipient unknown"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        self.messages.append((envelope.rcpt_tos, message_from_bytes(envelope.content, policy=policy.default)))
        return "250 Message accepted for delivery"


class SmtpServer:
    """Start and stop an SMTP server on a port of its own, keeping what it receives."""

    def __init__(self, port: int | None = None, refused=()):
        self.port = port or free_port()
        self.handler = Collecting(refused)
        self.controller = Controller(self.handler, hostname="127.0.0.1", port=self.port)

    @property
    def messages(self):
        """Return the (recipients, message) pairs received so far."""
        return self.handler.messages

    def __enter__(self):
        self.controller.start()
        return self

    def __exit__(self, *exc_info):
        self.controller.stop()
