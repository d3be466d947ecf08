"""Fonts parsed once per process and handed to each new PDF, so a document no longer reparses a large TTC."""
from __future__ import annotations

import threading
from functools import lru_cache
from pathlib import Path

from fontTools.ttLib import TTFont
from fpdf import FPDF
from fpdf.fonts import SubsetMap, TTFFont

# What fpdf2's TTFFont holds, by how a document may use it. fpdf2 itself shares the immutable part between
# copies (TTFFont.__deepcopy__, for its FPDFRecorder); the test that pins this list fails when fpdf2 changes it.
SHARED = ("type", "name", "desc", "glyph_ids", "sp", "ss", "up", "ut", "ttffile", "emphasis", "scale", "cmap",
          "color_font", "palette_index", "is_compressed", "is_cff", "is_cid_keyed", "is_symbol",
          "cff_ros", "collection_font_number")
PER_DOCUMENT = ("i", "fontkey", "cw", "ttfont", "subset", "missing_glyphs", "biggest_size_pt", "_hbfont")
UNUSED = ("unicode_range",)  # a slot fpdf2 2.8.9 declares and never sets

_PARSING = threading.Lock()  # two request threads asking at once parse the file once, not twice


def add_parsed_font(pdf: FPDF, family: str, path: Path, index: int = 0) -> None:
    """Make the font at path (face index of a collection) available to pdf as family, as add_font would."""
    fontkey = family.lower()
    if fontkey in pdf.fonts:
        return
    font = pdf.fonts[fontkey] = _document_font(_parsed(path, index), pdf, fontkey)
    if font.is_cff and font.is_cid_keyed:
        pdf._set_min_pdf_version("1.6")  # as add_font does, for a CFF collection such as Noto Sans CJK


def _parsed(path: Path, index: int) -> TTFFont:
    """Return the font parsed by fpdf2 once per process: cmap, glyph ids and widths, descriptor."""
    with _PARSING:
        return _parse(path, index)


@lru_cache(maxsize=None)
def _parse(path: Path, index: int) -> TTFFont:
    font = TTFFont(FPDF(), path, "parsed", "", collection_font_number=index)
    # The shared part is only read from now on. The tables fpdf2 loaded (tens of MB for the fallbacks) are
    # let go: each document reads the ones its subset needs (below).
    font.ttfont.close()
    font.ttfont = None
    return font


def _document_font(parsed: TTFFont, pdf: FPDF, fontkey: str) -> TTFFont:
    """Return a TTFFont for one document: the parsed tables shared, the subset and the glyphs used its own."""
    font = TTFFont.__new__(TTFFont)
    for name in SHARED:
        setattr(font, name, getattr(parsed, name))
    font.i = len(pdf.fonts) + 1
    font.fontkey = fontkey
    # Reading an unknown character's width adds it to cw with the default width, so each document has its own.
    font.cw = parsed.cw.copy()
    # fpdf2 subsets this TTFont in place when it writes the PDF, so each document opens the file afresh:
    # lazily, which reads only the table directory now and the tables the subset needs at output.
    font.ttfont = TTFont(parsed.ttffile, recalcTimestamp=False, fontNumber=parsed.collection_font_number, lazy=True)
    font.missing_glyphs = []
    font.biggest_size_pt = 0
    font._hbfont = None
    font.subset = SubsetMap(font)
    return font
