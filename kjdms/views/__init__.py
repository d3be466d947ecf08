"""The blueprints, one per module; each renders templates/<module>/. Shared helpers for them live here."""
from __future__ import annotations

from dataclasses import dataclass
from functools import cache, wraps

from flask import abort, flash, request, url_for
from flask_login import current_user, login_required
from sqlalchemy import bindparam, select

from ..backends import get_workflow
from ..extensions import db
from ..forms import TransitionForm
from ..models import Dossier
from ..permissions import can, holds_any_role
from ..services.lifecycle import fire_transition
from ..services.transaction import ConflictError
from ..workflow import TransitionRefused

MAX_ID = 2**31 - 1  # the integer primary keys' range on PostgreSQL


def int_arg(name: str) -> int | None:
    """Return the query argument name as a small non-negative integer, or None for anything else typed there."""
    value = request.args.get(name, "")
    return int(value) if value.isascii() and value.isdigit() and len(value) < 8 else None


def id_link_prefix(endpoint: str, argument: str) -> str:
    """Return the address of endpoint without the trailing integer argument, for a list to append each row's id.

    Building an address costs tens of microseconds; a page of fifty rows builds one instead of fifty.
    """
    start, end = around_id(endpoint, argument)
    if end:
        raise ValueError(f"{endpoint}: {argument} is not the last part of its address")
    return start


def around_id(endpoint: str, argument: str) -> tuple[str, str]:
    """Return what the address of endpoint has before and after its integer argument."""
    # No other part of an address is this number (the largest id).
    address, marker = url_for(endpoint, **{argument: MAX_ID}), str(MAX_ID)
    if address.count(marker) != 1:
        raise ValueError(f"{endpoint}: {argument} cannot be told apart in its address")
    start, end = address.split(marker)
    return start, end


def show_errors(form, errors) -> None:
    """Attach each service ValidationError to its form field, or flash it when the form has no such field."""
    for error in errors:
        field = getattr(form, error.field, None)
        if field is not None and hasattr(field, "errors"):
            if isinstance(field.errors, tuple):
                field.errors = list(field.errors)
            field.errors.append(error.message)
        else:
            flash(error.message, "danger")


def applicant_required(view):
    """Let only a signed-in accounting person through; staff get 403."""
    @wraps(view)
    @login_required
    def wrapper(*args, **kwargs):
        if not current_user.is_applicant:
            abort(403)
        return view(*args, **kwargs)
    return wrapper


def staff_role_required(*roles):
    """Let only signed-in staff holding one of roles somewhere through; others get 403.

    Roles may be one callable instead, asked on each request: roles the workflow file names.
    """
    def decorate(view):
        @wraps(view)
        @login_required
        def wrapper(*args, **kwargs):
            allowed = roles[0]() if len(roles) == 1 and callable(roles[0]) else roles
            if not holds_any_role(current_user, allowed):
                abort(403)
            return view(*args, **kwargs)
        return wrapper
    return decorate


def dossier_or_404(dossier_id: int, permission="view", options=()) -> Dossier:
    """Return the dossier if the signed-in staff user holds permission on it; 404 otherwise, revealing nothing.

    permission is a workflow permission, or a test taking (workflow, user, dossier); options are loader options
    for what the page shows of it.
    """
    return dossier_row_or_404(dossier_id, permission, options)[0]


def dossier_row_or_404(dossier_id: int, permission="view", options=(), columns=()) -> tuple:
    """Return (dossier, the value of each of columns read in the same select) as dossier_or_404 allows; 404 otherwise.

    columns are SQL expressions over the dossier (a count of its person's records): a statement saved.
    """
    # A number past the id column's range names nothing (and SQLite could not even bind it).
    row = (db.session.execute(dossier_by_id(tuple(options), tuple(columns)), {"id": dossier_id}).unique().one_or_none()
           if 0 < dossier_id <= MAX_ID else None)
    dossier = row[0] if row is not None else None
    allowed = permission if callable(permission) else (
        lambda workflow, user, record: can(workflow, user, permission, record))
    user = current_user._get_current_object()  # not the proxy: the check reads the user a dozen times
    if dossier is None or user.is_applicant or not allowed(get_workflow(), user, dossier):
        abort(404)
    return tuple(row)


@cache
def dossier_by_id(options: tuple, columns: tuple = ()):
    """Return the select of one dossier by id (and columns) with loader options, built once per options."""
    # A page's options are module constants; building the select and its cache key cost more than running it.
    return select(Dossier, *columns).options(*options).where(Dossier.id == bindparam("id"))


@dataclass
class TransitionPost:
    """What posting a transition came to: 200 fired; 409 the page was stale; 422 refused or a bad field."""

    status: int
    form: TransitionForm

    @property
    def fired(self) -> bool:
        """Tell whether the transition was fired and committed."""
        return self.status == 200


def post_transition(dossier: Dossier, name: str, form: TransitionForm, *, comment: str | None = None,
                    comment_label: str = "意见", flagged=()) -> TransitionPost:
    """Fire transition name on dossier from a posted TransitionForm, with the same checks and messages on every page.

    A form without the numeric version of the page it came from was not sent by a page: 400. A bad
    field or a refused comment is put on the form; other refusals and conflicts are flashed.
    """
    if not (form.lock_version.data or "").isdigit():
        abort(400)
    if not form.validate_on_submit():
        return TransitionPost(422, form)
    typed = comment if comment is not None else (form.comment.data or "").strip()
    try:
        fire_transition(db.session, get_workflow(), dossier, name, current_user, typed or None,
                        expected_version=int(form.lock_version.data), flagged=flagged)
    except ConflictError as error:
        flash(str(error), "danger")
        db.session.expire_all()  # the page shows the dossier as it now stands
        return TransitionPost(409, form)
    except TransitionRefused as error:
        if error.field == "comment":
            form.comment.errors = [f"{comment_label}：{error.message}"]
        elif error.field == "fields" and hasattr(form, "fields"):
            form.fields.errors = [error.message]
        else:
            flash(error.message, "danger")
        return TransitionPost(422, form)
    return TransitionPost(200, form)
