"""Extract the searchable text of an attachment: a PDF's text layer, a .docx, or OCR of images and scans."""
from __future__ import annotations

import io
import logging
import math
import os
import re
import shutil
import subprocess
import time
import zipfile
from dataclasses import dataclass

import docx
import pypdf
from docx.table import Table
from PIL import Image, ImageOps

from ..display import visible_length
from .images import PreviewUnavailable, RenderTimedOut, pdf_pages_for_ocr

log = logging.getLogger(__name__)

PDF = "application/pdf"
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
IMAGE_FORMATS = {"image/jpeg": "JPEG", "image/png": "PNG"}

TESSERACT = "tesseract"
OCR_LANGUAGES = "chi_sim+eng"
OCR_DPI = 200
# OCR costs seconds a page (see the tests' timing), so a long scan is read only this far.
MAX_OCR_PAGES = 5
# A page with fewer non-blank characters than this (a page number, a scanner's stamp) is a scan.
MIN_PAGE_CHARACTERS = 10
# Caps that keep a hostile or huge file from taking unbounded memory or time.
MAX_PDF_PAGES = 300
MAX_TEXT_CHARACTERS = 500_000
MAX_IMAGE_PIXELS = 40_000_000  # as images.reencode_image: nothing larger is kept anyway
MAX_OCR_PIXELS = 12_000_000  # A4 at 300 dpi is 8.7 million; more costs time and finds nothing new
MAX_DOCX_UNPACKED_BYTES = 100 * 1024 * 1024

# Tesseract's OpenMP threads spin against each other: one thread read an A4 page in 2.5 s here, the default 5.3 s.
_TESSERACT_THREADS = {"OMP_THREAD_LIMIT": "1"}

OCR_MISSING = "OCR 不可用：未安装 tesseract"
OCR_LANGUAGE_MISSING = "OCR 不可用：未安装 tesseract 中文语言包（tesseract-ocr-chi-sim）"
OCR_OFF = "未进行文字识别（OCR 已关闭）"
PDF_UNREADABLE = "PDF已损坏或不是有效的PDF，无法提取文字"
PDF_ENCRYPTED = "PDF已加密，无法提取文字"
DOCX_UNREADABLE = "Word文档已损坏或不是有效的.docx文件，无法提取文字"


@dataclass(frozen=True)
class ExtractionResult:
    """The text found in a file, how it was found, and why not all of it was, if so."""

    text: str
    method: str  # "pdf-text", "pdf-text+ocr", "docx", "ocr" or "none"
    error: str | None = None


def ocr_problem() -> str | None:
    """Return why OCR cannot run here (no tesseract, no Chinese language pack), or None when it can."""
    command = shutil.which(TESSERACT)
    if command is None:
        return OCR_MISSING
    try:
        listed = subprocess.run([command, "--list-langs"], capture_output=True, timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired):
        return OCR_MISSING
    return None if b"chi_sim" in listed.split() else OCR_LANGUAGE_MISSING


def extract_text(data: bytes, media_type: str, *, ocr: bool = True, timeout: float = 60) -> ExtractionResult:
    """Return the text of data, a file of media_type, from its text layer or else by OCR; never raise."""
    # One budget for the whole call, so a many-page scan cannot take timeout seconds per page.
    deadline = _Deadline(time.monotonic() + timeout, timeout)
    kind = media_type.split(";")[0].strip().lower()
    try:
        if kind == PDF:
            return _from_pdf(data, ocr, deadline)
        if kind == DOCX:
            return _from_docx(data)
        if kind in IMAGE_FORMATS:
            return _from_image(data, IMAGE_FORMATS[kind], ocr, deadline)
    except Exception:
        # Parsers raise all kinds of errors on hostile input; a failed extraction must never fail its caller.
        log.exception("text extraction failed for a %s of %d bytes", kind, len(data))
        return ExtractionResult("", "none", "提取文字失败：文件无法读取")
    return ExtractionResult("", "none", f"不支持从此类文件提取文字（{media_type}）")


@dataclass(frozen=True)
class _Deadline:
    at: float
    seconds: float

    def remaining(self) -> float:
        return self.at - time.monotonic()

    def message(self) -> str:
        return f"提取文字超时（超过{self.seconds:g}秒）"


class _OcrFailure(Exception):
    """OCR could not run or did not finish; the message is for the user."""


