"""API clients in the back office: create (the key shown once), rotate the key, revoke; listed within the scope."""
from __future__ import annotations

from flask import abort, flash, redirect, request
from flask_admin import expose
from flask_login import current_user

from ..extensions import db
from ..local_time import end_of_day
from ..models import ApiClient, utcnow
from ..services import api_clients
from ..services.api_clients import clients_in_scope, find_client
from ..services.staff import OutOfScope, find_region
from ..validators import ValidationError
from .accounts import scope_regions
from .base import ScopedModelView, beijing_time, current_scope
from .forms import ApiClientForm, ConfirmForm, region_choices


def status_label(client: ApiClient) -> str:
    """Return whether client may call now, in Chinese."""
    if client.revoked_at is not None:
        return "已撤销"
    return "可用" if api_clients.is_usable(client, utcnow()) else "已过期"


class ApiClientView(ScopedModelView):
    """API 调用方: the downstream systems whose every region lies in the administrator's scope."""

    list_template = "admin/kjdms/api_client_list.html"
    details_template = "admin/kjdms/api_client_details.html"
    can_view_details = True
    can_edit = False
    column_list = ("name", "purpose", "regions", "may_see_credit", "rate_per_minute", "expires_at", "revoked_at",
                   "key_prefix")
    column_details_list = ("name", "purpose", "regions", "may_see_credit", "rate_per_minute", "expires_at",
                           "revoked_at", "key_prefix", "created_at", "created_by", "rotated_at")
    column_labels = {"name": "名称", "purpose": "用途", "regions": "可查询地区", "may_see_credit": "信用档案",
                     "rate_per_minute": "每分钟上限（人）", "expires_at": "到期时间", "revoked_at": "状态",
                     "key_prefix": "密钥前缀", "created_at": "创建时间", "created_by": "创建人", "rotated_at": "最近更换密钥"}
    column_formatters = {
        "regions": lambda v, c, m, n: "、".join(region.path_name for region in m.regions),
        "may_see_credit": lambda v, c, m, n: "可获知有无有效记录" if m.may_see_credit else "不提供",
        "expires_at": lambda v, c, m, n: beijing_time(v, c, m, n) or "不过期",
        "revoked_at": lambda v, c, m, n: status_label(m) + (f"（{beijing_time(v, c, m, n)}）" if m.revoked_at else ""),
        "created_by": lambda v, c, m, n: m.created_by.username if m.created_by else "—",
        "created_at": beijing_time, "rotated_at": beijing_time,
    }
    column_formatters_detail = column_formatters
    column_searchable_list = ("name", "purpose")
    column_default_sort = "name"
    column_sortable_list = ("name", "expires_at")

    def scope_clause(self, scope):
        if scope.is_everything:
            return None
        return ApiClient.id.in_(clients_in_scope(scope).with_only_columns(ApiClient.id).scalar_subquery())

    @expose("/new/", methods=("GET", "POST"))
    def create_view(self):
        form = ApiClientForm(request.form if request.method == "POST" else None)
        form.regions.choices = region_choices(scope_regions())
        if request.method == "POST" and form.validate():
            actor = current_user._get_current_object()
            try:
                scope = current_scope()
                regions = [find_region(db.session, scope, region_id) for region_id in form.regions.data]
                client, key = api_clients.create_client(
                    db.session, actor, name=form.name.data, purpose=form.purpose.data, regions=regions,
                    may_see_credit=form.may_see_credit.data, rate_per_minute=form.rate_per_minute.data,
                    expires_at=end_of_day(form.expires_on.data) if form.expires_on.data else None)
            except OutOfScope:
                abort(404)
            except ValidationError as error:
                field = getattr(form, {"expires_at": "expires_on"}.get(error.field, error.field), form.name)
                field.errors = [*field.errors, error.message]
            else:
                return self.render("admin/kjdms/api_key_once.html", client=client, key=key, created=True)
        return self.render("admin/kjdms/api_client_create.html", form=form)

    @expose("/details/")
    def details_view(self):
        client = self.get_one(request.args.get("id", ""))
        return self.render(self.details_template, model=client, action_form=ConfirmForm(),
                           return_url=self.get_url(".index_view"), status=status_label(client),
                           details_columns=self._details_columns, get_value=self.get_detail_value)

    def _client_or_404(self) -> ApiClient:
        try:
            client_id = request.args.get("id", "")
            return find_client(db.session, current_scope(),
                               int(client_id) if client_id.isascii() and client_id.isdigit() and len(client_id) < 10
                               else None)
        except OutOfScope:
            abort(404)

    @expose("/rotate/", methods=("POST",))
    def rotate_view(self):
        client = self._client_or_404()
        if not ConfirmForm(request.form).validate():
            abort(400)
        try:
            key = api_clients.rotate_key(db.session, current_user._get_current_object(), client)
        except ValidationError as error:
            flash(error.message, "error")
            return redirect(self.get_url(".details_view", id=client.id))
        return self.render("admin/kjdms/api_key_once.html", client=client, key=key, created=False)

    @expose("/revoke/", methods=("POST",))
    def revoke_view(self):
        client = self._client_or_404()
        if not ConfirmForm(request.form).validate():
            abort(400)
        api_clients.revoke_client(db.session, current_user._get_current_object(), client)
        flash("已撤销：该调用方的密钥从下一次请求起即被拒绝（401）", "success")
        return redirect(self.get_url(".details_view", id=client.id))
