"""The accounting person's own pages: status, basic information, printable form, documents, submit."""
from __future__ import annotations

from datetime import datetime

from flask import Blueprint, Response, abort, flash, redirect, render_template, request, url_for
from flask_login import current_user

from ..backends import get_blob_store, get_config, get_workflow
from ..extensions import db
from ..forms import ActionForm, BasicInformationForm, TransitionForm, UploadForm
from ..documents.basic_info_form import basic_information_form_pdf
from ..models import Dossier
from ..permissions import PermissionDenied, can
from ..services.attachments import size_label, store_attachment_version
from ..services import settings
from ..services.credit import credit_file
from ..services.deadline_purge import deadline_passed
from ..services.regions import contact_office
from ..services.resubmission import pending_rejection
from ..services.dossiers import (EDITABLE_FIELDS, REGION_FIELDS, missing_items, required_slots,
                                 update_basic_information)
from ..services.transaction import ConflictError
from ..services.working_copy import cancel_working_copy, changes, effective_and_open_copy, start_working_copy
from ..validators import ValidationError, ValidationErrors
from ..vocabulary import ATTACHMENT_SLOTS, DRAFT_STATE, OWNER_ROLE, PURGED_STATE
from . import applicant_required, post_transition, show_errors
from .credit import credit_pdf_response, downloadable_versions
from .files import download_response
from ..local_time import BEIJING, local_date

bp = Blueprint("applicant", __name__, url_prefix="/me")
OWNER_TRANSITIONS = ("submit", "retract", "revise")
# "修改" only opens the dossier again: nothing is changed yet, so the message must not say "已修改".
REVISE_MESSAGE = "档案已重新打开，可以修改了：请按退回意见修改标出的项目（基本信息或证明材料），然后重新提交审核。"


def own_dossiers(for_change: bool = False) -> tuple[Dossier, Dossier | None]:
    """Return the signed-in person's effective dossier (404 once purged) and its open working copy, if any.

    for_change: with what a transition reads of them (services/working_copy.effective_and_open_copy).
    """
    dossier, copy = effective_and_open_copy(db.session, current_user.person_id, for_change)
    if dossier is None or dossier.state == PURGED_STATE:
        abort(404)
    return dossier, copy


def effective_dossier() -> Dossier:
    """Return the signed-in person's effective dossier (404 once purged)."""
    return own_dossiers()[0]


def working_dossier(for_change: bool = False) -> Dossier:
    """Return what the person is working on: the open working copy if any, else the dossier itself."""
    dossier, copy = own_dossiers(for_change)
    return copy or dossier


@bp.get("/")
@applicant_required
def index():
    """Show the dossier's state, what is missing, the history and the reviewers' comments."""
    dossier, copy = own_dossiers()
    working = copy or dossier
    # Checked-in working copies too: the reviewers' comments on earlier changes stay readable.
    history = sorted((row for record in dossier.person.dossiers for row in record.history),
                     key=lambda row: row.id, reverse=True)
    return render_template(
        "applicant/index.html", dossier=dossier, copy=copy, working=working, history=history,
        rejection=pending_rejection(working),
        missing=missing_items(working) if working.state == DRAFT_STATE else [],
        transitions=[t for t in get_workflow().available_transitions(working, {OWNER_ROLE})
                     if t.name in OWNER_TRANSITIONS],
        changes=changes(copy) if copy else [], workflow=get_workflow(), form=TransitionForm(), action_form=ActionForm(),
        **_confirmation(dossier),
    )


def _confirmation(dossier: Dossier) -> dict:
    """Return what the page says about the legacy confirmation deadline: ahead, or passed and what that means."""
    deadline = settings.effective(db.session, get_config()).CONFIRMATION_DEADLINE
    return {"deadline": deadline, "deadline_passed": deadline_passed(deadline),
            # A record imported after the deadline had no chance to confirm in time: it is not purged for it.
            "imported_after_deadline": local_date(dossier.created_at) > deadline,
            "contact": contact_office(dossier.region or dossier.household_region)}


def _form_data(dossier: Dossier) -> dict:
    data = {field: getattr(dossier, field) for field in EDITABLE_FIELDS if field not in ("name", *REGION_FIELDS)}
    data.update({field: getattr(dossier, field).code if getattr(dossier, field) else ""
                 for field in REGION_FIELDS})
    data["name"] = dossier.person.name
    return data


@bp.route("/edit", methods=["GET", "POST"])
@applicant_required
def edit():
    """Fill in or change the basic information (in a working copy once the dossier is approved)."""
    dossier = working_dossier()
    editable = can(get_workflow(), current_user, "edit", dossier)
    form = BasicInformationForm(data=_form_data(dossier))
    form.bind_regions(db.session)
    if dossier.is_working_copy:
        form.name.render_kw = {"readonly": True}
    if editable and form.validate_on_submit():
        changes_wanted = {field: getattr(form, field).data for field in EDITABLE_FIELDS}
        if dossier.is_working_copy:
            changes_wanted.pop("name")  # the name stays with the person; a working copy does not change it
        try:
            changed = update_basic_information(db.session, get_workflow(), dossier, changes_wanted, current_user)
        except ValidationErrors as errors:
            show_errors(form, errors.errors)
        except (PermissionDenied, ConflictError) as error:
            flash(str(error), "danger")
        else:
            flash(f"已保存（修改了 {len(changed)} 项）。" if changed else "没有修改任何内容。", "success")
            return redirect(url_for("applicant.index"))
    elif request.method == "POST" and not editable:
        abort(403)
    status = 422 if request.method == "POST" else 200
    return render_template("applicant/edit.html", form=form, dossier=dossier, editable=editable,
                           **_rejection_context(dossier)), status


