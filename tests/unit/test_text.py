"""Unit tests for kjdms.documents.text: text from PDFs, .docx files and, by OCR, from images and scans."""

import io
import os
import shutil
import subprocess
import sys
import time

import docx
import pytest
from fpdf import FPDF
from PIL import Image, ImageDraw, ImageFont
from pypdf import PdfReader, PdfWriter

from kjdms.documents import images as imaging, text as extraction
from kjdms.documents.text import DOCX, PDF, ExtractionResult, extract_text
from kjdms.documents.base import cjk_font
from kjdms.samples import sample_png

CERTIFICATE = "会计专业技术资格证书 初级 张伟"
OCR_PHRASE = "会计专业技术资格"


@pytest.fixture(scope="session")
def tesseract_installed() -> bool:
    """Return whether tesseract can read Simplified Chinese here."""
    if shutil.which("tesseract") is None:
        return False
    listing = subprocess.run(["tesseract", "--list-langs"], capture_output=True, text=True, timeout=30)
    return "chi_sim" in (listing.stdout + listing.stderr).split()


@pytest.fixture
def tesseract(tesseract_installed):
    """Skip a test that needs real OCR where tesseract is missing, but fail it under CI, which installs it."""
    if tesseract_installed:
        return
    reason = "tesseract with chi_sim is not installed (apt-get install tesseract-ocr tesseract-ocr-chi-sim)"
    if os.environ.get("CI"):
        pytest.fail(reason)
    pytest.skip(reason)


@pytest.fixture
def fake_tesseract(tmp_path, monkeypatch):
    """Return a function that installs a shell script, with the given body, as the tesseract command."""
    def install(body: str) -> None:
        script = tmp_path / "tesseract"
        script.write_text("#!/bin/sh\ncat >/dev/null\n" + body + "\n", encoding="utf-8")
        script.chmod(0o755)
        monkeypatch.setattr(extraction, "TESSERACT", str(script))
    return install


def text_pdf(*pages: str) -> bytes:
    """Return a PDF with a text layer, one page per string, set in the CJK font."""
    path, index = cjk_font()
    pdf = FPDF()
    pdf.add_font("cjk", fname=path, collection_font_number=index)
    for text in pages:
        pdf.add_page()
        pdf.set_font("cjk", size=16)
        pdf.multi_cell(0, 10, text)
    return bytes(pdf.output())


def text_image(text: str = OCR_PHRASE, size: tuple[int, int] = (640, 160)) -> Image.Image:
    """Return a white image with text in black in the CJK font, as a 200 dpi scan shows a 17 pt heading."""
    path, index = cjk_font()
    image = Image.new("L", size, 255)
    # Tesseract misreads much taller glyphs: at 96 px it read this phrase as Latin letters.
    ImageDraw.Draw(image).text((40, 40), text, font=ImageFont.truetype(str(path), 48, index=index), fill=0)
    return image


def encoded(image: Image.Image, image_format: str, **options) -> bytes:
    output = io.BytesIO()
    image.save(output, format=image_format, **options)
    return output.getvalue()


def docx_bytes(document) -> bytes:
    output = io.BytesIO()
    document.save(output)
    return output.getvalue()


def test_text_pdf_gives_its_chinese_text():
    result = extract_text(text_pdf(CERTIFICATE), PDF)

    assert result == ExtractionResult(result.text, "pdf-text", None)
    for word in ("会计专业技术资格证书", "初级", "张伟"):
        assert word in result.text


def test_every_page_of_a_text_pdf_is_read():
    result = extract_text(text_pdf("第一页：辽宁省财政厅会计人员信息采集", "第二页：朝阳市恒信商贸有限公司出纳"), PDF)

    assert "辽宁省财政厅" in result.text
    assert "朝阳市恒信商贸有限公司" in result.text
    assert result.method == "pdf-text"


def test_pages_past_the_page_cap_are_not_read(monkeypatch):
    monkeypatch.setattr(extraction, "MAX_PDF_PAGES", 2)

    result = extract_text(text_pdf("甲页会计人员信息采集表", "乙页会计人员信息采集表", "丙页会计人员信息采集表"), PDF)

    assert "甲页" in result.text and "乙页" in result.text
    assert "丙页" not in result.text


