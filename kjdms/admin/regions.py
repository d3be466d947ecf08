"""The region tree and the offices' consultation contacts (the province administrator only)."""
from __future__ import annotations

from flask import flash, request
from flask_login import current_user
from wtforms import BooleanField, IntegerField, SelectField, StringField
from wtforms.validators import DataRequired, Length, NumberRange, Optional

from ..extensions import db
from ..models import Region
from ..permissions import PermissionDenied
from ..services import regions, staff
from ..validators import ValidationError
from .base import ScopedModelView, SecureForm, beijing_time
from .forms import region_choices


class RegionForm(SecureForm):
    """One region: its place in the tree and its office's consultation contact."""

    code = StringField("代码", validators=[DataRequired("代码：必填"), Length(max=32)],
                       description="行政区划代码（GB/T 2260），其他单位用自编代码；创建后不能修改")
    name = StringField("名称", validators=[DataRequired("名称：必填"), Length(max=64)])
    kind = SelectField("级别", choices=dict(regions.KINDS))
    parent = SelectField("上级地区", coerce=int, description="移动地区即修改上级地区，会记入审计日志")
    sort_order = IntegerField("排序", default=0, validators=[Optional(), NumberRange(0, 9999)])
    collected_elsewhere = BooleanField("不在本平台采集", description="如大连市：按本地规定另行采集，本平台不受理")
    office_name = StringField("会计管理部门", validators=[Optional(), Length(max=64)], description="如：双塔区财政局")
    phone = StringField("咨询电话", validators=[Optional(), Length(max=32)])
    address = StringField("办公地址", validators=[Optional(), Length(max=128)])
    hours = StringField("咨询时间", validators=[Optional(), Length(max=64)], description="如：工作日 8:30–11:30，13:30–17:00")


def _parent_choices():
    return {0: "（无：顶层）"} | region_choices(regions.contact_offices(db.session))


class RegionView(ScopedModelView):
    """地区与咨询电话: add, rename, order, move, mark as collected elsewhere, edit contacts, delete an empty one."""

    can_create = can_edit = can_delete = True
    form = RegionForm
    column_list = ("code", "name", "kind", "parent", "office_name", "phone", "address", "hours",
                   "collected_elsewhere", "sort_order")
    column_labels = {"code": "代码", "name": "名称", "kind": "级别", "parent": "上级地区", "office_name": "会计管理部门",
                     "phone": "咨询电话", "address": "办公地址", "hours": "咨询时间",
                     "collected_elsewhere": "不在本平台采集", "sort_order": "排序", "edited_at": "修改时间"}
    column_formatters = {
        "kind": lambda v, c, m, n: regions.KINDS.get(m.kind, m.kind),
        "parent": lambda v, c, m, n: m.parent.name if m.parent else "—",
        "collected_elsewhere": lambda v, c, m, n: "是" if m.collected_elsewhere else "",
        "edited_at": beijing_time,
    }
    column_searchable_list = ("code", "name", "office_name")
    column_default_sort = ("code", False)
    page_size = 100

    def is_accessible(self) -> bool:
        return staff.is_administrator(current_user) and staff.is_province_administrator(current_user)

    def scope_clause(self, scope):
        return None if scope.is_everything else Region.id.in_(scope.region_ids)

    def create_form(self, obj=None):
        form = super().create_form(obj)
        form.parent.choices = _parent_choices()
        return form

    def edit_form(self, obj=None):
        form = super().edit_form(obj)
        form.parent.choices = _parent_choices()
        if obj is not None and request.method == "GET":
            form.parent.data = obj.parent_id or 0
        form.code.render_kw = {"readonly": True}
        return form

    def _values(self, form) -> dict:
        parent = db.session.get(Region, form.parent.data) if form.parent.data else None
        return dict(name=form.name.data, kind=form.kind.data, parent=parent, sort_order=form.sort_order.data or 0,
                    collected_elsewhere=bool(form.collected_elsewhere.data), office_name=form.office_name.data,
                    phone=form.phone.data, address=form.address.data, hours=form.hours.data)

    def _guard(self, action) -> bool:
        try:
            action()
        except (PermissionDenied, ValidationError) as error:
            db.session.rollback()
            flash(getattr(error, "message", str(error)), "error")
            return False
        return True

    def create_model(self, form):
        actor = current_user._get_current_object()
        created = []
        if self._guard(lambda: created.append(regions.add_region(db.session, actor, code=form.code.data,
                                                                 **self._values(form)))):
            return created[0]
        return False

    def update_model(self, form, model):
        actor = current_user._get_current_object()
        return self._guard(lambda: regions.update_region(db.session, actor, model, **self._values(form)))

    def delete_model(self, model):
        actor = current_user._get_current_object()
        return self._guard(lambda: regions.delete_region(db.session, actor, model))
