"""The back office at /admin/ (Flask-Admin, in Chinese): staff accounts, regions, settings, API clients, the audit log."""
from __future__ import annotations

from flask import Flask, request
from flask_admin import Admin, expose
from flask_admin.theme import Bootstrap4Theme
from flask_babel import Babel
from flask_login import current_user

from ..extensions import db
from ..models import ApiClient, AuditEvent, Region, User
from ..vocabulary import ADMINISTRATOR_ROLE
from .accounts import AccountView
from .api_clients import ApiClientView
from .audit import AuditView
from .base import ScopedIndexView, current_scope
from .policy import back_office_policy, csp_nonce
from .regions import RegionView
from .settings import SettingsView

# Flask-Admin's buttons, messages and WTForms' errors come from their own Chinese catalogues.
LOCALE = "zh_Hans_CN"


class HomeView(ScopedIndexView):
    """后台首页: the administrator's scope, and what each part of the back office is for."""

    @expose("/")
    def index(self):
        from ..services.staff import staff_in_scope
        from sqlalchemy import func, select

        scope = current_scope()
        count = db.session.scalar(select(func.count()).select_from(staff_in_scope(scope).subquery()))
        tops = [a.region for a in current_user.role_assignments if a.role == ADMINISTRATOR_ROLE]
        return self.render("admin/kjdms/home.html", tops=tops, staff_count=count)


def init_admin(app: Flask) -> Admin:
    """Mount the back office on app (a new Admin and new views per application)."""
    Babel(app, locale_selector=lambda: LOCALE, timezone_selector=lambda: "Asia/Shanghai")
    # Flask-Admin puts the nonce on its own script and link tags; csp_nonce() gives it to a template's inline script.
    admin = Admin(app, name="后台管理", theme=Bootstrap4Theme(base_template="admin/kjdms/base.html"),
                  index_view=HomeView(name="首页", url="/admin", endpoint="admin"), csp_nonce_generator=csp_nonce)
    app.add_template_global(csp_nonce)
    admin.add_view(AccountView(User, db, name="工作人员账号", endpoint="accounts"))
    admin.add_view(RegionView(Region, db, name="地区与咨询电话", endpoint="regions"))
    admin.add_view(SettingsView(name="采集期设置", endpoint="settings"))
    admin.add_view(ApiClientView(ApiClient, db, name="API 调用方", endpoint="api_clients", url="/admin/api-clients"))
    admin.add_view(AuditView(AuditEvent, db, name="审计日志", endpoint="audit"))

    @app.after_request
    def back_office_script_policy(response):
        # Script only from files or with this response's nonce (policy.py); other pages keep views/home.py's PAGE_POLICY.
        if request.path == "/admin" or request.path.startswith("/admin/"):
            response.headers["Content-Security-Policy"] = back_office_policy()
        return response

    return admin