def test_text_is_cut_at_the_character_cap(monkeypatch):
    monkeypatch.setattr(extraction, "MAX_TEXT_CHARACTERS", 8)

    result = extract_text(text_pdf(CERTIFICATE, CERTIFICATE), PDF)

    assert result.text == "会计专业技术资格"


def test_pdf_with_only_an_owner_password_is_read():
    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(text_pdf(CERTIFICATE))))
    # Copy and print restrictions, as on many official downloads: anyone may open it.
    writer.encrypt(user_password="", owner_password="owner-secret", algorithm="AES-256")
    output = io.BytesIO()
    writer.write(output)

    result = extract_text(output.getvalue(), PDF)

    assert "会计专业技术资格证书" in result.text
    assert result.error is None


def test_pdf_that_needs_a_password_gives_an_error():
    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(text_pdf(CERTIFICATE))))
    writer.encrypt(user_password="user-secret", algorithm="AES-128")
    output = io.BytesIO()
    writer.write(output)

    assert extract_text(output.getvalue(), PDF) == ExtractionResult("", "none", extraction.PDF_ENCRYPTED)


def test_docx_gives_paragraphs_and_tables_in_order_with_whitespace_normalised():
    document = docx.Document()
    document.add_paragraph("辽宁省会计人员信息采集表")
    document.add_paragraph("")
    document.add_paragraph("")
    table = document.add_table(rows=2, cols=3)
    table.cell(0, 0).text = "姓名"
    table.cell(0, 1).text = "张　伟"  # an ideographic space pads a two-character name, as forms do
    table.cell(0, 2).text = "初级"
    merged = table.cell(1, 0).merge(table.cell(1, 2))
    merged.text = "朝阳市恒信商贸有限公司\t\t出纳"
    document.add_paragraph("本人承诺以上信息真实、准确、完整。")

    result = extract_text(docx_bytes(document), DOCX)

    assert result == ExtractionResult(
        "辽宁省会计人员信息采集表\n\n姓名 张 伟 初级\n朝阳市恒信商贸有限公司 出纳\n本人承诺以上信息真实、准确、完整。", "docx", None
    )


def test_docx_that_unpacks_past_the_cap_is_not_read(monkeypatch):
    document = docx.Document()
    document.add_paragraph(CERTIFICATE)
    monkeypatch.setattr(extraction, "MAX_DOCX_UNPACKED_BYTES", 1000)

    result = extract_text(docx_bytes(document), DOCX)

    assert result.text == "" and result.method == "none"
    assert "过大" in result.error


def test_png_is_read_by_ocr(tesseract):
    result = extract_text(encoded(text_image(), "PNG"), "image/png")

    assert result.method == "ocr"
    assert result.error is None
    assert OCR_PHRASE in result.text


def test_sideways_jpeg_from_a_camera_is_turned_upright_before_ocr(tesseract):
    exif = Image.Exif()
    exif[0x0112] = 8  # the camera was turned: rotate 90° clockwise to show it upright
    sideways = text_image().rotate(-90, expand=True)

    result = extract_text(encoded(sideways, "JPEG", quality=95, exif=exif), "image/jpeg")

    assert OCR_PHRASE in result.text


def test_scanned_pdf_is_read_by_ocr(tesseract):
    scan = encoded(text_image(size=(1654, 600)).convert("RGB"), "PDF", resolution=200)

    result = extract_text(scan, PDF)

    assert result.method == "ocr"
    assert result.error is None
    assert OCR_PHRASE in result.text


def test_pdf_with_a_text_page_and_a_scanned_page_reads_both(tesseract):
    path, index = cjk_font()
    pdf = FPDF()
    pdf.add_font("cjk", fname=path, collection_font_number=index)
    pdf.add_page()
    pdf.set_font("cjk", size=16)
    pdf.multi_cell(0, 10, "第一页：辽宁省财政厅会计人员信息采集")
    pdf.add_page()
    scan = text_image()
    pdf.image(io.BytesIO(encoded(scan, "PNG")), x=10, y=10, w=scan.width / 200 * 25.4)  # as scanned at 200 dpi

    result = extract_text(bytes(pdf.output()), PDF)

    assert result.method == "pdf-text+ocr"
    assert "辽宁省财政厅" in result.text
    assert OCR_PHRASE in result.text


