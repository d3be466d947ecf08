"""The statistics summary as PDF: one page per region, each panel a bar chart drawn with its numbers beside the bars."""
from __future__ import annotations

from datetime import date

from ..local_time import chinese_date
from .base import FONT, CJKDocument

BAR_WIDTH = 90  # mm for the longest bar
LABEL_WIDTH = 62
ROW_HEIGHT = 4.6


def _panel(pdf: CJKDocument, table) -> None:
    """Draw one table's first column as horizontal bars, each labelled with its count."""
    values = [row[0] for row in table.matrix()]
    top = max(values, default=0) or 1
    pdf.set_font(FONT, size=9.5)
    pdf.cell(0, 6, f"{table.title}（单位：{table.unit}）", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font(FONT, size=8)
    for (_, label), value in zip(table.rows, values):
        y = pdf.get_y()
        pdf.cell(LABEL_WIDTH, ROW_HEIGHT, label[:24], align="R")
        pdf.set_fill_color(31, 119, 180)
        width = BAR_WIDTH * value / top
        if width:
            pdf.rect(pdf.l_margin + LABEL_WIDTH + 2, y + 0.8, width, ROW_HEIGHT - 1.6, style="F")
        pdf.set_xy(pdf.l_margin + LABEL_WIDTH + 4 + width, y)
        pdf.cell(20, ROW_HEIGHT, f"{value:g}", new_x="LMARGIN", new_y="NEXT")
    pdf.ln(1.5)


def statistics_pdf(pages: list[tuple[str, list]], day: date) -> bytes:
    """Return a PDF with one page per (region title, tables): the tables as bar charts with their numbers."""
    pdf = CJKDocument(f"会计人员信息统计　截至{chinese_date(day)}（北京时间）", page_numbers=True)
    pdf.set_auto_page_break(False)
    for title, tables in pages:
        pdf.add_page()
        pdf.set_font(FONT, size=14)
        pdf.cell(0, 9, f"{title}　会计人员信息统计", align="C", new_x="LMARGIN", new_y="NEXT")
        for table in tables:
            if pdf.get_y() + 6 + ROW_HEIGHT * len(table.rows) > pdf.h - 20:
                break  # one page per region: what does not fit is in the XLSX
            _panel(pdf, table)
    return bytes(pdf.output())