def _rejection_context(dossier: Dossier) -> dict:
    """Return the rejection still to be answered and its flagged item codes, for the pages that must show them."""
    rejection = pending_rejection(dossier)
    return {"rejection": rejection, "flagged_codes": set(rejection.flagged or ()) if rejection else set(),
            "revise_form": TransitionForm(lock_version=dossier.lock_version)}


@bp.get("/form.pdf")
@applicant_required
def form_pdf():
    """Download the printable basic-information form, to sign, have stamped and upload."""
    dossier = working_dossier()
    pdf = basic_information_form_pdf(dossier, generated_at=datetime.now(BEIJING).replace(tzinfo=None))
    return download_response(Response(pdf, mimetype="application/pdf"), f"{dossier.number}-基本信息表.pdf",
                             f"{dossier.number}.pdf")


@bp.get("/documents")
@applicant_required
def documents():
    """List the document slots, their versions, and an upload form for each."""
    dossier = working_dossier()
    return render_template(
        "applicant/documents.html", dossier=dossier, slots=ATTACHMENT_SLOTS.values(),
        required=set(required_slots(dossier)), form=UploadForm(),
        can_upload=can(get_workflow(), current_user, "add_attachment", dossier),
        max_size=size_label(get_config().MAX_UPLOAD_BYTES), max_bytes=get_config().MAX_UPLOAD_BYTES,
        **_rejection_context(dossier),
    )


@bp.post("/documents/<slot>")
@applicant_required
def upload(slot):
    """Store an uploaded file as the newest version of slot."""
    if slot not in ATTACHMENT_SLOTS:
        abort(404)
    dossier, form = working_dossier(), UploadForm()
    if not form.validate_on_submit():
        # CSRF is checked before any view; what fails here is a field, e.g. an over-long comment.
        for messages in form.errors.values():
            for message in messages:
                flash(f"{ATTACHMENT_SLOTS[slot].title}：{message}", "danger")
        return redirect(url_for("applicant.documents"))
    file = form.file.data
    if not file or not file.filename:
        flash("文件：请选择要上传的文件", "danger")
        return redirect(url_for("applicant.documents"))
    try:
        _, number = store_attachment_version(
            db.session, get_workflow(), get_blob_store(), dossier, slot, file.stream, current_user,
            filename=file.filename, comment=form.comment.data, max_bytes=get_config().MAX_UPLOAD_BYTES)
    except ValidationError as error:
        flash(f"{ATTACHMENT_SLOTS[slot].title}：{error.message}", "danger")
    except PermissionDenied:
        abort(403)
    except ConflictError as error:
        flash(str(error), "danger")
    else:
        flash(f"{ATTACHMENT_SLOTS[slot].title}已上传（第 {number} 版）。", "success")
    return redirect(url_for("applicant.documents"))


@bp.post("/transition/<name>")
@applicant_required
def transition(name):
    """Submit, retract or revise the working dossier."""
    if name not in OWNER_TRANSITIONS:
        abort(404)
    posted = post_transition(working_dossier(for_change=True), name, TransitionForm())
    for messages in posted.form.errors.values():  # this page shows a message, not the form, again
        for message in messages:
            flash(message, "danger")
    if posted.fired:
        flash(REVISE_MESSAGE if name == "revise" else f"已{get_workflow().definition.transitions[name].title}。",
              "success")
    return redirect(url_for("applicant.index"))


@bp.post("/change")
@applicant_required
def start_change():
    """Start a working copy of the approved dossier, to change the information and have it reviewed."""
    if not ActionForm().validate_on_submit():
        abort(400)
    try:
        start_working_copy(db.session, get_workflow(), effective_dossier(), current_user)
    except PermissionDenied as error:
        flash(str(error), "danger")
        return redirect(url_for("applicant.index"))
    flash("已开始信息变更：审核确认前，原档案仍然有效。", "info")
    return redirect(url_for("applicant.edit"))


@bp.post("/change/cancel")
@applicant_required
def cancel_change():
    """Drop the working copy while it is still a draft."""
    if not ActionForm().validate_on_submit():
        abort(400)
    copy = own_dossiers()[1]
    if copy is None:
        abort(404)
    try:
        cancel_working_copy(db.session, get_workflow(), copy, current_user)
    except PermissionDenied as error:
        flash(str(error), "danger")
    else:
        flash("已取消信息变更。", "info")
    return redirect(url_for("applicant.index"))


@bp.get("/credit")
@applicant_required
def credit():
    """Show the person's own credit file: every record with its corrections and revocation."""
    chains = credit_file(db.session, current_user.person_id)
    return render_template("credit/own.html", chains=chains, downloadable=downloadable_versions(chains, current_user))


@bp.get("/credit.pdf")
@applicant_required
def credit_pdf():
    """Download the person's own credit file as PDF (the ID number masked, as on every exported document)."""
    person = current_user.person
    numbers = [dossier.number for dossier in person.dossiers if not dossier.is_working_copy]
    return credit_pdf_response(person, numbers, numbers[0] if numbers else "KJ")