def test_ocr_drops_the_spaces_it_puts_between_chinese_characters(fake_tesseract):
    fake_tesseract("printf '会 计 专 业 ， 初 级\\n\\n\\n\\nKJ 2019  Z2019210000123\\f'")

    result = extract_text(sample_png(), "image/png")

    assert result == ExtractionResult("会计专业，初级\n\nKJ 2019 Z2019210000123", "ocr", None)


@pytest.mark.parametrize("media_type", ["image/png", PDF])
def test_without_tesseract_ocr_is_reported_unavailable(monkeypatch, media_type):
    monkeypatch.setattr(extraction, "TESSERACT", "kjdms-no-such-tesseract")
    scan = encoded(text_image().convert("RGB"), "PDF") if media_type == PDF else encoded(text_image(), "PNG")

    assert extract_text(scan, media_type) == ExtractionResult("", "none", "OCR 不可用：未安装 tesseract")


def test_without_the_chinese_language_data_ocr_is_reported_unavailable(fake_tesseract):
    fake_tesseract("echo \"Failed loading language 'chi_sim'\" >&2; exit 1")

    result = extract_text(sample_png(), "image/png")

    assert result == ExtractionResult("", "none", extraction.OCR_LANGUAGE_MISSING)


def test_ocr_that_runs_past_the_timeout_is_stopped(fake_tesseract):
    fake_tesseract("sleep 30")
    started = time.monotonic()

    result = extract_text(sample_png(), "image/png", timeout=0.5)

    assert time.monotonic() - started < 10
    assert result == ExtractionResult("", "none", "提取文字超时（超过0.5秒）")


@pytest.mark.parametrize("renderer, error", [
    ("import os, signal; os.kill(os.getpid(), signal.SIGSEGV)", "PDF页面无法渲染，未能识别文字"),
    ("import time; time.sleep(30)", "提取文字超时（超过1秒）"),
])
def test_a_scan_whose_page_rendering_crashes_or_hangs_is_reported_and_the_caller_lives_on(
        monkeypatch, fake_tesseract, renderer, error):
    # PDFium renders in a child process (kjdms.documents.pdf_render): what a hostile page does to it stays there.
    monkeypatch.setattr(imaging, "_render_command", lambda arguments: [sys.executable, "-c", renderer])
    scan = encoded(text_image().convert("RGB"), "PDF")
    started = time.monotonic()

    result = extract_text(scan, PDF, timeout=1)

    assert time.monotonic() - started < 10
    assert result == ExtractionResult("", "none", error)


def test_ocr_can_be_switched_off(fake_tesseract):
    fake_tesseract("echo should not run; exit 1")

    assert extract_text(sample_png(), "image/png", ocr=False) == ExtractionResult("", "none", extraction.OCR_OFF)


def test_image_above_the_pixel_cap_is_not_read(monkeypatch, fake_tesseract):
    fake_tesseract("echo should not run; exit 1")
    monkeypatch.setattr(extraction, "MAX_IMAGE_PIXELS", 1000)

    result = extract_text(sample_png(64, 64), "image/png")

    assert result.text == "" and "过大" in result.error


@pytest.mark.parametrize("media_type", [PDF, DOCX, "image/png", "image/jpeg"])
@pytest.mark.parametrize("data", [b"", b"%PDF-1.7\n1 0 obj << /Type /Catalog /Pages 9 0 R >>\ngarbage\x00\xff" * 50,
                                  b"PK\x03\x04" + bytes(range(256)) * 4])
def test_corrupt_file_gives_an_error_not_an_exception(media_type, data):
    result = extract_text(data, media_type)

    assert result.text == ""
    assert result.method == "none"
    assert result.error


def test_pdf_without_pages_gives_an_error():
    output = io.BytesIO()
    PdfWriter().write(output)

    assert extract_text(output.getvalue(), PDF) == ExtractionResult("", "none", "PDF没有页面，无法提取文字")


def test_truncated_pdf_gives_no_exception():
    whole = text_pdf(CERTIFICATE, "第二页")

    result = extract_text(whole[: len(whole) // 2], PDF, ocr=False)

    assert isinstance(result, ExtractionResult)
    assert result.text or result.error


def test_unsupported_media_type_gives_an_error():
    result = extract_text(b"plain words", "text/plain")

    assert result == ExtractionResult("", "none", "不支持从此类文件提取文字（text/plain）")
