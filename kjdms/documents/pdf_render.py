"""Render PDF pages with PDFium in a child process, one fresh process per render (kjdms.documents.images asks).

`pdf_render.py preview WIDTH`: the first page as a PNG, WIDTH pixels wide.
`pdf_render.py ocr DPI MAX_PIXELS 0,3,4`: those pages in grey for OCR, as FRAME-headed PNGs.
`pdf_render.py zygote`: wait on stdin (a socket) for requests and fork one child per request (serve()).

Standalone on purpose: it imports pypdfium2 and Pillow only, never the kjdms package, so it starts
quickly. In the one-shot modes the PDF arrives on stdin and the result leaves on stdout; a PDF that
cannot be rendered exits with REFUSED and the reason (Chinese, UTF-8) on stderr. The server imports
this module for its constants only: pypdfium2 is imported inside the functions that render (and by
serve() in the zygote), so PDFium is never loaded into the server process.
"""
from __future__ import annotations

import io
import json
import math
import os
import resource
import signal
import socket
import struct
import sys
import traceback

REFUSED = 3
# How a zygote's child answers on its channel: STARTED (its process id) as soon as it runs, and after the PDF
# RESPONSE (status, length), then length bytes: the result when the status is OK, the reason (UTF-8) when
# REFUSED, a traceback's end when FAILED. Fewer bytes: it crashed.
OK, FAILED = 0, 1
STARTED = struct.Struct(">I")
RESPONSE = struct.Struct(">BQ")
# Before each page of the ocr mode's output: its index and the PNG's length.
FRAME = struct.Struct(">II")
# A page taller than this many widths (a hostile 1 × 10000 pt page) is shrunk to fit, not rendered huge.
MAX_PREVIEW_ASPECT = 3
# Address space for the child: the interpreter and PDFium need ~200 MB, a 3000 × 9000 bitmap ~100 MB.
MEMORY_LIMIT = 1024 * 1024 * 1024


class Unrenderable(ValueError):
    """The PDF's first page cannot be rendered: encrypted, corrupt or empty; the message says which."""


def first_page_png(data: bytes, width: int) -> bytes:
    """Return the first page of the PDF in data as a PNG width pixels wide."""
    import pypdfium2

    try:
        document = pypdfium2.PdfDocument(data)
    except pypdfium2.PdfiumError as error:
        raise Unrenderable(_refusal(error)) from error
    try:
        if len(document) == 0:
            raise Unrenderable("文件：PDF没有页面，无法预览")
        page = document[0]
        try:
            image = _render_page(page, width)
        finally:
            page.close()
    except pypdfium2.PdfiumError as error:
        raise Unrenderable("文件：PDF已损坏，无法预览") from error
    finally:
        document.close()
    output = io.BytesIO()
    image.save(output, format="PNG")
    return output.getvalue()


def _render_page(page, width: int):
    """Render at a fixed width, never taller than MAX_PREVIEW_ASPECT widths, so memory stays bounded."""
    page_width, page_height = page.get_size()
    if page_width <= 0 or page_height <= 0:
        raise Unrenderable("文件：PDF页面尺寸无效，无法预览")
    scale = min(width / page_width, width * MAX_PREVIEW_ASPECT / page_height)
    bitmap = page.render(scale=scale, fill_color=(255, 255, 255, 255))
    try:
        image = bitmap.to_pil().convert("RGB")  # a copy: the bitmap's buffer is freed below
    finally:
        bitmap.close()
    # pdfium rounds the size up, so a float error in the scale can add a column or row.
    return image.crop((0, 0, min(image.width, width), min(image.height, width * MAX_PREVIEW_ASPECT)))


def _refusal(error) -> str:
    # An owner password alone (print or copy restrictions) opens without a password, as many
    # official downloads do; only a PDF that needs a password to be read at all is refused.
    if "password" in str(error).lower():
        return "文件：PDF已加密，无法预览，请上传未加密的PDF"
    return "文件：PDF已损坏或不是有效的PDF，无法预览"


