"""Statistics tables as files people open: XLSX with native Excel charts, CSV that no spreadsheet executes; audited."""
from __future__ import annotations

import csv
import io
from datetime import date, datetime

import xlsxwriter

from . import audit
from .statistics import Table

# A cell starting with one of these is a formula to Excel, WPS and LibreOffice (OWASP's CSV injection list).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "\n", "\uff1d", "\uff0b", "\uff0d", "\uff20")
CSV_BOM = "\ufeff"
CHART_TYPES = {"bar": "bar", "stacked": "column", "line": "line"}


def neutralise(value):
    """Return value safe in a spreadsheet cell: numbers as they are, text that would start a formula quoted."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return value
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def table_rows(table: Table) -> list[list]:
    """Return the table as header row then one row per label, with a total row."""
    rows = [[table.row_title, *(label for _, label in table.columns)]]
    rows += [[label, *values] for (_, label), values in zip(table.rows, table.matrix())]
    if table.unit != "天":  # waiting times do not add up
        rows.append(["合计", *(table.total(column) for column, _ in table.columns)])
    return rows


def csv_bytes(tables: list[Table], day: date) -> bytes:
    """Return the tables one under another as UTF-8 CSV with a BOM (Excel then reads the Chinese right)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    for table in tables:
        writer.writerow([neutralise(f"{table.title}（截至{day.isoformat()}，单位：{table.unit}）")])
        if table.note:
            writer.writerow([neutralise(f"说明：{table.note}")])
        writer.writerows([[neutralise(cell) for cell in row] for row in table_rows(table)])
        writer.writerow([])
    return (CSV_BOM + out.getvalue()).encode("utf-8")


def _sheet_name(table: Table, used: set[str]) -> str:
    """Return a unique sheet name of at most 31 characters without the characters Excel refuses."""
    base = "".join(ch for ch in table.title if ch not in "[]:*?/\\")[:28]
    name, n = base, 2
    while name in used:
        name, n = f"{base[:26]}_{n}", n + 1
    used.add(name)
    return name


def xlsx_bytes(tables: list[Table], day: date) -> bytes:
    """Return a workbook with a sheet per table: the title, the numbers, and a native chart of them."""
    out = io.BytesIO()
    book = xlsxwriter.Workbook(out, {"in_memory": True, "strings_to_formulas": False, "strings_to_urls": False})
    book.set_properties({"title": "会计人员信息统计", "created": datetime(day.year, day.month, day.day)})
    bold = book.add_format({"bold": True})
    used: set[str] = set()
    for table in tables:
        sheet = book.add_worksheet(_sheet_name(table, used))
        name = sheet.get_name()
        sheet.write(0, 0, neutralise(f"{table.title}（截至{day.isoformat()}，单位：{table.unit}）"), bold)
        if table.note:
            sheet.write(1, 0, neutralise(f"说明：{table.note}"))
        rows = table_rows(table)
        for r, row in enumerate(rows, start=2):
            for c, cell in enumerate(row):
                sheet.write(r, c, neutralise(cell), bold if r == 2 or c == 0 else None)
        sheet.set_column(0, 0, 28)
        sheet.set_column(1, len(table.columns), 14)
        if table.chart == "none" or not table.rows:
            continue
        kind = CHART_TYPES.get(table.chart, "bar")
        chart = book.add_chart({"type": kind, **({"subtype": "stacked"} if table.chart == "stacked" else {})})
        first, last = 3, 2 + len(table.rows)
        for c in range(1, len(table.columns) + 1):
            chart.add_series({"name": [name, 2, c], "categories": [name, first, 0, last, 0],
                              "values": [name, first, c, last, c]})
        chart.set_title({"name": table.title})
        chart.set_size({"width": 720, "height": 360 + 12 * len(table.rows)})
        sheet.insert_chart(len(rows) + 4, 0, chart)
    book.close()
    return out.getvalue()


EXPORTERS = {"xlsx": xlsx_bytes, "csv": csv_bytes}


def export_tables(session, actor, kind: str, tables: list[Table], day: date, focus: int | None) -> bytes:
    """Return the tables as an XLSX or CSV file and audit the export (the caller commits)."""
    data = EXPORTERS[kind](tables, day)
    audit.record(session, actor, "statistics.export", "statistics", focus, format=kind, day=day.isoformat(),
                 tables=[table.key for table in tables])
    return data


# The panels a region's page of the PDF summary shows, in this order.
PDF_PANELS = ("collection_state", "workforce_qualification_level", "workforce_education", "workforce_age_band",
              "workforce_scope_category", "workforce_sex")


def region_pages(session, workflow, scope, tree, focus: int | None, day: date) -> list[tuple[str, list[Table]]]:
    """Return (region title, panels) for each region of the drill-down under focus, counted within scope."""
    from .stats_page import compute_statistics
    from .statistics import drill_down

    pages = []
    for key in drill_down(tree, scope, focus).keys:
        if not key.startswith("r"):
            continue
        region_id = int(key[1:])
        stats = compute_statistics(session, workflow, scope, tree, region_id, day)
        tables = {t.key: t for t in stats.tables}
        # The focus's own row opens the summary with its whole subtree; each region below follows.
        title = tree.names[region_id] + ("（合计）" if region_id == focus else "")
        pages.append((title, [tables[name] for name in PDF_PANELS]))
    return pages


def export_pdf(session, actor, workflow, scope, tree, focus: int | None, day: date) -> bytes:
    """Return the one-page-per-region PDF summary and audit the export (the caller commits)."""
    from ..documents.stats_summary import statistics_pdf

    data = statistics_pdf(region_pages(session, workflow, scope, tree, focus, day), day)
    audit.record(session, actor, "statistics.export", "statistics", focus, format="pdf", day=day.isoformat(),
                 tables=list(PDF_PANELS))
    return data
