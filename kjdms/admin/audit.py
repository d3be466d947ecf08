"""The audit log of the administrator's scope: filters, pages, and an audited CSV export (POST)."""
from __future__ import annotations

import csv
import io

from flask import Response, abort, g, request
from flask_admin import expose
from flask_login import current_user
from sqlalchemy import or_, select

from ..backends import get_workflow
from ..extensions import db
from ..local_time import local_text
from ..models import AuditEvent, Dossier, User, utcnow
from ..services import audit
from .audit_text import AuditText, action_labels, region_names
from .base import ScopedModelView, beijing_time
from .filters import ClauseFilter, DayFilter, PerRequest
from .forms import ConfirmForm

EXPORT_MAX_ROWS = 100_000
# A spreadsheet reads a cell starting with one of these as a formula (CSV injection).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def neutral(value) -> str:
    """Return value as CSV cell text that no spreadsheet runs as a formula."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def dossier_id(value: str) -> int | None:
    """Read a dossier number (KJ0000000012) or id; None for anything else."""
    text = value.strip().upper().removeprefix("KJ")
    return int(text) if text.isascii() and text.isdigit() and len(text) <= 10 else None


def audit_text() -> AuditText:
    """Return the names of this request's events, read once per request."""
    if "audit_text" not in g:
        g.audit_text = AuditText(get_workflow().definition, region_names(db.session))
    return g.audit_text


def action_choices() -> list[tuple[str, str]]:
    """Return the filter's choices of action: (code, Chinese name), related codes side by side."""
    return sorted(action_labels(get_workflow().definition).items())


class AuditView(ScopedModelView):
    """审计日志: events done by, or done to, the accounts, dossiers and regions of the scope."""

    list_template = "admin/kjdms/audit_list.html"
    can_create = can_edit = can_delete = False
    can_view_details = False
    column_list = ("occurred_at", "actor_label", "action", "object_type", "object_id", "detail")
    column_labels = {"occurred_at": "时间（北京时间）", "actor_label": "操作人", "action": "操作",
                     "object_type": "对象", "object_id": "对象编号", "detail": "详情"}
    column_formatters = {
        "occurred_at": beijing_time,
        "actor_label": lambda v, c, m, n: audit_text().actor(m.actor_label),
        "action": lambda v, c, m, n: audit_text().action(m.action),
        "object_type": lambda v, c, m, n: audit_text().object_type(m.object_type),
        "object_id": lambda v, c, m, n: audit_text().object_id(m),
        "detail": lambda v, c, m, n: audit_text().detail_html(m),
    }
    column_default_sort = ("occurred_at", True)
    column_sortable_list = ("occurred_at", "actor_label", "action")
    column_filters = (
        ClauseFilter(AuditEvent.actor_label, "操作人",
                     lambda text: AuditEvent.actor_label == AuditText.stored_actor(text.strip()), operation="等于"),
        ClauseFilter(AuditEvent.action, "操作", lambda code: AuditEvent.action == code,
                     options=PerRequest(action_choices), operation="是"),
        ClauseFilter(AuditEvent.object_id, "档案编号",
                     lambda text: (AuditEvent.object_type == "dossier") & (AuditEvent.object_id == dossier_id(text)),
                     operation="等于"),
        DayFilter(AuditEvent.occurred_at, "日期", since=True),
        DayFilter(AuditEvent.occurred_at, "日期", since=False),
    )

    def scope_clause(self, scope):
        if scope.is_everything:
            return None
        ids = list(scope.region_ids)
        staff_ids = select(User.id).where(User.region_id.in_(ids))
        return or_(
            AuditEvent.actor_id.in_(staff_ids),
            (AuditEvent.object_type == "user") & AuditEvent.object_id.in_(staff_ids),
            (AuditEvent.object_type == "dossier") & AuditEvent.object_id.in_(
                select(Dossier.id).where(Dossier.region_id.in_(ids))),
            (AuditEvent.object_type == "region") & AuditEvent.object_id.in_(ids),
        )

    def render(self, template, **kwargs):
        return super().render(template, export_form=ConfirmForm(formdata=None), **kwargs)

    @expose("/export.csv", methods=("POST",))
    def export_view(self):
        """Write the filtered events as CSV (UTF-8 with BOM, formulas neutralised); the export is itself audited."""
        if not ConfirmForm(request.form).validate():
            abort(400)
        view_args = self._get_list_extra_args()
        sort = self._get_column_by_idx(view_args.sort)
        count, rows = self.get_list(0, sort[0] if sort else None, view_args.sort_desc, view_args.search,
                                    view_args.filters, page_size=EXPORT_MAX_ROWS)
        out = io.StringIO()
        out.write("\ufeff")
        writer = csv.writer(out)
        writer.writerow([self.column_labels[column] for column in self.column_list])
        names = audit_text()
        for event in rows:
            writer.writerow([neutral(value) for value in (
                local_text(event.occurred_at), names.actor(event.actor_label), names.action(event.action),
                names.object_type(event.object_type), names.object_id(event), names.detail_text(event))])
        audit.record(db.session, current_user._get_current_object(), "audit.export", "audit", None,
                     rows=len(rows), query=request.query_string.decode("ascii", "replace")[:500])
        db.session.commit()
        name = f"audit-{utcnow():%Y%m%d-%H%M%S}.csv"
        return Response(out.getvalue().encode("utf-8"), mimetype="text/csv", headers={
            "Content-Disposition": f'attachment; filename="{name}"', "X-Content-Type-Options": "nosniff"})