def _from_pdf(data: bytes, ocr: bool, deadline: _Deadline) -> ExtractionResult:
    try:
        reader = pypdf.PdfReader(io.BytesIO(data))
        # An owner password alone (copy or print restrictions) opens with the empty user password.
        if reader.is_encrypted and not reader.decrypt(""):
            return ExtractionResult("", "none", PDF_ENCRYPTED)
        page_count = len(reader.pages)
    except Exception:
        return ExtractionResult("", "none", PDF_UNREADABLE)
    if page_count == 0:
        return ExtractionResult("", "none", "PDF没有页面，无法提取文字")

    texts: list[str] = []
    problems: list[str] = []
    failed: list[int] = []
    length = 0
    for index in range(min(page_count, MAX_PDF_PAGES)):
        if deadline.remaining() <= 0:
            problems.append(deadline.message())
            break
        try:
            text = _normalise(reader.pages[index].extract_text())
        except Exception:
            failed.append(index)
            text = ""
        texts.append(text)
        length += len(text)
        if length >= MAX_TEXT_CHARACTERS:
            break
    if failed and len(failed) == len(texts):
        return ExtractionResult("", "none", PDF_UNREADABLE)
    if failed:
        problems.append(f"PDF第{'、'.join(str(index + 1) for index in failed)}页无法提取文字")

    scanned = [index for index, page_text in enumerate(texts) if visible_length(page_text) < MIN_PAGE_CHARACTERS]
    method = "pdf-text"
    if scanned and not ocr:
        problems.append(OCR_OFF)
    elif scanned:
        recognised, problem = _ocr_pdf_pages(data, scanned[:MAX_OCR_PAGES], deadline)
        if problem:
            problems.append(problem)
        for index, page_text in recognised.items():
            if page_text:
                texts[index] = page_text
        if any(recognised.values()):
            method = "ocr" if len(scanned) == len(texts) else "pdf-text+ocr"
    text = _cap("\n\n".join(page_text for page_text in texts if page_text))
    if not text and method == "pdf-text" and problems:
        method = "none"
    return ExtractionResult(text, method, "；".join(problems) or None)


def _ocr_pdf_pages(data: bytes, indexes: list[int], deadline: _Deadline) -> tuple[dict[int, str], str | None]:
    """OCR the pages at indexes; return the text of those read, and why any were not."""
    if shutil.which(TESSERACT) is None:
        return {}, OCR_MISSING
    try:
        images = pdf_pages_for_ocr(data, indexes, dpi=OCR_DPI, max_pixels=MAX_OCR_PIXELS, timeout=deadline.remaining())
    except RenderTimedOut:
        return {}, deadline.message()
    except PreviewUnavailable:
        return {}, "PDF页面无法渲染，未能识别文字"
    recognised: dict[int, str] = {}
    for index, image in images.items():
        try:
            recognised[index] = _ocr(image, deadline, dpi=OCR_DPI)
        except _OcrFailure as failure:
            return recognised, str(failure)
    return recognised, None


def _from_docx(data: bytes) -> ExtractionResult:
    try:
        # The sizes a zip declares bound what zipfile will unpack, so checking them defuses a zip bomb.
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            unpacked = sum(member.file_size for member in archive.infolist())
        if unpacked > MAX_DOCX_UNPACKED_BYTES:
            return ExtractionResult(
                "", "none", f"Word文档解压后过大（超过{MAX_DOCX_UNPACKED_BYTES // (1024 * 1024)}MB），未提取文字"
            )
        document = docx.Document(io.BytesIO(data))
        lines = list(_docx_lines(document))
    except Exception:
        return ExtractionResult("", "none", DOCX_UNREADABLE)
    return ExtractionResult(_cap(_normalise("\n".join(lines))), "docx")


def _docx_lines(container):
    """Yield the text of container's paragraphs and table rows in document order, nested tables included."""
    for block in container.iter_inner_content():
        if isinstance(block, Table):
            for row in block.rows:
                seen = set()
                cells = []
                for cell in row.cells:
                    # A merged cell is returned once for every grid column it spans.
                    if id(cell._tc) in seen:
                        continue
                    seen.add(id(cell._tc))
                    cells.append(" ".join(_docx_lines(cell)))
                yield " ".join(cells)
        else:
            yield block.text


