"""The archivist's pages: their dossiers, a dossier's whole record, its past, archiving and the archival package."""
from __future__ import annotations

import tempfile
from datetime import date

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required

from ..backends import get_blob_store, get_signing_key, get_workflow
from ..extensions import db
from ..forms import ActionForm, TransitionForm
from ..models import Dossier
from ..permissions import roles_on
from ..services import disclosures
from ..services.archive import ARCHIVIST_ROLE, PackageError, archive_states, archivist_dossiers, write_package
from ..local_time import local_today
from ..services.revisions import dossier_as_of, shown_fields
from ..vocabulary import ATTACHMENT_SLOTS, DOSSIER_LABELS
from . import dossier_or_404, int_arg, post_transition, staff_role_required
from .files import measured, zip_download

bp = Blueprint("archive", __name__, url_prefix="/archive")
ARCHIVE = "archive"
REASON_REQUIRED = "归档原因：必填，如“已不再从事会计工作”"
DATE_FORMAT_ERROR = "日期：请按“年-月-日”填写，如 2020-06-30"
FUTURE_DATE_ERROR = "日期：不能晚于今天"


@bp.get("/")
@staff_role_required(ARCHIVIST_ROLE)
def index():
    """List the approved and archived dossiers of the archivist's regions, filtered by state."""
    workflow = get_workflow()
    state = request.args.get("state") or None
    if state is not None and state not in archive_states(workflow):
        state = None
    listing = archivist_dossiers(db.session, workflow, current_user, state=state, page=int_arg("page") or 1)
    return render_template("archive/index.html", listing=listing, state=state, workflow=workflow)


def archivable(dossier_id: int) -> Dossier:
    """Return the dossier if the current user is its archivist and may view it; 404 otherwise, revealing nothing."""
    dossier = dossier_or_404(dossier_id)
    if dossier.is_working_copy or ARCHIVIST_ROLE not in roles_on(current_user, dossier):
        abort(404)
    return dossier


def _render(dossier: Dossier, form: TransitionForm | None = None, status: int = 200):
    workflow = get_workflow()
    transitions = [t for t in workflow.available_transitions(dossier, roles_on(current_user, dossier))
                   if t.name == ARCHIVE]
    return render_template(
        "archive/dossier.html", dossier=dossier, workflow=workflow, labels=DOSSIER_LABELS, slots=ATTACHMENT_SLOTS,
        form=form or TransitionForm(lock_version=dossier.lock_version), action_form=ActionForm(),
        can_archive=bool(transitions), today=local_today(),
    ), status


@bp.get("/<int:dossier_id>")
@login_required
def dossier(dossier_id):
    """Show the whole record: every field, every version of every document, the full history."""
    return _render(archivable(dossier_id))


@bp.get("/<int:dossier_id>/as-of")
@login_required
def as_of(dossier_id):
    """Show the dossier as it stood at the end of the given day (Beijing time)."""
    record = archivable(dossier_id)
    asked, error, then = (request.args.get("date") or "").strip(), None, None
    today = local_today()
    if asked:
        try:
            day = date.fromisoformat(asked) if len(asked) == 10 else None
        except ValueError:
            day = None
        if day is None:
            error = DATE_FORMAT_ERROR
        elif day > today:
            error = FUTURE_DATE_ERROR
        else:
            then = dossier_as_of(db.session, record, day)
    return render_template(
        "archive/as_of.html", dossier=record, workflow=get_workflow(), asked=asked[:10], error=error, then=then,
        fields=shown_fields(db.session, then.fields) if then is not None and then.found else [],
        slots=ATTACHMENT_SLOTS, today=today,
    ), 422 if error else 200


@bp.post("/<int:dossier_id>/archive")
@login_required
def archive(dossier_id):
    """Archive the dossier with a reason; a page based on a stale version is refused as a conflict."""
    record = archivable(dossier_id)
    form = TransitionForm()
    # The workflow lets the reason be empty; the archive asks for one before anything is checked further.
    if (form.lock_version.data or "").isdigit() and not (form.comment.data or "").strip():
        form.comment.errors = [REASON_REQUIRED]
        return _render(record, form=form, status=422)
    posted = post_transition(record, ARCHIVE, form, comment_label="归档原因")
    if posted.status == 409:
        current = db.session.get(Dossier, dossier_id)
        return _render(current, form=TransitionForm(formdata=None, comment=form.comment.data,
                                                    lock_version=current.lock_version), status=409)
    if not posted.fired:
        return _render(record, form=form, status=posted.status)
    flash(f"已归档：{record.person.name}（{record.number}）", "success")
    return redirect(url_for("archive.dossier", dossier_id=record.id))


@bp.post("/<int:dossier_id>/package")
@login_required
def package(dossier_id):
    """Send the dossier's archival package (ZIP) and write who took it to the audit log."""
    record = archivable(dossier_id)
    if not ActionForm().validate_on_submit():
        abort(400)
    # On disk, not in memory: a package holds every version of every document.
    spool = tempfile.TemporaryFile()
    try:
        manifest = write_package(db.session, get_blob_store(), get_workflow(), record, spool,
                                 generated_by=current_user.label, signing_key=get_signing_key())
    except PackageError as error:
        spool.close()
        flash(f"档案包未能生成：{error}。请联系系统管理员运行 kjdms blobs verify 检查存储。", "danger")
        return _render(record, status=500)
    size, sha256 = measured(spool)
    disclosures.package_exported(db.session, current_user, record, files=len(manifest["files"]),
                                 sha256=sha256, size=size)
    return zip_download(spool, size, f"{record.number}-档案包.zip", f"{record.number}.zip")
