"""Staff accounts and their roles in the back office: create, grant, revoke, disable, enable, reset, list."""
from __future__ import annotations

from flask import abort, flash, redirect, request
from flask_admin import expose
from flask_login import current_user
from markupsafe import Markup, escape

from ..extensions import db
from ..models import Region, RoleAssignment, User
from ..permissions import PermissionDenied
from ..services import staff
from ..services.accounts import PASSWORD_POLICY
from ..services.regions import contact_offices
from ..validators import ValidationError
from ..vocabulary import STAFF_ROLES
from .base import ScopedModelView, beijing_time, current_scope
from .filters import ClauseFilter, DayFilter, IdChoiceFilter, PerRequest
from .forms import AccountForm, ConfirmForm, GrantForm, RoleForm, region_choices


def scope_regions() -> list[Region]:
    """Return the regions of the signed-in administrator's scope, in tree order."""
    scope = current_scope()
    return [region for region in contact_offices(db.session) if scope.covers(region.id)]


def _roles(view, context, model, name):
    return Markup("<br>".join(f"{escape(STAFF_ROLES.get(a.role, a.role))}（{escape(a.region.name)}）"
                              for a in model.role_assignments))


class AccountView(ScopedModelView):
    """工作人员账号: the staff accounts whose office lies in the administrator's scope."""

    list_template = "admin/kjdms/account_list.html"
    details_template = "admin/kjdms/account_details.html"
    can_view_details = True
    can_edit = True
    column_list = ("username", "display_name", "region", "department", "role_assignments", "is_active",
                   "last_login_at")
    column_details_list = ("username", "display_name", "region", "department", "phone", "role_assignments",
                           "is_active", "must_change_password", "created_at", "last_login_at")
    column_labels = {"username": "用户名", "display_name": "姓名", "region": "所属单位", "department": "科室",
                     "phone": "联系电话", "role_assignments": "角色", "is_active": "状态",
                     "must_change_password": "须设置新密码", "created_at": "创建时间", "last_login_at": "最近登录"}
    column_formatters = {
        "region": lambda v, c, m, n: m.region.path_name if m.region else "—",
        "role_assignments": _roles,
        "is_active": lambda v, c, m, n: "已启用" if m.is_active else "已停用",
        "must_change_password": lambda v, c, m, n: "是" if m.must_change_password else "否",
        "created_at": beijing_time, "last_login_at": beijing_time,
    }
    column_formatters_detail = column_formatters
    column_searchable_list = ("username", "display_name")
    column_default_sort = "username"
    column_sortable_list = ("username", "display_name", "last_login_at")
    form_columns = ("display_name", "department", "phone")
    column_filters = (
        IdChoiceFilter(User.region_id, "所属单位", lambda region_id: User.region_id == region_id,
                       options=PerRequest(lambda: region_choices(scope_regions()).items())),
        ClauseFilter(User.id, "角色", lambda role: User.role_assignments.any(RoleAssignment.role == role),
                     options=list(STAFF_ROLES.items())),
        ClauseFilter(User.is_active, "状态", lambda value: User.is_active.is_(value == "1"),
                     options=[("1", "已启用"), ("0", "已停用")]),
        DayFilter(User.last_login_at, "最近登录", since=True),
        DayFilter(User.last_login_at, "最近登录", since=False),
    )

    def scope_clause(self, scope):
        clause = User.username.is_not(None)
        return clause if scope.is_everything else clause & User.region_id.in_(scope.region_ids)

    # Creating: a form of our own, because the one-time password is shown once, on the page answering it.
    @expose("/new/", methods=("GET", "POST"))
    def create_view(self):
        form = AccountForm(request.form if request.method == "POST" else None)
        regions = scope_regions()
        form.region.choices = region_choices(regions)
        if request.method == "POST" and form.validate():
            try:
                region = staff.find_region(db.session, current_scope(), form.region.data)
                user, password = staff.create_account(
                    db.session, current_user._get_current_object(), username=form.username.data,
                    display_name=form.display_name.data, region=region, department=form.department.data,
                    phone=form.phone.data, role=form.role.data or None)
            except staff.OutOfScope:
                abort(404)
            except PermissionDenied as error:
                flash(str(error), "error")
            except ValidationError as error:
                getattr(form, error.field, form.username).errors.append(error.message)
            else:
                return self.render("admin/kjdms/password_once.html", user=user, password=password,
                                   created=True, policy=PASSWORD_POLICY)
        return self.render("admin/kjdms/account_create.html", form=form)

    def update_model(self, form, model):
        try:
            staff.update_profile(db.session, current_user._get_current_object(), model,
                                 display_name=form.display_name.data, department=form.department.data,
                                 phone=form.phone.data)
        except (PermissionDenied, ValidationError) as error:
            db.session.rollback()
            flash(getattr(error, "message", str(error)), "error")
            return False
        return True

    @expose("/details/")
    def details_view(self):
        user = self.get_one(request.args.get("id", ""))
        grant = GrantForm()
        grant.region.choices = region_choices(scope_regions())
        return self.render(self.details_template, model=user, grant_form=grant, action_form=ConfirmForm(),
                           role_form=RoleForm, roles=STAFF_ROLES, return_url=self.get_url(".index_view"),
                           details_columns=self._details_columns, get_value=self.get_detail_value)

    def _account_or_404(self) -> User:
        return self.get_one(request.args.get("id", ""))

    def _back(self, user: User):
        return redirect(self.get_url(".details_view", id=user.id))

    def _act(self, user: User, action, done: str):
        try:
            result = action()
        except staff.OutOfScope:
            abort(404)
        except (PermissionDenied, ValidationError) as error:
            flash(getattr(error, "message", str(error)), "error")
            return self._back(user)
        flash(done, "success")
        return result

    @expose("/grant/", methods=("POST",))
    def grant_view(self):
        user = self._account_or_404()
        form = GrantForm(request.form)
        form.region.choices = region_choices(scope_regions())
        if not form.validate():
            abort(404)  # a region outside the scope is not among the choices: as good as none
        actor = current_user._get_current_object()
        try:
            region = staff.find_region(db.session, current_scope(), form.region.data)
        except staff.OutOfScope:
            abort(404)
        self._act(user, lambda: staff.grant_role(db.session, actor, user, form.role.data, region),
                  f"已授予{STAFF_ROLES[form.role.data]}（{region.name}）")
        return self._back(user)

    @expose("/revoke/", methods=("POST",))
    def revoke_view(self):
        user = self._account_or_404()
        form = RoleForm(request.form)
        region_id = form.region.data or ""
        try:
            region = staff.find_region(db.session, current_scope(),
                                       int(region_id) if region_id.isdigit() and len(region_id) < 10 else None)
        except staff.OutOfScope:
            abort(404)
        if not form.validate():
            abort(400)
        actor = current_user._get_current_object()
        self._act(user, lambda: staff.revoke_role(db.session, actor, user, form.role.data, region),
                  f"已取消{STAFF_ROLES.get(form.role.data, '')}（{region.name}），该账号已被强制退出登录")
        return self._back(user)

    def _toggle(self, active: bool):
        user = self._account_or_404()
        if not ConfirmForm(request.form).validate():
            abort(400)
        actor = current_user._get_current_object()
        self._act(user, lambda: staff.set_active(db.session, actor, user, active),
                  "账号已启用" if active else "账号已停用，该账号的所有登录已立即失效")
        return self._back(user)

    @expose("/disable/", methods=("POST",))
    def disable_view(self):
        return self._toggle(False)

    @expose("/enable/", methods=("POST",))
    def enable_view(self):
        return self._toggle(True)

    @expose("/reset-password/", methods=("POST",))
    def reset_view(self):
        user = self._account_or_404()
        if not ConfirmForm(request.form).validate():
            abort(400)
        actor = current_user._get_current_object()
        try:
            password = staff.reset_password(db.session, actor, user)
        except staff.OutOfScope:
            abort(404)
        except PermissionDenied as error:
            flash(str(error), "error")
            return self._back(user)
        return self.render("admin/kjdms/password_once.html", user=user, password=password, created=False,
                           policy=PASSWORD_POLICY)
