"""The printable basic-information form (基本信息表) of a dossier, as an A4 PDF with an embedded CJK font."""
from __future__ import annotations

from datetime import datetime

from fpdf import FPDF, FontFace, ViewerPreferences

from ..display import field_value
from ..models import Dossier
from ..vocabulary import DOSSIER_LABELS
from .base import FONT as _FONT, CJKDocument

TITLE = "辽宁省会计人员信息采集基本信息表"
DECLARATION = "本人承诺以上信息真实、准确、完整，如有虚报、谎报，愿按规定记入个人信用档案。"
LEGAL_BASIS = "依据辽财会〔2019〕116号"
REGION_LABEL = "归属地区"


# The table's rows: two fields share a row; a lone field spans the width (long values).
ROWS = (
    ("name", "sex"),
    ("id_number", "birth_date"),
    ("phone", "education"),
    ("scope_category",),
    ("job_types",),
    ("employer_name",),
    ("employer_uscc", "employer_org_code"),
    ("employer_region",),
    ("household_region",),
    ("is_student", "school_region"),
    ("qualification_level", "qualification_certificate_number"),
    ("legacy_certificate_number",),
    ("job_started_on", "information_changed_on"),
    ("region",),
)

# Millimetres on A4 portrait (210 × 297).
_MARGIN = 15
_LABEL_WIDTH, _VALUE_WIDTH = 36, 54
_BOX_HEIGHT = 62  # an official seal is 40–45 mm across: the stamp must fit inside, with the date line
_BOX_GAP = 8
_DECLARATION_HEIGHT = 24  # the two gaps and up to two lines
_LABEL_FILL = FontFace(fill_color=(238, 238, 238))


def basic_information_form_pdf(dossier: Dossier, *, generated_at: datetime) -> bytes:
    """Return the basic-information form of dossier and its person as PDF bytes."""
    pdf = _FormDocument(footer=f"生成时间：{generated_at:%Y-%m-%d %H:%M}　{LEGAL_BASIS}　档案编号：{dossier.number}")
    pdf.set_title(f"{TITLE} {dossier.number}")
    pdf.set_creator("kjdms")
    pdf.set_lang("zh-CN")
    pdf.set_creation_date(generated_at)
    pdf.add_page()
    _title(pdf)
    _number(pdf, dossier.number)
    _fields(pdf, dossier)
    _declaration_and_signatures(pdf)
    return bytes(pdf.output())


class _FormDocument(CJKDocument):
    """The form's page: printed at 100 %, as a viewer's shrink-to-fit would make the stamp box smaller than a seal."""

    def __init__(self, footer: str):
        super().__init__(footer)
        self.viewer_preferences = ViewerPreferences(print_scaling="None")


def _title(pdf: FPDF) -> None:
    pdf.set_font(_FONT, size=18)
    # The font has no bold face: stroking the outlines as well thickens them. A local context,
    # because the PDF text mode outlives the text object and would embolden everything after.
    with pdf.local_context(text_mode="FILL_STROKE", line_width=0.3):
        pdf.cell(0, 12, TITLE, align="C", new_x="LMARGIN", new_y="NEXT")
    pdf.ln(3)


def _number(pdf: FPDF, number: str) -> None:
    top = pdf.get_y()
    pdf.set_font(_FONT, size=15)
    with pdf.local_context(text_mode="FILL_STROKE", line_width=0.2):
        pdf.cell(0, 12, f"档案编号：{number}")
    # Code 39 (fpdf2 has no Code 128): uppercase letters and digits, which is all a number holds.
    narrow = 0.3
    barcode_width = (len(number) + 2) * 16 * narrow  # 15 modules and a gap a character, with start and stop
    pdf.set_fill_color(0)
    pdf.code39(f"*{number}*", x=pdf.w - _MARGIN - barcode_width, y=top + 1, w=narrow * 3, h=10)
    pdf.set_xy(_MARGIN, top + 14)


def _fields(pdf: FPDF, dossier: Dossier) -> None:
    pdf.set_font(_FONT, size=10.5)
    with pdf.table(
        col_widths=(_LABEL_WIDTH, _VALUE_WIDTH, _LABEL_WIDTH, _VALUE_WIDTH),
        width=pdf.epw,
        first_row_as_headings=False,
        text_align=("CENTER", "LEFT", "CENTER", "LEFT"),
        v_align="MIDDLE",
        line_height=6,
        padding=(2, 2),
        wrapmode="CHAR",  # Chinese has no spaces to break at
    ) as table:
        for fields in ROWS:
            row = table.row()
            for field in fields:
                row.cell(_label(field), style=_LABEL_FILL)
                row.cell(field_value(dossier, field), colspan=1 if len(fields) == 2 else 3)


def _label(field: str) -> str:
    return REGION_LABEL if field == "region" else DOSSIER_LABELS[field]


def _declaration_and_signatures(pdf: FPDF) -> None:
    # What is signed stays on one page with the signature: long values move both to the next page.
    if pdf.will_page_break(_DECLARATION_HEIGHT + _BOX_HEIGHT):
        pdf.add_page()
    pdf.ln(5)
    pdf.set_font(_FONT, size=11)
    pdf.multi_cell(0, 7, DECLARATION, wrapmode="CHAR", new_x="LMARGIN", new_y="NEXT")
    pdf.ln(5)
    _signature_boxes(pdf)


def _signature_boxes(pdf: FPDF) -> None:
    top = pdf.get_y()
    width = (pdf.epw - _BOX_GAP) / 2
    for left, label in ((_MARGIN, "本人签字："), (_MARGIN + width + _BOX_GAP, "单位盖章：")):
        pdf.rect(left, top, width, _BOX_HEIGHT)
        pdf.set_font(_FONT, size=11)
        pdf.set_xy(left + 3, top + 3)
        pdf.cell(width - 6, 7, label)
        pdf.set_xy(left + 3, top + _BOX_HEIGHT - 10)
        pdf.cell(width - 6, 7, "年　　　月　　　日", align="R")
    pdf.set_xy(_MARGIN, top + _BOX_HEIGHT)
