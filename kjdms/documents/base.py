"""The CJK font and the A4 base document every PDF of kjdms is set in (fpdf2, font embedded and subset)."""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from fontTools.ttLib import TTFont
from fpdf import FPDF

from .fonts import add_parsed_font

FONT_PACKAGE = "fonts-wqy-microhei"
# (file, face index inside a .ttc collection), best first. WenQuanYi Micro Hei covers Latin digits
# as well as Han; Droid Sans Fallback does not (ID numbers would print as blanks), so it is not here.
FONT_CANDIDATES = (
    (Path("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc"), 0),
    (Path("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc"), 2),  # face 2 is Noto Sans CJK SC
)
# Fallbacks for the ideographs WenQuanYi lacks (extensions A-I, compatibility supplement), tried in
# order for each missing character. Hanazono has nearly all of A-F in two files (one TrueType file holds
# at most 65,535 glyphs); BabelStone Han adds part of G and H. fonts-hanazono and fonts-babelstone-han.
FALLBACK_PACKAGES = ("fonts-hanazono", "fonts-babelstone-han")
FALLBACK_FONTS = (
    Path("/usr/share/fonts/truetype/hanazono/HanaMinA.ttf"),
    Path("/usr/share/fonts/truetype/hanazono/HanaMinB.ttf"),
    Path("/usr/share/fonts/truetype/babelstone/BabelStoneHan.ttf"),
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


def fallback_fonts() -> list[Path]:
    """Return the installed fallback fonts, in the order they are tried."""
    return [path for path in FALLBACK_FONTS if path.is_file()]


@lru_cache(maxsize=None)
def _characters(path: Path, index: int) -> frozenset[int]:
    """Return the code points a font file has glyphs for (read once per process)."""
    font = TTFont(path, fontNumber=index, lazy=True)
    try:
        return frozenset(font.getBestCmap())
    finally:
        font.close()


def unprintable(text: str) -> list[str]:
    """Return the characters of text that neither the CJK font nor any fallback can print, once each."""
    fonts = [cjk_font(), *((path, 0) for path in fallback_fonts())]
    missing = []
    for char in dict.fromkeys(text):
        if not char.isspace() and not any(ord(char) in _characters(*font) for font in fonts):
            missing.append(char)
    return missing


class CJKDocument(FPDF):
    """A4 pages set in the embedded CJK font, each with a footer line (and its page number if asked)."""

    def __init__(self, footer: str, *, margin: float = _MARGIN, page_numbers: bool = False):
        super().__init__(orientation="portrait", unit="mm", format="A4")
        self.footer_text, self.page_numbers = footer, page_numbers
        path, index = cjk_font()
        # Embedded and subset, so every printer prints the glyphs shown, whatever fonts it has.
        add_parsed_font(self, FONT, path, index)
        self._main_font, self._fallbacks = (path, index), []
        self.set_margins(margin, margin, margin)
        self.set_auto_page_break(True, margin=20)

    def normalize_text(self, text: str) -> str:
        """Add the fallback fonts text needs, then normalise it as fpdf2 does."""
        self._cover(text)
        return super().normalize_text(text)

    def _cover(self, text: str) -> None:
        # Loading a fallback costs about a second (they are large), so only a text that needs one does.
        main = _characters(*self._main_font)
        for char in dict.fromkeys(text):
            if ord(char) in main or char.isspace():
                continue
            for number, path in enumerate(fallback_fonts()):
                family = f"{FONT}-fallback-{number}"
                if ord(char) in _characters(path, 0):
                    if family not in self._fallbacks:
                        add_parsed_font(self, family, path)
                        self._fallbacks.append(family)
                        # Only the characters the main font lacks are taken from these.
                        self.set_fallback_fonts(self._fallbacks, exact_match=False)
                    break

    def footer(self):
        self.set_y(-14)
        self.set_font(FONT, size=8)
        self.set_text_color(90)
        text = f"{self.footer_text}　第 {self.page_no()} 页" if self.page_numbers else self.footer_text
        self.cell(0, 5, text, align="C")
        self.set_text_color(0)
