"""The CJK font and the A4 base document every PDF of kjdms is set in (fpdf2, font embedded and subset)."""
from __future__ import annotations

from pathlib import Path

from fpdf import FPDF

FONT_PACKAGE = "fonts-wqy-microhei"
# (file, face index inside a .ttc collection), best first. WenQuanYi Micro Hei covers Latin digits
# as well as Han; Droid Sans Fallback does not (ID numbers would print as blanks), so it is not here.
FONT_CANDIDATES = (
    (Path("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc"), 0),
    (Path("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc"), 2),  # face 2 is Noto Sans CJK SC
)
FONT = "cjk"  # the family name documents set their text in
_MARGIN = 15


def cjk_font() -> tuple[Path, int]:
    """Return the first installed CJK font and its face index, or raise RuntimeError naming the package."""
    for path, index in FONT_CANDIDATES:
        if path.is_file():
            return path, index
    raise RuntimeError(
        f"No CJK font for the basic-information form: install the Debian package {FONT_PACKAGE} "
        f"(apt-get install -y {FONT_PACKAGE}); looked for {', '.join(str(p) for p, _ in FONT_CANDIDATES)}"
    )


class CJKDocument(FPDF):
    """A4 pages set in the embedded CJK font, each with a footer line (and its page number if asked)."""

    def __init__(self, footer: str, *, margin: float = _MARGIN, page_numbers: bool = False):
        super().__init__(orientation="portrait", unit="mm", format="A4")
        self.footer_text, self.page_numbers = footer, page_numbers
        path, index = cjk_font()
        # Embedded and subset, so every printer prints the glyphs shown, whatever fonts it has.
        self.add_font(FONT, fname=path, collection_font_number=index)
        self.set_margins(margin, margin, margin)
        self.set_auto_page_break(True, margin=20)

    def footer(self):
        self.set_y(-14)
        self.set_font(FONT, size=8)
        self.set_text_color(90)
        text = f"{self.footer_text}　第 {self.page_no()} 页" if self.page_numbers else self.footer_text
        self.cell(0, 5, text, align="C")
        self.set_text_color(0)
