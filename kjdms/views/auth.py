"""Sign-up, sign-in (applicants by name and ID number, staff by user name), first password, sign-out."""
from __future__ import annotations

from urllib.parse import urlsplit

from flask import Blueprint, abort, flash, redirect, render_template, request, session, url_for
from flask_login import current_user, login_required, login_user, logout_user
from sqlalchemy import select

from ..backends import get_config, get_workflow
from ..extensions import db
from ..forms import ActionForm, ApplicantLoginForm, RegisterForm, SetPasswordForm, StaffLoginForm
from ..models import Person, User, utcnow
from ..services import login_throttle
from ..services.accounts import hash_password, password_matches, set_password
from ..services.credit import recorders
from ..services.dossiers import register_person
from ..services.worklist import queue_roles
from ..validators import ValidationError, ValidationErrors, normalize_id_number
from ..vocabulary import ARCHIVIST_ROLE
from . import show_errors

bp = Blueprint("auth", __name__)
GENERIC_FAILURE = "姓名、身份证号或密码不正确"
STAFF_FAILURE = "用户名或密码不正确"
PENDING_PASSWORD = "pending_password_user"


def safe_next(default: str) -> str:
    """Return the ?next= target if it stays on this site, else default."""
    target = request.values.get("next") or ""
    parts = urlsplit(target)
    if not target.startswith("/") or target.startswith("//") or parts.scheme or parts.netloc or "\\" in target:
        return default
    if not target.isprintable():
        return default  # a newline cannot go into the Location header: it would fail after signing in
    return target


def home_of(user: User) -> str:
    """Return where a user lands after signing in."""
    if user.is_applicant:
        return url_for("applicant.index")
    roles = {assignment.role for assignment in user.role_assignments}
    workflow = get_workflow()
    # Each role lands on its own work: the queue, the credit files, the archive; anyone else on search.
    for landing_roles, endpoint in ((queue_roles(workflow), "review.worklist"), (recorders(workflow), "credit.index"),
                                    ({ARCHIVIST_ROLE}, "archive.index")):
        if roles & landing_roles:
            return url_for(endpoint)
    return url_for("search.index")


def _sign_in(user: User, account: str):
    login_throttle.clear_account(db.session, get_config().ID_HASH_KEY, account)
    user.last_login_at = utcnow()
    db.session.commit()
    session.clear()  # a fresh session: nothing chosen before signing in carries over
    login_user(user)
    return redirect(safe_next(home_of(user)))


def _throttled(account: str) -> bool:
    if login_throttle.is_locked(db.session, get_config().ID_HASH_KEY, account, request.remote_addr or ""):
        flash(login_throttle.LOCKED_MESSAGE, "danger")
        return True
    return False


def _failed(account: str, message: str):
    login_throttle.record_failure(db.session, get_config().ID_HASH_KEY, account, request.remote_addr or "")
    flash(message, "danger")


@bp.route("/login", methods=["GET", "POST"])
def login():
    """Sign an accounting person in by own name, ID number and password."""
    form, staff_form = ApplicantLoginForm(), StaffLoginForm(prefix="staff")
    if form.validate_on_submit():
        id_number = normalize_id_number(form.id_number.data)
        if not _throttled(id_number):
            person = db.session.scalar(select(Person).where(Person.id_number == id_number))
            user = person.user if person is not None else None
            name_matches = person is not None and person.name == form.name.data.strip()
            if user is not None and user.is_active and name_matches and user.password_hash is None:
                # 二（三）: a person of the old system signs in with name and ID number, then sets a password.
                session[PENDING_PASSWORD] = user.id
                return redirect(url_for("auth.first_password", next=request.values.get("next")))
            if user is not None and user.is_active and name_matches and password_matches(user, form.password.data):
                return _sign_in(user, id_number)
            _failed(id_number, GENERIC_FAILURE)
    status = 200 if request.method == "GET" else 401
    return render_template("auth/login.html", form=form, staff_form=staff_form), status


@bp.route("/login/staff", methods=["POST"])
def staff_login():
    """Sign finance-department staff in by user name and password."""
    form, staff_form = ApplicantLoginForm(formdata=None), StaffLoginForm(prefix="staff")
    if staff_form.validate_on_submit():
        username = staff_form.username.data.strip()
        if not _throttled(username):
            user = db.session.scalar(select(User).where(User.username == username))
            if user is not None and user.is_active and password_matches(user, staff_form.password.data):
                return _sign_in(user, username)
            _failed(username, STAFF_FAILURE)
    return render_template("auth/login.html", form=form, staff_form=staff_form, staff_tab=True), 401


@bp.route("/login/first-password", methods=["GET", "POST"])
def first_password():
    """Let a legacy person whose name and ID number matched set their first password."""
    user = db.session.get(User, session.get(PENDING_PASSWORD) or 0)
    if user is None or user.password_hash is not None:
        abort(404)
    form = SetPasswordForm()
    if form.validate_on_submit():
        try:
            set_password(db.session, user, form.password.data)
        except ValidationError as error:
            form.password.errors.append(error.message)
        else:
            session.pop(PENDING_PASSWORD, None)
            return _sign_in(user, user.person.id_number)
    return render_template("auth/first_password.html", form=form)


@bp.route("/register", methods=["GET", "POST"])
def register():
    """Register a new accounting person with name, ID number and a password."""
    form = RegisterForm()
    if form.validate_on_submit():
        try:
            dossier = register_person(db.session, name=form.name.data, id_number=form.id_number.data,
                                      password_hash=hash_password(form.password.data))
        except ValidationError as error:
            show_errors(form, [error])
        except ValidationErrors as errors:
            show_errors(form, errors.errors)
        else:
            response = _sign_in(dossier.person.user, dossier.person.id_number)
            # After _sign_in: it starts a fresh session, which would drop a message flashed before.
            flash("注册成功，请填写基本信息。", "success")
            return response
    return render_template("auth/register.html", form=form), 200 if request.method == "GET" else 422


@bp.post("/logout")
@login_required
def logout():
    """Sign out."""
    if not ActionForm().validate_on_submit():
        abort(400)
    logout_user()
    session.clear()
    flash("您已退出登录。", "info")
    return redirect(url_for("home.index"))


@bp.app_context_processor
def inject_logout_form():
    """Give every page the sign-out button's form."""
    # Not bound to the request: the 413 page must render without reading the oversize body again.
    return {"logout_form": ActionForm(formdata=None) if current_user.is_authenticated else None}
