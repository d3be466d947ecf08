"""E-mail over SMTP (KJDMS_SMTP_*), one connection a message; errors come back masked."""
from __future__ import annotations

import smtplib
import ssl
from email.message import EmailMessage
from email.utils import formatdate

from .base import DeliveryFailed
from .masking import mask_email, without


class SmtpMailer:
    """Sends through one SMTP server, with STARTTLS and a login when configured."""

    def __init__(self, host: str, port: int = 25, *, sender: str, username: str | None = None,
                 password: str | None = None, starttls: bool = False, timeout: float = 30):
        self.host, self.port, self.sender = host, port, sender
        self.username, self.password, self.starttls, self.timeout = username, password, starttls, timeout

    def message(self, to: str, subject: str, body: str, message_id: str) -> EmailMessage:
        """Return the e-mail as sent: UTF-8 plain text with a stable Message-ID."""
        message = EmailMessage()
        message["From"], message["To"], message["Subject"] = self.sender, to, subject
        message["Date"] = formatdate(localtime=False)
        message["Message-ID"] = f"<{message_id}@{self.sender.partition('@')[2] or 'kjdms'}>"
        message.set_content(body, charset="utf-8")
        return message

    def send(self, to: str, subject: str, body: str, *, message_id: str) -> None:
        """Send one e-mail; raise DeliveryFailed (permanent for a refused address) without the address in it."""
        message = self.message(to, subject, body, message_id)
        try:
            with smtplib.SMTP(self.host, self.port, timeout=self.timeout) as server:
                if self.starttls:
                    server.starttls(context=ssl.create_default_context())
                if self.username:
                    server.login(self.username, self.password or "")
                server.send_message(message)
        except smtplib.SMTPRecipientsRefused as error:
            codes = ",".join(str(code) for code, _ in error.recipients.values())
            raise DeliveryFailed(f"邮件服务器拒收该地址（{mask_email(to)}，代码 {codes}）", permanent=True) from None
        except (smtplib.SMTPException, OSError) as error:
            # Servers echo addresses in their replies: keep the cause, hide the address.
            reason = without(to, f"{type(error).__name__}: {error}", mask_email(to))[:300]
            raise DeliveryFailed(f"邮件发送失败：{reason}") from None
