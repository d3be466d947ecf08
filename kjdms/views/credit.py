"""The credit officers' pages: a person's credit file, recording a finding, correcting or revoking one, the PDF."""
from __future__ import annotations

from datetime import datetime

from flask import Blueprint, Response, abort, flash, redirect, render_template, url_for
from flask_login import current_user, login_required
from sqlalchemy import select

from ..backends import get_config, get_workflow
from ..documents.credit_file import credit_file_pdf
from ..extensions import db
from ..forms import ActionForm, CreditRecordForm, RevokeForm
from ..models import AttachmentVersion, CreditRecord, Dossier, Person
from ..permissions import PermissionDenied, can
from ..services import disclosures
from ..services.credit import (CreditRefused, correct_record, credit_file, credit_files_page, evidence_choices,
                               file_keepers, live_count, may_record, may_view, record_finding, recordable_dossiers_page,
                               recorders, revoke_record)
from ..validators import ValidationErrors
from ..vocabulary import ATTACHMENT_SLOTS, CREDIT_ACTIONS, CREDIT_KINDS
from . import dossier_or_404, int_arg, show_errors, staff_role_required
from .files import download_response
from ..local_time import BEIJING
from .filters import local_time

bp = Blueprint("credit", __name__, url_prefix="/credit")


def _version_label(version: AttachmentVersion) -> str:
    current = " （当前版本）" if version.attachment.current is version else ""
    return (f"{ATTACHMENT_SLOTS[version.attachment.slot].title} 第{version.number}版{current} · "
            f"{version.original_filename or '（无文件名）'} · {local_time(version.uploaded_at)} · "
            f"SHA-256 {version.sha256[:12]}…")


def _record_form(dossier: Dossier, **data) -> CreditRecordForm:
    form = CreditRecordForm(**data)
    form.evidence.choices = {str(version.id): _version_label(version) for version in evidence_choices(dossier)}
    return form


def viewable(dossier_id: int) -> Dossier:
    """Return the dossier if the current user may read its person's credit file; 404 otherwise, revealing nothing."""
    return dossier_or_404(dossier_id, may_view)


def recordable(dossier_id: int) -> Dossier:
    """Return the dossier if the current user may write to its person's credit file (403 when they may only read)."""
    dossier = viewable(dossier_id)
    if not may_record(get_workflow(), current_user, dossier):
        abort(403)
    return dossier


def downloadable_versions(chains, user) -> set[int]:
    """Return the ids of the evidence versions that still exist and that user may download."""
    ids = {item["version_id"] for chain in chains for record in chain.records for item in record.evidence}
    if not ids:
        return set()
    versions = db.session.scalars(select(AttachmentVersion).where(AttachmentVersion.id.in_(ids))).all()
    return {version.id for version in versions if can(get_workflow(), user, "view", version.attachment.dossier)}


def _render(dossier: Dossier, form: CreditRecordForm | None = None, status: int = 200):
    chains = credit_file(db.session, dossier.person_id)
    writable = may_record(get_workflow(), current_user, dossier)
    return render_template(
        "credit/file.html", dossier=dossier, chains=chains, may_record=writable,
        form=(form or _record_form(dossier)) if writable else None, action_form=ActionForm(),
        downloadable=downloadable_versions(chains, current_user), workflow=get_workflow(),
        live=sum(1 for chain in chains if chain.live),
        dossier_viewable=can(get_workflow(), current_user, "view", dossier),
    ), status


# Fixed for the process: built once, not on every page.
CREDIT_VOCABULARY = {"credit_kinds": CREDIT_KINDS, "credit_actions": CREDIT_ACTIONS,
                     "slot_titles": {code: slot.title for code, slot in ATTACHMENT_SLOTS.items()}}


@bp.app_context_processor
def credit_vocabulary() -> dict:
    """Give templates the Chinese names a credit record's codes show as."""
    return CREDIT_VOCABULARY


@bp.app_template_global()
def credit_summary(dossier: Dossier, roles: frozenset[str], live: int | None = None) -> dict:
    """Return, for the review page, the live records of dossier's person and what the current user (holding roles
    on dossier) may do; live is their count when the page read it with the dossier."""
    workflow, user = get_workflow(), current_user._get_current_object()
    readable = may_view(workflow, user, dossier, roles)
    if readable and live is None:
        live = live_count(db.session, dossier.person_id)
    return {"live": live if readable else 0, "may_view": readable,
            "may_record": readable and may_record(workflow, user, dossier, roles)}


@bp.app_template_global()
def own_live_credit_count() -> int:
    """Return, for the applicant's page, how many live records the signed-in person's credit file holds."""
    return live_count(db.session, current_user.person_id) if current_user.is_applicant else 0


@bp.get("/")
@staff_role_required(lambda: file_keepers(get_workflow()))
def index():
    """List the credit files of the user's regions, the latest recorded first."""
    listing = credit_files_page(db.session, get_workflow(), current_user, page=int_arg("page") or 1)
    return render_template("credit/index.html", listing=listing, workflow=get_workflow())