def ocr_pages_png(data: bytes, indexes: list[int], dpi: int, max_pixels: int) -> bytes:
    """Return the pages at indexes rendered in grey at dpi (smaller where a page passes max_pixels), framed."""
    import pypdfium2

    try:
        document = pypdfium2.PdfDocument(data)
    except pypdfium2.PdfiumError as error:
        raise Unrenderable(_refusal(error)) from error
    output = io.BytesIO()
    try:
        for index in indexes:
            if not 0 <= index < len(document):
                continue
            page = document[index]
            try:
                width, height = page.get_size()
                if width <= 0 or height <= 0:
                    continue
                scale = min(dpi / 72, math.sqrt(max_pixels / (width * height)))
                bitmap = page.render(scale=scale, grayscale=True, fill_color=(255, 255, 255, 255))
                try:
                    image = bitmap.to_pil().convert("L")  # a copy: the bitmap's buffer is freed below
                finally:
                    bitmap.close()
            finally:
                page.close()
            png = io.BytesIO()
            image.save(png, format="PNG")
            output.write(FRAME.pack(index, png.tell()) + png.getvalue())
    except pypdfium2.PdfiumError as error:
        raise Unrenderable("文件：PDF已损坏，无法渲染页面") from error
    finally:
        document.close()
    return output.getvalue()


def render(mode: str, arguments: list[str], data: bytes) -> tuple[int, bytes]:
    """Render what mode and arguments ask for (see the module's docstring); return OK or REFUSED and the bytes."""
    try:
        if mode == "preview":
            return OK, first_page_png(data, int(arguments[0]))
        dpi, max_pixels, indexes = arguments
        return OK, ocr_pages_png(data, [int(index) for index in indexes.split(",")], int(dpi), int(max_pixels))
    except Unrenderable as refusal:
        return REFUSED, str(refusal).encode("utf-8")


def serve(control: socket.socket) -> int:
    """Fork a child for each request on control until the server closes it; return 0 then."""
    # Imported once here and inherited by every child: the cost a render no longer pays. The zygote itself
    # never sees a PDF, so nothing a hostile file does can reach it or the renders after it.
    import pypdfium2  # noqa: F401
    from PIL import Image

    Image.preinit()
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # the kernel reaps finished children; no zombies pile up
    while True:
        request, descriptors, _, _ = socket.recv_fds(control, 4096, 1)
        if not request:
            return 0  # the server closed its end, exited or died
        if not descriptors:
            continue
        try:
            child = os.fork()
        except OSError:  # out of processes or memory: this render fails (its channel closes), the zygote lives on
            os.close(descriptors[0])
            continue
        if child == 0:
            code = 1
            try:
                control.close()
                code = _serve_one(json.loads(request), descriptors[0])
            finally:
                os._exit(code)  # whatever happened, the child never returns into the zygote's loop
        os.close(descriptors[0])


def _serve_one(request: dict, descriptor: int) -> int:
    """In a fresh child: limit time and memory, read the PDF from the channel, answer on it, return the exit code."""
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    # The kernel ends the child at the deadline even inside PDFium's C code: SIGALRM's default action.
    signal.signal(signal.SIGALRM, signal.SIG_DFL)
    signal.setitimer(signal.ITIMER_REAL, max(request["timeout"], 0.001))
    _limit_memory()
    with socket.socket(fileno=descriptor) as channel:
        channel.sendall(STARTED.pack(os.getpid()))
        data = _read_to_end(channel)
        try:
            status, result = render(request["mode"], request["arguments"], data)
        except Exception:  # anything else PDFium or Pillow raise: the server logs it and refuses the preview
            status, result = FAILED, traceback.format_exc()[-2000:].encode("utf-8")
        channel.sendall(RESPONSE.pack(status, len(result)) + result)
    return 0


def _read_to_end(channel: socket.socket) -> bytes:
    chunks = []
    while chunk := channel.recv(1 << 20):
        chunks.append(chunk)
    return b"".join(chunks)


def _limit_memory() -> None:
    # The soft limit only, and never above a hard limit already set: raising that is refused.
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    soft = MEMORY_LIMIT if hard == resource.RLIM_INFINITY else min(MEMORY_LIMIT, hard)
    resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def main() -> int:
    """Render once from stdin to stdout, or serve as the zygote (see the module's docstring)."""
    mode, *arguments = sys.argv[1:]
    if mode == "zygote":
        return serve(socket.socket(fileno=sys.stdin.fileno()))
    _limit_memory()
    status, result = render(mode, arguments, sys.stdin.buffer.read())
    if status == REFUSED:
        sys.stderr.buffer.write(result)
        return REFUSED
    sys.stdout.buffer.write(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
