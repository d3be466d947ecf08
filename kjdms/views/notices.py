"""The notices page of every signed-in user (applicants and staff): read them, mark them read, the e-mail address."""
from __future__ import annotations

from flask import Blueprint, abort, flash, g, redirect, render_template, request, url_for
from flask_login import current_user, login_required

from ..backends import backends
from ..extensions import db
from ..forms import ActionForm, NoticeEmailForm
from ..models import Notification
from ..services import notices
from ..services.worklist import clamp_page
from ..validators import ValidationError
from ..vocabulary import NOTICE_KINDS
from . import int_arg

bp = Blueprint("notices", __name__, url_prefix="/notices")


@bp.get("/")
@login_required
def index():
    """List the user's notices, newest first, the unread ones marked."""
    return _page(NoticeEmailForm(formdata=None, email=current_user.email or ""))


def _page(email_form, status: int = 200):
    """Render the notices page with email_form as given (with its errors, after a refused address)."""
    total = notices.count_of(db.session, current_user)
    page, pages = clamp_page(int_arg("page") or 1, total, notices.PAGE_SIZE)
    rows = notices.notices_of(db.session, current_user, page)
    return render_template("notices/index.html", notices=rows, page=page, pages=pages, total=total,
                           kinds=NOTICE_KINDS, action_form=ActionForm(), email_form=email_form,
                           email_on=backends().mailer is not None), status


@bp.post("/<int:notice_id>/read")
@login_required
def read(notice_id: int):
    """Mark one of the user's notices read; another user's (or no) notice is a 404."""
    if not ActionForm().validate_on_submit():
        abort(400)
    if not notices.mark_read(db.session, current_user, notice_id) and not _owns(notice_id):
        abort(404)
    return redirect(url_for("notices.index"))


def _owns(notice_id: int) -> bool:
    """Tell whether notice_id is one of the current user's notices (already read ones included)."""
    notice = db.session.get(Notification, notice_id)
    return notice is not None and notice.user_id == current_user.id


@bp.post("/read-all")
@login_required
def read_all():
    """Mark every notice of the user read."""
    if not ActionForm().validate_on_submit():
        abort(400)
    changed = notices.mark_read(db.session, current_user)
    flash(f"已将 {changed} 条通知标为已读。" if changed else "没有未读通知。", "success" if changed else "info")
    return redirect(url_for("notices.index"))


@bp.post("/email")
@login_required
def email():
    """Set or clear the address the user's notices are also e-mailed to."""
    form = NoticeEmailForm()
    if not form.validate_on_submit():
        return _page(form, 400)
    try:
        address = notices.set_email(db.session, current_user, form.email.data)
    except ValidationError as error:
        db.session.rollback()
        form.email.errors = [*form.email.errors, error.message]
        return _page(form, 400)
    flash(f"通知将同时发送到 {address}。" if address else "已不再通过电子邮件发送通知。", "success")
    return redirect(url_for("notices.index"))


def remember_unread_count(count: int) -> None:
    """Keep, for this request only, the unread count the user loader read with the user."""
    g.unread_notices_at_login = count


@bp.app_context_processor
def unread_notices() -> dict:
    """Give every page the signed-in user's count of unread notices, for the navigation."""
    if not current_user.is_authenticated:
        return {"unread_notices": 0}
    # A GET changes no notice, so the count read with the user still holds; a POST that renders (a form sent
    # back with its errors, a notice marked read) counts again after its changes.
    if request.method in ("GET", "HEAD") and "unread_notices_at_login" in g:
        return {"unread_notices": g.unread_notices_at_login}
    return {"unread_notices": notices.unread_count(db.session, current_user)}
