"""Certificate-like scans for the demo: a title and lines of Chinese text that OCR can read, with a seal."""
from __future__ import annotations

import io

from PIL import Image, ImageDraw, ImageFont

from .base import cjk_font

WIDTH, HEIGHT = 1400, 1000
INK, PAPER, SEAL = (30, 30, 30), (252, 249, 240), (200, 30, 30)


def certificate_jpeg(title: str, lines: list[tuple[str, str]], *, issuer: str, issued_on: str) -> bytes:
    """Return a JPEG, as a scanner makes, showing title, "label：value" lines, the issuer and date beside a red seal."""
    path, index = cjk_font()
    font = lambda size: ImageFont.truetype(str(path), size=size, index=index)  # noqa: E731
    image = Image.new("RGB", (WIDTH, HEIGHT), PAPER)
    draw = ImageDraw.Draw(image)
    draw.rectangle((30, 30, WIDTH - 31, HEIGHT - 31), outline=(150, 110, 40), width=10)
    draw.rectangle((52, 52, WIDTH - 53, HEIGHT - 53), outline=(150, 110, 40), width=2)
    # Sizes chosen by trying them on tesseract: smaller body text and bolder or larger titles were misread.
    draw.text((WIDTH // 2, 150), title, font=font(56), fill=INK, anchor="mm")
    body = font(48)
    for number, (label, value) in enumerate(lines):
        draw.text((150, 280 + number * 80), f"{label}：{value}", font=body, fill=INK)
    # The seal sits right of the issuer, as stamps do, and clear of the text OCR must read.
    centre = (WIDTH - 300, HEIGHT - 230)
    draw.ellipse((centre[0] - 120, centre[1] - 120, centre[0] + 120, centre[1] + 120), outline=SEAL, width=8)
    draw.text(centre, "★", font=font(90), fill=SEAL, anchor="mm")
    draw.text((150, HEIGHT - 240), issuer, font=body, fill=INK)
    draw.text((150, HEIGHT - 170), issued_on, font=body, fill=INK)
    output = io.BytesIO()
    # JPEG as scans are, and ten times quicker to encode than PNG at this size (the demo makes a dozen).
    image.save(output, format="JPEG", quality=85)
    return output.getvalue()
