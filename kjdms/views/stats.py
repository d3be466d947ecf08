"""Statistics for staff within their regions: panels with charts and tables, a cross-tab, exports, as of a day."""
from __future__ import annotations

import json
from datetime import date
from importlib import resources

from flask import Blueprint, Response, abort, render_template, request, send_file
from flask_login import current_user

from ..backends import get_workflow
from ..extensions import db
from ..local_time import local_today
from ..services.statistics import WORKFORCE_DIMENSIONS, region_tree, statistics_scope
from ..services.stats_page import compute_statistics
from ..services.staff import is_province_administrator
from ..services.stats_export import export_pdf, export_tables
from ..vocabulary import STAFF_ROLES
from . import int_arg, staff_role_required
from .home import PAGE_POLICY

bp = Blueprint("stats", __name__, url_prefix="/stats")
# Plotly sets its chart styles in a <style> element it writes: inline style is allowed here, inline script is not.
STATS_POLICY = PAGE_POLICY.replace("style-src 'self'", "style-src 'self' 'unsafe-inline'")


@bp.after_request
def chart_policy(response):
    """Let Plotly's own styles apply on the statistics pages."""
    response.headers["Content-Security-Policy"] = STATS_POLICY
    return response
MEDIA_TYPES = {"pdf": "application/pdf", "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
               "csv": "text/csv; charset=utf-8"}


def _day() -> tuple[date, str | None]:
    """Return the as-of day asked (today when none or unreadable) and an error to show."""
    asked = request.values.get("as_of", "")
    if not asked:
        return local_today(), None
    try:
        day = date.fromisoformat(asked[:10])
    except ValueError:
        return local_today(), "日期格式应为 年-月-日，已按今天统计"
    return (day, None) if day <= local_today() else (local_today(), "不能统计未来的日期，已按今天统计")


def _form_int(name: str) -> int | None:
    """Return a posted small non-negative integer, or None."""
    value = request.form.get(name, "")
    return int(value) if value.isascii() and value.isdigit() and len(value) < 8 else None


def _dimension(name: str, default: str) -> str:
    value = request.values.get(name, default)
    return value if value in WORKFORCE_DIMENSIONS else default


def _computed():
    """Return the statistics, the cross-tab and the scope for the request."""
    tree = region_tree(db.session)
    scope = statistics_scope(tree, current_user)
    if scope.empty:
        abort(403)
    day, error = _day()
    focus = int_arg("region") if request.method == "GET" else _form_int("region")
    workflow = get_workflow()
    row, column = _dimension("row", "region"), _dimension("column", "qualification_level")
    stats = compute_statistics(db.session, workflow, scope, tree, focus, day, cross=(row, column))
    return tree, scope, stats, stats.crosstab, error


@bp.get("/")
@staff_role_required(*STAFF_ROLES)
def index():
    """Show every panel as a chart with its table, and the cross-tab of two chosen dimensions."""
    tree, scope, stats, table, error = _computed()
    focus = stats.groups.focus
    trail = [r for r in tree.path(focus) if r in scope.regions] if focus is not None else []
    charts = {t.key: {"rows": [label for _, label in t.rows], "columns": [label for _, label in t.columns],
                      "values": t.matrix(), "kind": t.chart, "unit": t.unit} for t in stats.tables}
    return render_template("stats/index.html", stats=stats, crosstab=table, error=error, trail=trail,
                           may_report=is_province_administrator(current_user),
                           names=tree.names, charts=_json_block(charts),
                           dimensions=WORKFORCE_DIMENSIONS, today=local_today(), zip=zip,
                           row=request.args.get("row", "region"), column=request.args.get("column", "qualification_level"))


@bp.post("/export.<kind>")
@staff_role_required(*STAFF_ROLES)
def export(kind):
    """Download every panel and the cross-tab as XLSX or CSV; the download is audited."""
    if kind not in MEDIA_TYPES:
        abort(404)
    tree, scope, stats, table, _ = _computed()
    if kind == "pdf":
        data = export_pdf(db.session, current_user, get_workflow(), scope, tree, stats.groups.focus, stats.day)
    else:
        data = export_tables(db.session, current_user, kind, stats.tables + [table], stats.day, stats.groups.focus)
    db.session.commit()
    response = Response(data, mimetype=MEDIA_TYPES[kind])
    response.headers["Content-Disposition"] = f"attachment; filename=statistics-{stats.day.isoformat()}.{kind}"
    return response


@bp.get("/plotly.min.js")
def chart_library():
    """Serve the chart library from the installed plotly package: the intranet has no CDN."""
    path = resources.files("plotly") / "package_data" / "plotly.min.js"
    return send_file(str(path), mimetype="text/javascript", max_age=86400)


def _json_block(value) -> str:
    """Return value as JSON that cannot end the <script type="application/json"> block it is written into."""
    text = json.dumps(value, ensure_ascii=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