@bp.get("/dossiers")
@staff_role_required(lambda: recorders(get_workflow()))
def dossiers():
    """List the dossiers of the officer's regions on which a finding may be recorded, the latest handled first."""
    listing = recordable_dossiers_page(db.session, get_workflow(), current_user, page=int_arg("page") or 1)
    return render_template("credit/dossiers.html", listing=listing, workflow=get_workflow())


@bp.get("/dossier/<int:dossier_id>")
@login_required
def dossier_file(dossier_id):
    """Show the credit file of the dossier's person and, to its credit officers, the form to record a finding."""
    return _render(viewable(dossier_id))


@bp.post("/dossier/<int:dossier_id>/record")
@login_required
def record(dossier_id):
    """Record a finding; on a bad field, show the form again with the Chinese error beside it."""
    dossier = recordable(dossier_id)
    form = _record_form(dossier)
    if not form.validate_on_submit():
        return _render(dossier, form, 422)
    try:
        saved = record_finding(
            db.session, get_workflow(), dossier, current_user, kind=form.kind.data, finding=form.finding.data,
            legal_basis=form.legal_basis.data, evidence=form.evidence.data or [], found_on=form.found_on.data,
            id_hash_key=get_config().ID_HASH_KEY)
    except ValidationErrors as errors:
        show_errors(form, errors.errors)
        return _render(dossier, form, 422)
    except (CreditRefused, PermissionDenied) as error:
        flash(str(error), "danger")
        return _render(dossier, form, 409)
    flash(f"已记入信用档案（记录编号 {saved.id}）。", "success")
    return redirect(url_for("credit.dossier_file", dossier_id=dossier.id))


def _superseded_or_404(dossier: Dossier, record_id: int) -> CreditRecord:
    record = db.session.get(CreditRecord, record_id)
    if record is None or record.person_id != dossier.person_id:
        abort(404)
    return record


def _change_page(dossier, superseded, action, form, status=200):
    return render_template("credit/change.html", dossier=dossier, record=superseded, action=action, form=form,
                           chains=[chain for chain in credit_file(db.session, dossier.person_id)
                                   if superseded in chain.records],
                           downloadable=set(), workflow=get_workflow()), status


@bp.route("/dossier/<int:dossier_id>/records/<int:record_id>/<any(correct, revoke):action>", methods=["GET", "POST"])
@login_required
def change(dossier_id, record_id, action):
    """Correct or revoke a record: a new record pointing at it, never an edit."""
    dossier = recordable(dossier_id)
    superseded = _superseded_or_404(dossier, record_id)
    if action == "correct":
        form = _record_form(dossier, data={
            "kind": superseded.kind, "finding": superseded.finding, "legal_basis": superseded.legal_basis,
            "found_on": superseded.found_on.isoformat(),
            "evidence": [str(item["version_id"]) for item in superseded.evidence]})
    else:
        form = RevokeForm()
    if not form.is_submitted():
        return _change_page(dossier, superseded, action, form)
    if not form.validate_on_submit():
        return _change_page(dossier, superseded, action, form, 422)
    common = dict(id_hash_key=get_config().ID_HASH_KEY, legal_basis=form.legal_basis.data)
    try:
        if action == "correct":
            saved = correct_record(
                db.session, get_workflow(), dossier, superseded.id, current_user, kind=form.kind.data,
                finding=form.finding.data, evidence=form.evidence.data or [], found_on=form.found_on.data, **common)
        else:
            saved = revoke_record(db.session, get_workflow(), dossier, superseded.id, current_user,
                                  reason=form.reason.data, **common)
    except ValidationErrors as errors:
        show_errors(form, errors.errors)
        return _change_page(dossier, superseded, action, form, 422)
    except (CreditRefused, PermissionDenied) as error:
        flash(str(error), "danger")
        return _change_page(dossier, superseded, action, form, 409)
    flash(f"已{'更正' if action == 'correct' else '撤销'}记录编号 {superseded.id}（新记录编号 {saved.id}）。", "success")
    return redirect(url_for("credit.dossier_file", dossier_id=dossier.id))


def credit_pdf_response(person: Person, dossier_numbers: list[str], filename_stem: str) -> Response:
    """Return the person's credit file as a PDF download, with the headers files.py sends."""
    pdf = credit_file_pdf(credit_file(db.session, person.id), name=person.name, id_number=person.id_number,
                          dossier_numbers=dossier_numbers,
                          generated_at=datetime.now(BEIJING).replace(tzinfo=None))
    return download_response(Response(pdf, mimetype="application/pdf"), f"{filename_stem}-信用档案.pdf",
                             f"{filename_stem}-credit.pdf")


@bp.post("/dossier/<int:dossier_id>/export")
@login_required
def export(dossier_id):
    """Download the credit file as PDF; a POST, because the export of personal data is written to the audit log."""
    dossier = viewable(dossier_id)
    if not ActionForm().validate_on_submit():
        abort(400)
    disclosures.credit_file_exported(db.session, current_user, dossier)
    return credit_pdf_response(dossier.person, [dossier.number], dossier.number)
