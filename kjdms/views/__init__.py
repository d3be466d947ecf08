"""The blueprints, one per module; each renders templates/<module>/. Shared helpers for them live here."""
from __future__ import annotations

from functools import wraps

from flask import abort, flash, request
from flask_login import current_user, login_required


def int_arg(name: str) -> int | None:
    """Return the query argument name as a small non-negative integer, or None for anything else typed there."""
    value = request.args.get(name, "")
    return int(value) if value.isascii() and value.isdigit() and len(value) < 8 else None


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
            if current_user.is_applicant or not any(a.role in allowed for a in current_user.role_assignments):
                abort(403)
            return view(*args, **kwargs)
        return wrapper
    return decorate
