"""Make uploaded images safe to keep (re-encoded, metadata stripped) and preview PDFs as PNG (in a child process)."""
from __future__ import annotations

import io
import logging
import os
import sys
import threading
import time
from pathlib import Path

from PIL import Image, ImageOps

from . import pdf_render, renderer

# The formats an upload may be, by sniffed media type; anything else is not an image we keep.
IMAGE_FORMATS = {"image/jpeg": "JPEG", "image/png": "PNG"}
JPEG_QUALITY = 85
MAX_PREVIEW_WIDTH = 3000
# A first page that takes longer than this to render is not previewed (the reviewer can download it).
PREVIEW_TIMEOUT = 15.0
PREVIEW_TIMED_OUT = "文件：PDF首页过于复杂，预览超时，请下载后查看"
PREVIEW_FAILED = "文件：PDF无法预览，请下载后查看"
RENDER_BUSY = "文件：预览繁忙，请稍后刷新或下载后查看"
# At most this many renderers at once (each may use up to pdf_render.MEMORY_LIMIT); the rest wait their turn.
_RENDER_SLOTS = threading.BoundedSemaphore(max(1, os.cpu_count() or 1))
# The child gets no secrets or database address from the server's environment.
_CHILD_ENVIRONMENT = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C.UTF-8"}

log = logging.getLogger(__name__)


class ImageRefused(ValueError):
    """An uploaded image that is too large, corrupt or not of its declared type."""


class PreviewUnavailable(ValueError):
    """A PDF whose first page cannot be rendered: encrypted, corrupt, empty, too slow, or it crashed the renderer."""


class RenderTimedOut(PreviewUnavailable):
    """The renderer did not finish in time and was killed."""


def reencode_image(data: bytes, media_type: str, *, max_pixels: int = 40_000_000) -> bytes:
    """Return data decoded and re-encoded in its own format, upright, with all metadata dropped."""
    image_format = IMAGE_FORMATS.get(media_type)
    if image_format is None:
        raise ImageRefused(f"文件：不支持的图片类型（{media_type}），请上传JPEG或PNG图片")
    image = _open_checked(data, image_format, max_pixels)
    image = _decode_upright(image, image_format)
    return _encode(image, image_format)


def pdf_first_page_png(data: bytes, *, width: int = 900, timeout: float = PREVIEW_TIMEOUT) -> bytes:
    """Return the first page of the PDF in data rendered as a PNG width pixels wide."""
    if not 1 <= width <= MAX_PREVIEW_WIDTH:
        raise ValueError(f"width must be between 1 and {MAX_PREVIEW_WIDTH}, not {width}")
    png = _render_in_child(["preview", str(width)], data, timeout)
    if not png:
        raise PreviewUnavailable(PREVIEW_FAILED)
    return png


def pdf_pages_for_ocr(data: bytes, indexes: list[int], *, dpi: int, max_pixels: int,
                      timeout: float) -> dict[int, Image.Image]:
    """Return the PDF's pages at indexes rendered in grey at dpi (smaller past max_pixels), by index."""
    framed = _render_in_child(["ocr", str(dpi), str(max_pixels), ",".join(map(str, indexes))], data, timeout)
    images, offset = {}, 0
    while offset < len(framed):
        index, length = pdf_render.FRAME.unpack_from(framed, offset)
        offset += pdf_render.FRAME.size
        images[index] = Image.open(io.BytesIO(framed[offset:offset + length]), formats=["PNG"])
        offset += length
    return images


