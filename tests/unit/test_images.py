"""Unit tests for kjdms.documents.images: re-encoding uploaded images and previewing PDFs."""

import io
import resource
import struct
import subprocess
import sys
import threading
import zlib

import pytest
from PIL import ExifTags, Image, ImageCms
from PIL.PngImagePlugin import PngInfo
from pypdf import PdfReader, PdfWriter

from kjdms.documents import images as imaging
from kjdms.documents.images import ImageRefused, PreviewUnavailable, pdf_first_page_png, reencode_image
from kjdms.documents import pdf_render
from kjdms.documents.pdf_render import MAX_PREVIEW_ASPECT
from kjdms.samples import sample_pdf, sample_png

RED, BLUE = (255, 0, 0), (0, 0, 255)


def two_colour_image(width=40, height=20) -> Image.Image:
    """Return an image whose left half is red and right half blue, to see which way it turned."""
    image = Image.new("RGB", (width, height), BLUE)
    image.paste(RED, (0, 0, width // 2, height))
    return image


def camera_exif(orientation: int = 1) -> Image.Exif:
    """Return EXIF as a phone writes it: orientation, camera, and where the photo was taken."""
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = orientation
    exif[ExifTags.Base.Model] = "PhoneCam 12"
    gps = exif.get_ifd(ExifTags.IFD.GPSInfo)
    gps[ExifTags.GPS.GPSLatitudeRef] = "N"
    gps[ExifTags.GPS.GPSLatitude] = (41.0, 34.0, 12.0)
    gps[ExifTags.GPS.GPSLongitudeRef] = "E"
    gps[ExifTags.GPS.GPSLongitude] = (120.0, 27.0, 3.0)
    return exif


def jpeg(image: Image.Image, **options) -> bytes:
    output = io.BytesIO()
    image.save(output, format="JPEG", quality=95, **options)
    return output.getvalue()


def png(image: Image.Image, **options) -> bytes:
    output = io.BytesIO()
    image.save(output, format="PNG", **options)
    return output.getvalue()


def png_header_only(width: int, height: int) -> bytes:
    """Return a tiny PNG that declares width × height pixels and carries garbage for pixel data."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", b"not zlib") + chunk(b"IEND", b"")


def opened(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


# Re-encoding


def test_jpeg_loses_gps_and_all_exif():
    original = jpeg(two_colour_image(), exif=camera_exif())
    assert opened(original).getexif().get_ifd(ExifTags.IFD.GPSInfo)  # the fixture does carry GPS
    result = reencode_image(original, "image/jpeg")
    image = opened(result)
    assert image.format == "JPEG"
    assert not image.getexif()
    assert not image.getexif().get_ifd(ExifTags.IFD.GPSInfo)
    assert b"Exif" not in result and b"PhoneCam" not in result


def test_jpeg_loses_comment_and_icc_profile():
    profile = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    original = jpeg(two_colour_image(), comment="scanned by 张三".encode(), icc_profile=profile)
    image = opened(reencode_image(original, "image/jpeg"))
    assert "comment" not in image.info and "icc_profile" not in image.info


def test_exif_orientation_is_applied():
    # Orientation 6: the camera was turned a quarter clockwise, so the left edge belongs on top.
    original = jpeg(two_colour_image(40, 20), exif=camera_exif(orientation=6))
    image = opened(reencode_image(original, "image/jpeg"))
    assert image.size == (20, 40)
    top, bottom = image.getpixel((10, 5)), image.getpixel((10, 35))
    assert top[0] > 200 and top[2] < 60
    assert bottom[2] > 200 and bottom[0] < 60


def test_cmyk_jpeg_comes_back_rgb():
    original = jpeg(two_colour_image().convert("CMYK"))
    image = opened(reencode_image(original, "image/jpeg"))
    assert image.mode == "RGB"


def test_png_loses_text_chunks_and_exif_but_keeps_transparency():
    info = PngInfo()
    info.add_text("Author", "张三")
    info.add_text("Comment", "GPS 41.57N 120.45E")
    image = Image.new("RGBA", (16, 16), (255, 0, 0, 0))
    result = reencode_image(png(image, pnginfo=info, exif=camera_exif()), "image/png")
    again = opened(result)
    assert again.format == "PNG" and again.mode == "RGBA"
    assert again.getpixel((0, 0))[3] == 0
    assert not again.getexif() and "Author" not in again.info and "Comment" not in again.info
    assert b"tEXt" not in result and b"eXIf" not in result


def test_palette_png_keeps_its_transparent_colour():
    image = Image.new("P", (8, 8), 1)
    image.putpalette([0, 0, 0, 255, 255, 255])
    again = opened(reencode_image(png(image, transparency=1), "image/png"))
    assert again.info.get("transparency") == 1


def test_pixels_survive_a_png_round_trip():
    original = sample_png(32, 24, seed=5)
    assert opened(reencode_image(original, "image/png")).tobytes() == opened(original).tobytes()


def test_declared_size_above_the_limit_is_refused_before_decoding():
    # The pixel data is garbage: a refusal about size shows it was never decoded.
    with pytest.raises(ImageRefused, match=r"图片尺寸过大（8000×6000=48000000像素.*请缩小后上传"):
        reencode_image(png_header_only(8000, 6000), "image/png")


def test_decompression_bomb_is_refused():
    bomb = png_header_only(30000, 30000)
    assert len(bomb) < 100
    with pytest.raises(ImageRefused, match="图片尺寸过大.*请缩小后上传"):
        reencode_image(bomb, "image/png")


def test_limit_is_the_callers():
    with pytest.raises(ImageRefused, match="最多500像素"):
        reencode_image(sample_png(32, 24), "image/png", max_pixels=500)


def test_truncated_jpeg_is_refused():
    whole = jpeg(Image.effect_noise((200, 200), 64).convert("RGB"))
    with pytest.raises(ImageRefused, match="损坏或不完整"):
        reencode_image(whole[: len(whole) // 2], "image/jpeg")


def test_content_not_of_the_declared_type_is_refused():
    with pytest.raises(ImageRefused, match="不是有效的JPEG图片"):
        reencode_image(sample_png(), "image/jpeg")


def test_unsupported_type_is_refused():
    with pytest.raises(ImageRefused, match="不支持的图片类型"):
        reencode_image(b"GIF89a", "image/gif")


def test_refusals_are_value_errors():
    assert issubclass(ImageRefused, ValueError) and issubclass(PreviewUnavailable, ValueError)


# PDF preview


def test_first_page_renders_at_the_requested_width():
    image = opened(pdf_first_page_png(sample_pdf("Hello reviewer"), width=900))
    assert image.format == "PNG"
    assert image.size == (900, round(900 * 842 / 595))
    assert image.convert("L").getextrema()[0] < 100  # the text was drawn


def test_only_the_first_page_is_rendered():
    writer = PdfWriter()
    writer.add_blank_page(width=595, height=842)
    writer.add_blank_page(width=842, height=595)
    output = io.BytesIO()
    writer.write(output)
    assert opened(pdf_first_page_png(output.getvalue(), width=300)).size == (300, round(300 * 842 / 595))


def test_very_tall_page_is_shrunk_not_rendered_huge():
    tall = sample_pdf().replace(b"/MediaBox [0 0 595 842]", b"/MediaBox [0 0 9 14400]")
    width, height = opened(pdf_first_page_png(tall, width=900)).size
    assert height <= 900 * MAX_PREVIEW_ASPECT and width < 900


@pytest.mark.parametrize("data", [b"", b"not a pdf at all", b"%PDF-1.4\n%%EOF\n", sample_pdf()[:120]])
def test_corrupt_pdf_is_refused(data):
    with pytest.raises(PreviewUnavailable, match="文件：PDF"):
        pdf_first_page_png(data)


def encrypted(user_password: str) -> bytes:
    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(sample_pdf())))
    writer.encrypt(user_password=user_password, owner_password="owner-secret", algorithm="RC4-128")
    output = io.BytesIO()
    writer.write(output)
    return output.getvalue()


def test_pdf_needing_a_password_is_refused():
    with pytest.raises(PreviewUnavailable, match="加密"):
        pdf_first_page_png(encrypted(user_password="secret"))


def test_pdf_with_only_an_owner_password_renders():
    assert opened(pdf_first_page_png(encrypted(user_password=""), width=200)).width == 200


def test_a_render_past_the_timeout_is_killed_and_refused():
    with pytest.raises(PreviewUnavailable, match="预览超时"):
        pdf_first_page_png(sample_pdf(), timeout=0.001)


def test_a_renderer_that_crashes_is_refused_and_the_caller_lives_on(monkeypatch):
    # What a PDF that segfaults PDFium does: the child dies of a signal, this process carries on.
    crash = [sys.executable, "-c", "import os, signal; os.kill(os.getpid(), signal.SIGSEGV)"]
    monkeypatch.setattr(imaging, "_render_command", lambda arguments: crash)
    with pytest.raises(PreviewUnavailable, match="无法预览，请下载后查看"):
        pdf_first_page_png(sample_pdf())


def test_the_renderer_stands_alone_and_limits_its_memory(tmp_path):
    """The child imports no kjdms module (it starts fast) and caps its address space before reading the PDF."""
    command = imaging._render_command(["preview", "100"])
    assert command[:2] == [sys.executable, "-I"]
    (tmp_path / "page.pdf").write_bytes(sample_pdf("alone"))
    probe = (
        "import io, resource, runpy, sys\n"
        f"module = runpy.run_path({command[2]!r})\n"
        f"sys.argv = ['pdf_render.py', 'preview', '100']\n"
        f"sys.stdin = io.TextIOWrapper(open({str(tmp_path / 'page.pdf')!r}, 'rb'))\n"
        "sys.stdout = io.TextIOWrapper(io.BytesIO())\n"
        "code = module['main']()\n"
        "loaded = sorted(name for name in sys.modules if name.split('.')[0] == 'kjdms')\n"
        "print(code, resource.getrlimit(resource.RLIMIT_AS)[0], loaded, file=sys.stderr)\n"
    )
    child = subprocess.run([sys.executable, "-I", "-c", probe], capture_output=True, text=True, timeout=60)
    assert child.returncode == 0, child.stderr
    assert child.stderr.split() == ["0", str(pdf_render.MEMORY_LIMIT), "[]"]


def test_the_renderer_works_under_a_lower_hard_memory_limit_set_by_the_operator():
    # `ulimit -v` below the child's own cap: it keeps the lower limit instead of failing to raise it.
    def limit():
        resource.setrlimit(resource.RLIMIT_AS, (900 * 2**20, 900 * 2**20))
    child = subprocess.run(imaging._render_command(["preview", "100"]), input=sample_pdf(), capture_output=True,
                           preexec_fn=limit, timeout=60)
    assert child.returncode == 0, child.stderr
    assert opened(child.stdout).width == 100


def test_the_server_side_never_loads_pdfium():
    probe = ("import sys, kjdms.documents.images, kjdms.documents.text, kjdms.views.files, kjdms.worker; "
             "print('pypdfium2' in sys.modules)")
    child = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert child.stdout.strip() == "False", child.stderr


def test_renders_beyond_the_slots_wait_and_one_that_waits_too_long_is_refused(monkeypatch):
    monkeypatch.setattr(imaging, "_RENDER_SLOTS", threading.BoundedSemaphore(1))
    imaging._RENDER_SLOTS.acquire()  # another request is rendering
    try:
        with pytest.raises(imaging.RenderTimedOut, match="预览繁忙"):
            pdf_first_page_png(sample_pdf(), timeout=0.2)
    finally:
        imaging._RENDER_SLOTS.release()
    assert opened(pdf_first_page_png(sample_pdf(), width=120)).width == 120


def test_a_notice_wraps_long_text_and_grows_to_hold_it():
    short, long = opened(imaging.notice_png("无法预览")), opened(imaging.notice_png("无法预览，" * 40, width=600))
    assert short.width == 900 and long.width == 600 and long.height > short.height
    assert long.convert("L").getextrema()[0] < 100  # the text was drawn


@pytest.mark.parametrize("width", [0, -5, 100_000])
def test_unreasonable_width_is_refused(width):
    with pytest.raises(ValueError):
        pdf_first_page_png(sample_pdf(), width=width)
