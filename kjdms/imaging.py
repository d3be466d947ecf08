"""Make uploaded images safe to keep (re-encoded, metadata stripped) and preview PDFs as PNG."""
from __future__ import annotations

import io
import threading

import pypdfium2
from PIL import Image, ImageOps

# The formats an upload may be, by sniffed media type; anything else is not an image we keep.
IMAGE_FORMATS = {"image/jpeg": "JPEG", "image/png": "PNG"}
JPEG_QUALITY = 85
MAX_PREVIEW_WIDTH = 3000
# A page taller than this many widths (a hostile 1 × 10000 pt page) is shrunk to fit, not rendered huge.
MAX_PREVIEW_ASPECT = 3

# PDFium is not thread-safe, and the application server runs requests in threads.
_PDFIUM_LOCK = threading.Lock()


class ImageRefused(ValueError):
    """An uploaded image that is too large, corrupt or not of its declared type."""


class PreviewUnavailable(ValueError):
    """A PDF whose first page cannot be rendered: encrypted, corrupt or empty."""


def reencode_image(data: bytes, media_type: str, *, max_pixels: int = 40_000_000) -> bytes:
    """Return data decoded and re-encoded in its own format, upright, with all metadata dropped."""
    image_format = IMAGE_FORMATS.get(media_type)
    if image_format is None:
        raise ImageRefused(f"文件：不支持的图片类型（{media_type}），请上传JPEG或PNG图片")
    image = _open_checked(data, image_format, max_pixels)
    image = _decode_upright(image, image_format)
    return _encode(image, image_format)


def pdf_first_page_png(data: bytes, *, width: int = 900) -> bytes:
    """Return the first page of the PDF in data rendered as a PNG width pixels wide."""
    if not 1 <= width <= MAX_PREVIEW_WIDTH:
        raise ValueError(f"width must be between 1 and {MAX_PREVIEW_WIDTH}, not {width}")
    with _PDFIUM_LOCK:
        bitmap = _render_first_page(data, width)
    output = io.BytesIO()
    bitmap.save(output, format="PNG")
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


def _render_first_page(data: bytes, width: int) -> Image.Image:
    try:
        document = pypdfium2.PdfDocument(data)
    except pypdfium2.PdfiumError as error:
        raise PreviewUnavailable(_pdf_refusal(error)) from error
    try:
        if len(document) == 0:
            raise PreviewUnavailable("文件：PDF没有页面，无法预览")
        page = document[0]
        try:
            return _render_page(page, width)
        finally:
            page.close()
    except pypdfium2.PdfiumError as error:
        raise PreviewUnavailable("文件：PDF已损坏，无法预览") from error
    finally:
        document.close()


def _render_page(page, width: int) -> Image.Image:
    """Render at a fixed width, never taller than MAX_PREVIEW_ASPECT widths, so memory stays bounded."""
    page_width, page_height = page.get_size()
    if page_width <= 0 or page_height <= 0:
        raise PreviewUnavailable("文件：PDF页面尺寸无效，无法预览")
    scale = min(width / page_width, width * MAX_PREVIEW_ASPECT / page_height)
    bitmap = page.render(scale=scale, fill_color=(255, 255, 255, 255))
    try:
        image = bitmap.to_pil().convert("RGB")  # a copy: the bitmap's buffer is freed below
    finally:
        bitmap.close()
    # pdfium rounds the size up, so a float error in the scale can add a column or row.
    return image.crop((0, 0, min(image.width, width), min(image.height, width * MAX_PREVIEW_ASPECT)))


def _pdf_refusal(error: pypdfium2.PdfiumError) -> str:
    # An owner password alone (print or copy restrictions) opens without a password, as many
    # official downloads do; only a PDF that needs a password to be read at all is refused.
    if "password" in str(error).lower():
        return "文件：PDF已加密，无法预览，请上传未加密的PDF"
    return "文件：PDF已损坏或不是有效的PDF，无法预览"