def _render_in_child(arguments: list[str], data: bytes, timeout: float) -> bytes:
    """Render data as arguments ask in a fresh child process; return its output or raise PreviewUnavailable."""
    # In a child process: PDFium is C, so a hostile page that loops or crashes would otherwise hang a
    # request thread or kill the server; the child is killed at the timeout. The wait for a slot counts.
    started = time.monotonic()
    if not _RENDER_SLOTS.acquire(timeout=max(timeout, 0)):
        raise RenderTimedOut(RENDER_BUSY)
    try:
        mode, *options = arguments
        status, output = renderer.render(_render_command(["zygote"]), _CHILD_ENVIRONMENT, mode, options, data,
                                         timeout - (time.monotonic() - started))
    except TimeoutError:
        raise RenderTimedOut(PREVIEW_TIMED_OUT) from None
    except renderer.RendererCrashed as crash:
        log.warning("PDF renderer %s: %s", mode, crash)
        raise PreviewUnavailable(PREVIEW_FAILED) from None
    finally:
        _RENDER_SLOTS.release()
    if status == pdf_render.REFUSED:
        raise PreviewUnavailable(output.decode("utf-8", "replace"))
    if status != pdf_render.OK:
        log.warning("PDF renderer %s failed: %s", mode, output.decode("utf-8", "replace"))
        raise PreviewUnavailable(PREVIEW_FAILED)
    return output


def _render_command(arguments: list[str]) -> list[str]:
    """Return the command that runs pdf_render.py as a script (the zygote, or once), isolated from the environment."""
    return [sys.executable, "-I", str(Path(pdf_render.__file__)), *arguments]


def notice_png(text: str, *, width: int = 900) -> bytes:
    """Return a PNG, width pixels wide, that shows text (wrapped) where a preview would have been."""
    from PIL import ImageDraw, ImageFont

    from .base import cjk_font

    path, index = cjk_font()
    font = ImageFont.truetype(str(path), size=max(12, width // 30), index=index)
    margin, lines, line = width // 20, [], ""
    for character in text:
        if font.getlength(line + character) > width - 2 * margin:
            lines.append(line)
            line = ""
        line += character
    lines.append(line)
    step = int(font.size * 1.6)
    image = Image.new("L", (width, max(width // 4, 2 * margin + step * len(lines))), 245)
    draw = ImageDraw.Draw(image)
    draw.rectangle((0, 0, image.width - 1, image.height - 1), outline=160, width=2)
    for number, text_line in enumerate(lines):
        draw.text((margin, margin + number * step), text_line, fill=40, font=font)
    output = io.BytesIO()
    image.save(output, format="PNG")
    return output.getvalue()


def _open_checked(data: bytes, image_format: str, max_pixels: int) -> Image.Image:
    """Read only the header and refuse a size above max_pixels before any pixel is decoded."""
    try:
        # Only the declared format's decoder may look at the bytes (no exotic plugins on hostile input).
        image = Image.open(io.BytesIO(data), formats=[image_format])
    except Image.DecompressionBombError as error:
        # Pillow's own, process-wide limit, far above ours; left as it is because other code shares it.
        raise ImageRefused(f"文件：图片尺寸过大（超过{max_pixels}像素），请缩小后上传") from error
    except Exception as error:
        raise ImageRefused(f"文件：不是有效的{image_format}图片，请重新上传") from error
    width, height = image.size
    if width * height > max_pixels:
        raise ImageRefused(
            f"文件：图片尺寸过大（{width}×{height}={width * height}像素，最多{max_pixels}像素），请缩小后上传"
        )
    return image


def _decode_upright(image: Image.Image, image_format: str) -> Image.Image:
    """Decode every pixel and turn the image the way its EXIF orientation says."""
    try:
        image.load()
        # Cameras store the sensor's rows and an orientation tag; the tag is about to be dropped.
        upright = ImageOps.exif_transpose(image)
    except Exception as error:
        # Pillow's decoders raise many kinds of error on damaged data; to the uploader they are all one.
        raise ImageRefused(f"文件：图片已损坏或不完整，无法读取，请重新上传{image_format}图片") from error
    return upright


def _encode(image: Image.Image, image_format: str) -> bytes:
    """Encode only the pixels: no EXIF (GPS, camera, time), XMP, ICC profile, comments or text chunks."""
    transparency = image.info.get("transparency")
    image.info = {}  # encoders copy some keys from info (JPEG the comment, PNG the ICC profile)
    output = io.BytesIO()
    if image_format == "JPEG":
        image.convert("RGB").save(output, format="JPEG", quality=JPEG_QUALITY, optimize=True)
    else:
        options = {} if transparency is None else {"transparency": transparency}
        image.save(output, format="PNG", optimize=True, **options)
    return output.getvalue()
