"""A person's credit file (个人信用档案) as an A4 PDF: every record with its chain, evidence hashes, office, dates."""
from __future__ import annotations

from datetime import datetime

from fpdf import FPDF, FontFace

from ..display import mask_id_number
from ..local_time import local_text
from ..models import CreditChain
from ..vocabulary import ATTACHMENT_SLOTS, CREDIT_KINDS, action_title
from .base import FONT as _FONT, CJKDocument

TITLE = "个人信用档案"
LEGAL_BASIS = "依据辽财会〔2019〕116号 四（二）"
# Documents leaving the system carry the masked ID number only, whoever prints them.
ID_NOTE = "身份证号已作遮蔽处理；记录中保存的是身份证号的密钥散列值。"
_MARGIN = 15
_LABEL_WIDTH = 28
_LABEL_FILL = FontFace(fill_color=(238, 238, 238))


def _evidence_text(record) -> str:
    if not record.evidence:
        return "—"
    lines = []
    for item in record.evidence:
        slot = ATTACHMENT_SLOTS.get(item.get("slot"))
        lines.append(f"{slot.title if slot else item.get('slot')} 第{item.get('number')}版"
                     f"　{item.get('filename') or '（无文件名）'}　{item.get('media_type')}")
        lines.append(f"SHA-256：{item.get('sha256')}")
    return "\n".join(lines)


def credit_file_pdf(chains: list[CreditChain], *, name: str | None, id_number: str | None,
                    dossier_numbers: list[str], generated_at: datetime) -> bytes:
    """Return the credit file as PDF bytes: a header naming the person (ID masked), then each chain."""
    subject = name or (chains[0].head.subject_name if chains else "—")
    pdf = CJKDocument(page_numbers=True, footer=f"生成时间：{generated_at:%Y-%m-%d %H:%M}　{LEGAL_BASIS}")
    pdf.set_title(f"{TITLE} {subject}")
    pdf.set_creator("kjdms")
    pdf.set_lang("zh-CN")
    pdf.set_creation_date(generated_at)
    pdf.add_page()
    pdf.set_font(_FONT, size=18)
    with pdf.local_context(text_mode="FILL_STROKE", line_width=0.3):
        pdf.cell(0, 12, TITLE, align="C", new_x="LMARGIN", new_y="NEXT")
    pdf.ln(2)
    live = sum(1 for chain in chains if chain.live)
    _table(pdf, [("姓名", subject), ("身份证号", mask_id_number(id_number)),
                 ("档案编号", "、".join(dossier_numbers) or "—"),
                 ("记录情况", f"共 {len(chains)} 项，其中有效 {live} 项" if chains else "无信用记录")])
    pdf.set_font(_FONT, size=8.5)
    pdf.set_text_color(90)
    pdf.multi_cell(0, 5, ID_NOTE, new_x="LMARGIN", new_y="NEXT")
    pdf.set_text_color(0)
    for number, chain in enumerate(chains, start=1):
        pdf.ln(4)
        pdf.set_font(_FONT, size=12.5)
        with pdf.local_context(text_mode="FILL_STROKE", line_width=0.15):
            pdf.cell(0, 8, f"第{number}项　{CREDIT_KINDS.get(chain.head.kind, chain.head.kind)}　（{chain.status}）",
                     new_x="LMARGIN", new_y="NEXT")
        for record in chain.records:
            _record(pdf, record)
    return bytes(pdf.output())


def _record(pdf: FPDF, record) -> None:
    heading = f"记录编号 {record.id}　{action_title(record.action)}"
    if record.supersedes_id:
        heading += f"（针对记录编号 {record.supersedes_id}）"
    pdf.set_font(_FONT, size=10.5)
    pdf.cell(0, 7, heading, new_x="LMARGIN", new_y="NEXT")
    office = record.office_region
    rows = [("类别", CREDIT_KINDS.get(record.kind, record.kind)),
            ("撤销理由" if record.action == "revoke" else "查实情况", record.finding),
            ("依据", record.legal_basis),
            ("日期" if record.action == "revoke" else "查实日期", f"{record.found_on:%Y-%m-%d}"),
            ("记录机关", (office.office_name or office.path_name) if office else "—"),
            ("登记时间", local_text(record.recorded_at))]
    if record.action != "revoke":
        rows.append(("证据", _evidence_text(record)))
    _table(pdf, rows)
    pdf.ln(1)


def _table(pdf: FPDF, rows) -> None:
    pdf.set_font(_FONT, size=9.5)
    with pdf.table(col_widths=(_LABEL_WIDTH, pdf.epw - _LABEL_WIDTH), width=pdf.epw, first_row_as_headings=False,
                   text_align=("CENTER", "LEFT"), v_align="MIDDLE", line_height=5.5, padding=(1.5, 2),
                   wrapmode="CHAR") as table:
        for label, value in rows:
            row = table.row()
            row.cell(label, style=_LABEL_FILL)
            row.cell(value or "—")
