"""Sign-up, sign-in (applicants by name and ID number, staff by user name), first password, sign-out."""
from __future__ import annotations

from urllib.parse import urlsplit

from flask import Blueprint, abort, flash, make_response, redirect, render_template, request, session, url_for
from flask_login import current_user, login_required, login_user, logout_user
from sqlalchemy import select
from wtforms.widgets import PasswordInput

from ..backends import get_config, get_workflow
from ..extensions import db
from ..forms import ActionForm, ApplicantLoginForm, RegisterForm, SetPasswordForm, StaffLoginForm
from ..models import Person, User, utcnow
from ..names import normalize_name
from ..services import login_throttle, sessions
from ..services.accounts import PASSWORD_POLICY, check_password, hash_password, password_matches, set_password
from ..services.credit import recorders
from ..services.dossiers import register_person, registration_errors
from ..services.worklist import queue_roles
from ..validators import ValidationError, ValidationErrors, normalize_id_number
from ..vocabulary import ADMINISTRATOR_ROLE, ARCHIVIST_ROLE
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
    # Each role lands on its own work: the back office, the queue, the dossiers to record findings on, the
    # archive; anyone else on search.
    for landing_roles, endpoint in (({ADMINISTRATOR_ROLE}, "admin.index"), (queue_roles(workflow), "review.worklist"),
                                    (recorders(workflow), "credit.dossiers"), ({ARCHIVIST_ROLE}, "archive.index")):
        if roles & landing_roles:
            return url_for(endpoint)
    return url_for("search.index")


def _sign_in(user: User, account: str):
    login_throttle.clear_account(db.session, get_config().ID_HASH_KEY, account, request.remote_addr or "")
    user.last_login_at = utcnow()
    db.session.commit()
    session.clear()  # a fresh session: nothing chosen before signing in carries over
    login_user(user)
    sessions.start_session(session, user)
    if user.must_change_password:
        return redirect(url_for("auth.change_password", next=safe_next(home_of(user))))
    return redirect(safe_next(home_of(user)))


def _throttled(account: str) -> bool:
    secret = get_config().ID_HASH_KEY
    if login_throttle.is_locked(db.session, secret, account, request.remote_addr or ""):
        flash(login_throttle.LOCKED_MESSAGE, "danger")
        return True
    # Guessed at from elsewhere: slower, never refused, so nobody can lock the real user out.
    login_throttle.pause(login_throttle.delay_seconds(db.session, secret, account))
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
            name_matches = person is not None and person.name == normalize_name(form.name.data)
            if user is not None and user.is_active and name_matches and user.password_hash is None:
                # 二（三）: a person of the old system signs in with name and ID number, then sets a password.
                session[PENDING_PASSWORD] = user.id
                return redirect(url_for("auth.first_password", next=request.values.get("next")))
            # Checked whoever it is: a miss must cost what a wrong password costs.
            matches = password_matches(user if name_matches else None, form.password.data)
            if user is not None and user.is_active and matches:
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
            if password_matches(user, staff_form.password.data) and user.is_active:
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
    if form.validate_on_submit() and _password_set(user, form):
        session.pop(PENDING_PASSWORD, None)
        return _sign_in(user, user.person.id_number)
    return render_template("auth/first_password.html", form=form)


def _password_set(user: User, form: SetPasswordForm) -> bool:
    """Set the password chosen in form, or attach why it was refused to the field."""
    try:
        set_password(db.session, user, form.password.data)
    except ValidationError as error:
        form.password.errors.append(error.message)
        return False
    return True


@bp.route("/account/password", methods=["GET", "POST"])
@login_required
def change_password():
    """Make a staff user who signed in with a one-time password choose their own."""
    user = current_user._get_current_object()
    if not user.must_change_password:
        abort(404)
    form = SetPasswordForm()
    if form.validate_on_submit() and _password_set(user, form):
        # The password changed, so every session ended (services/sessions.py): this one starts afresh.
        response = _sign_in(user, user.username)
        flash("密码已设置。", "success")
        return response
    return render_template("auth/change_password.html", form=form, policy=PASSWORD_POLICY)


@bp.before_app_request
def insist_on_own_password():
    """Let a user holding a one-time password do nothing but choose their own (and sign out)."""
    if (current_user.is_authenticated and current_user.must_change_password
            and request.endpoint not in ("auth.change_password", "auth.logout", "static", "bootstrap.static")):
        return redirect(url_for("auth.change_password"))
    return None


@bp.route("/register", methods=["GET", "POST"])
def register():
    """Register a new accounting person with name, ID number and a password, naming every mistake at once."""
    form = RegisterForm()
    if request.method == "GET":
        return render_template("auth/register.html", form=form)
    form.validate_on_submit()  # CSRF is checked before the view; this collects the form's own errors
    if not form.password.errors:
        try:
            check_password(form.password.data or "")
        except ValidationError as error:
            form.password.errors.append(error.message)
    if not (form.name.errors or form.id_number.errors):
        # Whether an ID number is registered is asked only of a form right in every other respect, and each
        # asking counts against the address's limit: the answer must not serve to enumerate who has registered.
        ready = not any(field.errors for field in form)
        if ready and not login_throttle.registration_allowed(db.session, get_config().ID_HASH_KEY,
                                                             request.remote_addr or ""):
            flash(login_throttle.REGISTRATION_MESSAGE, "danger")
            return render_template("auth/register.html", form=form), 429
        show_errors(form, registration_errors(db.session, name=form.name.data, id_number=form.id_number.data,
                                              registry=ready))
    if any(field.errors for field in form):
        return _registration_refused(form)
    try:
        dossier = register_person(db.session, name=form.name.data, id_number=form.id_number.data,
                                  password_hash=hash_password(form.password.data))
    except ValidationErrors as errors:  # registered by someone else a moment ago
        show_errors(form, errors.errors)
        return _registration_refused(form)
    response = _sign_in(dossier.person.user, dossier.person.id_number)
    # After _sign_in: it starts a fresh session, which would drop a message flashed before.
    flash("注册成功，请填写基本信息。", "success")
    return response


def _registration_refused(form: RegisterForm):
    """Show the form again with every error; keep passwords that were fine, so only mistakes are retyped."""
    keep = not (form.password.errors or form.password_confirm.errors)
    if keep:
        for field in (form.password, form.password_confirm):
            field.widget = PasswordInput(hide_value=False)
    response = make_response(render_template("auth/register.html", form=form, keep_passwords=keep), 422)
    # The kept password is in this page: no cache, history or proxy may store it.
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.post("/logout")
@login_required
def logout():
    """Sign out, ending every session of this user (a copy of the cookie taken earlier stops working too)."""
    if not ActionForm().validate_on_submit():
        abort(400)
    sessions.end_all_sessions(db.session, current_user._get_current_object())
    db.session.commit()
    logout_user()
    session.clear()
    flash("您已退出登录。", "info")
    return redirect(url_for("home.index"))

