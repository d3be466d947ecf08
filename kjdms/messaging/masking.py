"""Mask phone numbers, e-mail addresses and message texts before they reach a log or an error column."""
from __future__ import annotations

import re

TEXT_SHOWN = 6


def mask_phone(phone: str | None) -> str:
    """Return phone with all but its first three and last four digits hidden: 139****1234."""
    digits = re.sub(r"\D", "", phone or "")
    if len(digits) <= 7:
        return "*" * len(digits)
    return digits[:3] + "*" * (len(digits) - 7) + digits[-4:]


def mask_email(address: str | None) -> str:
    """Return address with the local part hidden but its first character: z***@example.cn."""
    local, at, domain = (address or "").partition("@")
    return f"{local[:1]}***{at}{domain}" if at else "***"


def mask_text(text: str | None) -> str:
    """Return the first few characters of text and its length, never the whole of it."""
    text = text or ""
    shown = text[:TEXT_SHOWN]
    return f"{shown}…（共{len(text)}字）" if len(text) > TEXT_SHOWN else f"（共{len(text)}字）"


def without(secret: str | None, message: str, masked: str) -> str:
    """Return message with every occurrence of secret replaced by masked."""
    return message.replace(secret, masked) if secret else message
