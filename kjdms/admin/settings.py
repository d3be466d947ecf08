"""The collection windows and the legacy confirmation deadline (the province administrator changes them)."""
from __future__ import annotations

from flask import flash, redirect, request, url_for
from flask_admin import expose
from flask_login import current_user

from ..backends import get_config
from ..extensions import db
from ..models import Setting
from ..permissions import PermissionDenied
from ..services import settings, staff
from ..validators import ValidationError
from .base import AdministratorView
from .forms import SettingsForm


class SettingsView(AdministratorView):
    """采集期设置: shows the values in force and where each comes from; POST changes them, audited."""

    def is_accessible(self) -> bool:
        return super().is_accessible() and staff.is_province_administrator(current_user)

    @expose("/", methods=("GET", "POST"))
    def index(self):
        config = get_config()
        now = settings.effective(db.session, config)
        current = {settings.COLLECTION_WINDOWS: settings.windows_text(now.COLLECTION_WINDOWS),
                   settings.CONFIRMATION_DEADLINE: now.CONFIRMATION_DEADLINE.isoformat()}
        form = SettingsForm(request.form if request.method == "POST" else None,
                            collection_windows=current[settings.COLLECTION_WINDOWS],
                            confirmation_deadline=now.CONFIRMATION_DEADLINE)
        if request.method == "POST" and form.validate():
            actor = current_user._get_current_object()
            changed = []
            try:
                for key, text in ((settings.COLLECTION_WINDOWS, form.collection_windows.data),
                                  (settings.CONFIRMATION_DEADLINE, form.confirmation_deadline.data.isoformat())):
                    if settings.change(db.session, actor, key, text, current[key]):
                        changed.append(settings.TITLES[key])
            except ValidationError as error:
                getattr(form, error.field).errors.append(error.message)
            except PermissionDenied as error:
                flash(str(error), "error")
            else:
                flash(f"已保存：{'、'.join(changed)}" if changed else "没有修改", "success")
                return redirect(url_for(".index"))
        stored = {row.key: row for row in db.session.query(Setting)}
        return self.render("admin/kjdms/settings.html", form=form, stored=stored, keys=settings,
                           defaults={settings.COLLECTION_WINDOWS: settings.windows_text(config.COLLECTION_WINDOWS),
                                     settings.CONFIRMATION_DEADLINE: config.CONFIRMATION_DEADLINE.isoformat()})
