"""The archival package's summary.pdf: basic information, files with hashes, history and credit records."""
from __future__ import annotations

from datetime import datetime

from fpdf import FontFace

from ..local_time import BEIJING as LOCAL_ZONE
from .base import FONT as _FONT, CJKDocument

TITLE = "会计人员档案归档摘要"
_MARGIN = 12
_HEADING = FontFace(fill_color=(238, 238, 238))


def _reason(row: dict) -> str:
    """Return a history row's comment followed by the items it flagged (packages made before flags have none)."""
    items = "、".join(row.get("flagged_titles") or ())
    return (row["comment"] or "") + (f"（有问题的项目：{items}）" if items else "")


def _local(moment: str | None) -> str:
    """Return an ISO UTC time from the manifest as Beijing time."""
    if not moment:
        return "—"
    return datetime.fromisoformat(moment).astimezone(LOCAL_ZONE).strftime("%Y-%m-%d %H:%M")


class _Summary(CJKDocument):
    """A4 pages in the CJK font, each footed with the dossier number and the page."""

    def __init__(self, footer: str):
        super().__init__(footer, margin=_MARGIN, page_numbers=True)

    def heading(self, text: str) -> None:
        self.ln(3)
        self.set_font(_FONT, size=13)
        self.cell(0, 9, text, new_x="LMARGIN", new_y="NEXT")

    def rows(self, widths, header, rows, size=8.5) -> None:
        self.set_font(_FONT, size=size)
        with self.table(col_widths=widths, width=self.epw, line_height=4.6, padding=(1, 1.5),
                        wrapmode="CHAR", headings_style=_HEADING, text_align="LEFT") as table:
            table.row(header)
            for values in rows:
                table.row([value if value not in (None, "") else "—" for value in values])


def summary_pdf(manifest: dict, fields: list[tuple[str, str]]) -> bytes:
    """Return the summary of a package's manifest as PDF bytes; fields are the basic information shown."""
    dossier, person = manifest["dossier"], manifest["person"]
    pdf = _Summary(footer=f"档案编号：{dossier['number']}　生成时间：{_local(manifest['generated_at'])}")
    pdf.set_title(f"{TITLE} {dossier['number']}")
    pdf.set_creator("kjdms")
    pdf.set_lang("zh-CN")
    pdf.set_creation_date(datetime.fromisoformat(manifest["generated_at"]))
    pdf.add_page()
    pdf.set_font(_FONT, size=17)
    pdf.cell(0, 11, TITLE, align="C", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font(_FONT, size=10)
    pdf.multi_cell(0, 6, f"档案编号：{dossier['number']}　状态：{dossier['state_title']}　"
                         f"建档时间：{_local(dossier['created_at'])}　身份证号：{person['id_number_masked']}",
                   new_x="LMARGIN", new_y="NEXT")

    pdf.heading("一、基本信息")
    pdf.rows((45, 141), ("项目", "内容"), fields, size=9)

    pdf.heading("二、证明材料（全部版本）")
    pdf.rows((30, 12, 40, 18, 86), ("类别", "版本", "上传时间", "大小（字节）", "sha256"),
             [(entry["slot_title"], str(entry["number"]), _local(entry["uploaded_at"]), str(entry["size"]),
               entry["sha256"]) for entry in manifest["files"]], size=7.5)

    pdf.heading("三、办理记录")
    pdf.rows((32, 22, 22, 26, 84), ("时间", "操作", "办理后状态", "办理人角色", "意见"),
             [(_local(row["at"]), row["title"], row["to_state_title"], row["actor_role_title"], _reason(row))
              for row in manifest["history"]])

    pdf.heading("四、个人信用档案记录")
    if manifest["credit_records"]:
        pdf.rows((16, 20, 22, 52, 34, 42), ("类型", "性质", "认定日期", "认定内容", "依据", "证据 sha256"),
                 [(row["action_title"], row["kind_title"], row["found_on"], row["finding"], row["legal_basis"],
                   "\n".join(item.get("sha256", "") for item in row["evidence"]))
                  for row in manifest["credit_records"]], size=7.5)
    else:
        pdf.set_font(_FONT, size=9)
        pdf.cell(0, 6, "无", new_x="LMARGIN", new_y="NEXT")
    pdf.heading("五、修订记录")
    pdf.set_font(_FONT, size=9)
    pdf.multi_cell(0, 5.5, f"共 {len(manifest['revisions'])} 次修订，详见 manifest.json 的 revisions。"
                           "本摘要的 sha256 记录在 manifest.json 中，manifest.json 的 sha256 记录在 manifest.json.sha256 中。",
                   new_x="LMARGIN", new_y="NEXT")
    return bytes(pdf.output())
