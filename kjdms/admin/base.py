"""The one secure, scope-aware base of every back-office view: lists, counts, filters, exports and pages agree."""
from __future__ import annotations

from flask import abort, redirect, request, url_for
from flask_admin import AdminIndexView, BaseView
from flask_admin.contrib.sqla import ModelView
from flask_admin.form import BaseForm
from flask_login import current_user
from flask_wtf import FlaskForm

from ..forms import control_characters_refused
from ..local_time import local_text
from ..services import staff


class SecureForm(BaseForm):
    """Flask-Admin's form with the site's CSRF token (flask-wtf), so one token and one check guard every POST."""

    class Meta(FlaskForm.Meta):
        pass

    def validate(self, extra_validators=None) -> bool:
        """Validate as usual, then refuse control characters in any field, naming it, as the site's forms do."""
        valid = super().validate(extra_validators)
        return not control_characters_refused(self) and valid


def current_scope() -> staff.Scope:
    """Return the signed-in administrator's scope."""
    from ..extensions import db

    return staff.scope_of(db.session, current_user._get_current_object())


def refuse():
    """Send the anonymous to sign in; anyone else who is not an administrator gets 403."""
    if not current_user.is_authenticated:
        return redirect(url_for("auth.login", next=request.full_path))
    abort(403)


class AdministratorOnly:
    """Open only to signed-in staff holding administrator somewhere."""

    def is_accessible(self) -> bool:
        return staff.is_administrator(current_user)

    def inaccessible_callback(self, name, **kwargs):
        return refuse()


def beijing_time(view, context, model, name) -> str:
    """Show a stored UTC time as Beijing time."""
    return local_text(getattr(model, name))


class ScopedModelView(AdministratorOnly, ModelView):
    """A ModelView whose every query passes through scope_clause: outside the scope nothing exists (404)."""

    form_base_class = SecureForm
    can_delete = False
    can_export = False
    can_set_page_size = False
    page_size = 50
    details_modal = edit_modal = create_modal = False

    def scope_clause(self, scope: staff.Scope):
        """Return the SQL condition of the rows scope may see (None: every row)."""
        raise NotImplementedError

    def _scoped(self, query):
        clause = self.scope_clause(current_scope())
        return query if clause is None else query.filter(clause)

    def get_query(self):
        return self._scoped(super().get_query())

    def get_count_query(self):
        return self._scoped(super().get_count_query())

    def get_one(self, id):
        row = None
        if isinstance(id, str) and id.isascii() and id.isdigit() and len(id) < 10:
            row = self._scoped(super().get_query().filter(self.model.id == int(id))).one_or_none()
        if row is None:
            abort(404)
        return row


class ScopedIndexView(AdministratorOnly, AdminIndexView):
    """The back office's first page, open only to administrators."""


class AdministratorView(AdministratorOnly, BaseView):
    """A plain back-office page for administrators."""
