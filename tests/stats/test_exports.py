"""Exports: XLSX with native charts and the page's numbers, CSV that survives formula injection, each one audited."""
from __future__ import annotations

import csv
import io

import openpyxl
from sqlalchemy import select

from kjdms.extensions import db
from kjdms.local_time import local_today
from kjdms.models import AuditEvent, Region
from kjdms.services.statistics import Table, full_scope, region_tree
from kjdms.services.stats_page import compute_statistics
from kjdms.services.stats_export import CSV_BOM, csv_bytes, export_tables, neutralise, xlsx_bytes
from kjdms.vocabulary import REJECTABLE_ITEMS
from tests.helpers import staff
from tests.stats_data import Spec, insert

INJECTIONS = ["=1+1", "+SUM(A1:A2)", "-2+3", "@cmd", "\t=1", "\r=1", "＝1+1", "=HYPERLINK(\"http://x\",\"y\")",
              "=cmd|' /C calc'!A0", "普通文本", "", "'=already quoted"]


def statistics(workflow):
    for spec in (Spec(), Spec(region="211303", qualification_level="senior"), Spec(state="submitted")):
        insert(spec)
    tree = region_tree(db.session)
    chaoyang = db.session.scalar(select(Region.id).where(Region.code == "211300"))
    return compute_statistics(db.session, workflow, full_scope(tree), tree, chaoyang)


def test_the_workbook_has_a_native_chart_per_panel_and_the_page_numbers(app, workflow):
    stats = statistics(workflow)
    book = openpyxl.load_workbook(io.BytesIO(xlsx_bytes(stats.tables, stats.day)))
    charted = [t for t in stats.tables if t.chart != "none" and t.rows]
    assert len(book.worksheets) == len(stats.tables)
    assert sum(len(sheet._charts) for sheet in book.worksheets) == len(charted)
    level = next(t for t in stats.tables if t.key == "workforce_qualification_level")
    sheet = next(s for s in book.worksheets if s["A1"].value.startswith(level.title))
    assert sheet["A3"].value == "会计专业技术资格" and sheet["B3"].value == "人数"
    rows = {sheet.cell(r, 1).value: sheet.cell(r, 2).value for r in range(4, 4 + len(level.rows) + 1)}
    assert rows["初级"] == 1 and rows["高级"] == 1 and rows["合计"] == 2


def test_no_csv_cell_starts_a_formula():
    table = Table("t", "注入", "名称", [(text, text) for text in INJECTIONS],
                  cells={(text, "count"): 1 for text in INJECTIONS})
    data = csv_bytes([table], local_today())
    assert data.startswith(CSV_BOM.encode("utf-8"))
    cells = [cell for row in csv.reader(io.StringIO(data.decode("utf-8-sig"))) for cell in row]
    assert all(not cell.startswith(("=", "+", "-", "@", "\t", "\r", "＝")) for cell in cells)
    for text in INJECTIONS:
        assert neutralise(text) in cells
    assert neutralise(-5) == -5


def test_every_export_is_audited(app, workflow):
    stats = statistics(workflow)
    user = staff("stats_admin", "administrator", "210000")
    for kind in ("xlsx", "csv"):
        export_tables(db.session, user, kind, stats.tables, stats.day, stats.groups.focus)
    db.session.commit()
    events = db.session.scalars(select(AuditEvent).where(AuditEvent.action == "statistics.export")).all()
    assert [e.detail["format"] for e in events] == ["xlsx", "csv"]
    assert all(e.actor_label == "stats_admin" for e in events)


def test_the_pdf_summary_has_a_page_per_region_and_renders_without_missing_glyphs(app, workflow, tmp_path):
    import subprocess

    from pypdf import PdfReader

    from kjdms.services.stats_export import export_pdf
    from kjdms.services.statistics import drill_down

    stats = statistics(workflow)
    tree = region_tree(db.session)
    user = staff("stats_pdf", "administrator", "210000")
    data = export_pdf(db.session, user, workflow, full_scope(tree), tree, stats.groups.focus, stats.day)
    pages = [key for key in drill_down(tree, full_scope(tree), stats.groups.focus).keys if key.startswith("r")]
    reader = PdfReader(io.BytesIO(data))
    assert len(reader.pages) == len(pages)
    first = reader.pages[0].extract_text()
    assert "朝阳市（合计）" in first and "会计专业技术资格" in first and "初级" in first
    (tmp_path / "summary.pdf").write_bytes(data)
    rendered = subprocess.run(["pdftoppm", "-r", "50", "-png", "-f", "1", "-l", "2", str(tmp_path / "summary.pdf"),
                               str(tmp_path / "page")], capture_output=True, text=True)
    assert rendered.returncode == 0 and "glyph" not in rendered.stderr.lower() and not rendered.stderr.strip()
    assert len(list(tmp_path.glob("page*.png"))) == 2


def test_the_rule_panels_are_exported_with_their_notes_and_counts(app, workflow):
    for spec in (Spec(state="rejected", rejections=[(2, ["phone", "attachment:basic_info_form"])]),
                 Spec(job_started_days_ago=90, created_days_ago=10)):
        insert(spec)
    tree = region_tree(db.session)
    stats = compute_statistics(db.session, workflow, full_scope(tree), tree, None)
    book = openpyxl.load_workbook(io.BytesIO(xlsx_bytes(stats.tables, stats.day)))
    reasons = next(s for s in book.worksheets if s["A1"].value.startswith("退回原因（按项目）"))
    assert reasons["A2"].value.startswith("说明：截至当日的全部退回")
    assert reasons["A3"].value == "有问题的项目" and reasons._charts
    width = 1 + len(stats.groups.keys)  # a column per region: add them up
    counts = {reasons.cell(r, 1).value: sum(reasons.cell(r, c).value or 0 for c in range(2, width + 1))
              for r in range(4, 4 + len(REJECTABLE_ITEMS) + 2)}
    assert counts["联系电话"] == counts["基本信息表"] == 1 and counts["学历证书"] == 0 and counts["合计"] == 2
    late = next(s for s in book.worksheets if s["A1"].value.startswith("逾期登记与逾期更新"))
    assert late["A2"].value.startswith("说明：辽财会〔2019〕116号 三") and late["C3"].value == "逾期登记"
    assert late.cell(4 + len(stats.groups.keys), 1).value == "合计" and late.cell(4 + len(stats.groups.keys), 3).value == 1
    rows = list(csv.reader(io.StringIO(csv_bytes(stats.tables, stats.day).decode("utf-8-sig"))))
    title = next(i for i, row in enumerate(rows) if row and row[0].startswith("退回原因（按项目）"))
    assert rows[title + 1][0].startswith("说明：") and rows[title + 2][0] == "有问题的项目"