def _from_image(data: bytes, image_format: str, ocr: bool, deadline: _Deadline) -> ExtractionResult:
    if not ocr:
        return ExtractionResult("", "none", OCR_OFF)
    try:
        image = Image.open(io.BytesIO(data), formats=[image_format])
        width, height = image.size
        if width * height > MAX_IMAGE_PIXELS:
            return ExtractionResult("", "none", f"图片尺寸过大（{width}×{height}像素），未识别文字")
        # Tesseract ignores the EXIF orientation a phone camera writes; sideways text reads as noise.
        image = ImageOps.exif_transpose(image).convert("L")
    except Exception:
        return ExtractionResult("", "none", f"图片已损坏或不是有效的{image_format}图片，无法识别文字")
    if width * height > MAX_OCR_PIXELS:
        shrink = math.sqrt(MAX_OCR_PIXELS / (width * height))
        image = image.resize((max(1, int(image.width * shrink)), max(1, int(image.height * shrink))))
    try:
        return ExtractionResult(_cap(_ocr(image, deadline)), "ocr")
    except _OcrFailure as failure:
        return ExtractionResult("", "none", str(failure))


def _ocr(image: Image.Image, deadline: _Deadline, *, dpi: int | None = None) -> str:
    """Return the text tesseract reads in image, or raise _OcrFailure."""
    command = shutil.which(TESSERACT)
    if command is None:
        raise _OcrFailure(OCR_MISSING)
    remaining = deadline.remaining()
    if remaining <= 0:
        raise _OcrFailure(deadline.message())
    encoded = io.BytesIO()
    image.save(encoded, format="PNG", compress_level=1)  # tesseract decodes it at once: speed over size
    arguments = [command, "-", "-", "-l", OCR_LANGUAGES]
    if dpi:
        arguments += ["--dpi", str(dpi)]  # known for a rendered page; tesseract's guess is worse
    try:
        completed = subprocess.run(
            arguments, input=encoded.getvalue(), capture_output=True, timeout=remaining,
            env={**os.environ, **_TESSERACT_THREADS},
        )
    except subprocess.TimeoutExpired:
        raise _OcrFailure(deadline.message()) from None
    except OSError as error:
        raise _OcrFailure(f"文字识别失败：无法运行 tesseract（{error.strerror}）") from None
    if completed.returncode != 0:
        stderr = completed.stderr.decode("utf-8", "replace")
        if "Failed loading language" in stderr:
            raise _OcrFailure(OCR_LANGUAGE_MISSING)
        last_line = stderr.strip().splitlines()[-1] if stderr.strip() else f"退出码 {completed.returncode}"
        raise _OcrFailure(f"文字识别失败：{last_line}")
    return _join_han(_normalise(completed.stdout.decode("utf-8", "replace")))


# Characters that end or break a line: \f is what tesseract writes after each page.
_LINE_BREAKS = re.compile(r"\r\n|[\r\n\v\f\x1c-\x1e\x85\u2028\u2029]")
# Controls and zero-width characters carry nothing a reader or the index could use.
_INVISIBLE = re.compile(r"[\x00-\x08\x0e-\x1b\x7f\u200b-\u200d\u2060\ufeff]")
_SPACES = re.compile(r"[^\S\n]+")  # every other kind of space, the ideographic space among them
_BLANK_LINES = re.compile(r"\n{3,}")
# Han, kana, bopomofo, CJK punctuation and full-width forms, and the middle dot of names like 阿依·买买提.
_CJK = (
    "\u00b7\u2e80-\u2fdf\u3000-\u30ff\u3100-\u312f\u31a0-\u31ff\u3400-\u4dbf\u4e00-\u9fff"
    "\uf900-\ufaff\ufe30-\ufe4f\uff00-\uffef"
)
_SPACE_BETWEEN_CJK = re.compile(f"(?<=[{_CJK}]) (?=[{_CJK}])")


def _normalise(text: str | None) -> str:
    """Return text with one kind of line break, single spaces, no blank runs and no invisible characters."""
    if not text:
        return ""
    text = _LINE_BREAKS.sub("\n", text)
    text = _INVISIBLE.sub("", text)
    text = _SPACES.sub(" ", text)
    text = "\n".join(line.strip() for line in text.split("\n"))
    return _BLANK_LINES.sub("\n\n", text).strip()


def _join_han(text: str) -> str:
    """Drop the spaces OCR puts between Chinese characters (会 计 专 业 → 会计专业)."""
    return _SPACE_BETWEEN_CJK.sub("", text)


def _cap(text: str) -> str:
    return text[:MAX_TEXT_CHARACTERS]
