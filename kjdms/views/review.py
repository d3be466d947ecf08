"""The reviewer's pages: the queue of their regions, the review page, approve and reject, reveal an ID number."""
from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, render_template, url_for
from flask_login import current_user

from ..backends import get_workflow
from ..extensions import db
from ..forms import ActionForm, TransitionForm
from ..models import Dossier, utcnow
from ..permissions import can, roles_on
from ..services import audit
from ..services.lifecycle import fire_transition
from ..services.transaction import ConflictError
from ..services.worklist import queue_roles, reviewer_queue
from ..services.working_copy import changes
from ..vocabulary import ATTACHMENT_SLOTS, DOSSIER_LABELS, STAFF_ROLES
from ..workflow import TransitionRefused
from . import int_arg, staff_role_required

bp = Blueprint("review", __name__, url_prefix="/review")
WAITING_CHOICES = {0: "不限", 3: "超过3天", 7: "超过7天", 15: "超过15天", 30: "超过30天"}
# The fields a reviewer can point at when rejecting, besides the documents.
REJECTABLE_FIELDS = {**{field: label for field, label in DOSSIER_LABELS.items() if field not in ("sex", "birth_date")},
                     **{f"attachment:{code}": slot.title for code, slot in ATTACHMENT_SLOTS.items()}}


@bp.get("/")
@staff_role_required(lambda: queue_roles(get_workflow()))
def worklist():
    """List the submitted dossiers of the reviewer's regions, the longest waiting first."""
    region_id, waited = int_arg("region"), int_arg("waited") or 0
    queue = reviewer_queue(db.session, get_workflow(), current_user, region_id=region_id,
                           waited_days=waited if waited in WAITING_CHOICES else None, page=int_arg("page") or 1)
    return render_template("review/worklist.html", queue=queue, region_id=region_id, waited=waited,
                           waiting_choices=WAITING_CHOICES, now=utcnow())


def reviewable(dossier_id: int) -> Dossier:
    """Return the dossier if the current staff user may view it; 404 otherwise, with nothing to tell it exists."""
    dossier = db.session.get(Dossier, dossier_id)
    if current_user.is_applicant or dossier is None or not can(get_workflow(), current_user, "view", dossier):
        abort(404)
    return dossier


def _render(dossier: Dossier, form: TransitionForm | None = None, reveal: bool = False, status: int = 200):
    form = form or TransitionForm(lock_version=dossier.lock_version)
    form.fields.choices = REJECTABLE_FIELDS
    workflow = get_workflow()
    roles = roles_on(current_user, dossier)
    return render_template(
        "review/dossier.html", dossier=dossier, form=form, reveal=reveal, action_form=ActionForm(),
        slots=ATTACHMENT_SLOTS.values(), workflow=workflow,
        transitions=[t for t in workflow.available_transitions(dossier, roles) if t.name in ("approve", "reject")],
        changes=changes(dossier) if dossier.is_working_copy else [], labels=DOSSIER_LABELS,
    ), status


@bp.get("/<int:dossier_id>")
@staff_role_required(*STAFF_ROLES)
def dossier(dossier_id):
    """Show all basic information and each document's current version beside it."""
    return _render(reviewable(dossier_id))


@bp.post("/<int:dossier_id>/reveal")
@staff_role_required(*STAFF_ROLES)
def reveal(dossier_id):
    """Show the full ID number once, and write who asked to the audit log."""
    record = reviewable(dossier_id)
    if not ActionForm().validate_on_submit():
        abort(400)
    audit.record(db.session, current_user, "dossier.reveal_id_number", "dossier", record.id)
    db.session.commit()
    return _render(record, reveal=True)


@bp.post("/<int:dossier_id>/<any(approve, reject):name>")
@staff_role_required(lambda: queue_roles(get_workflow()))
def decide(dossier_id, name):
    """Approve, or reject with a reason; a decision based on a stale page is refused as a conflict."""
    record = reviewable(dossier_id)
    form = TransitionForm()
    form.fields.choices = REJECTABLE_FIELDS
    if not (form.lock_version.data or "").isdigit():
        abort(400)
    if not form.validate_on_submit():
        return _render(record, form=form, status=422)  # a field failed, e.g. an over-long comment
    # The page offers only these markers; any other value was not sent by it.
    if any(field not in REJECTABLE_FIELDS for field in form.fields.data or ()):
        abort(400)
    comment = (form.comment.data or "").strip()
    if name == "reject" and form.fields.data and comment:
        comment = "".join(f"【{REJECTABLE_FIELDS[field]}】" for field in form.fields.data) + comment
    try:
        fire_transition(db.session, get_workflow(), record, name, current_user, comment or None,
                        expected_version=int(form.lock_version.data))
    except ConflictError as error:
        flash(str(error), "danger")
        db.session.expire_all()
        # Keep what the reviewer typed, on the page as it now stands.
        return _render(db.session.get(Dossier, dossier_id), form=_keep_typed(form, dossier_id), status=409)
    except TransitionRefused as error:
        if error.field == "comment":
            form.comment.errors = [f"退回理由：{error.message}"]
        else:
            flash(error.message, "danger")
        return _render(record, form=form, status=422)
    flash(f"已{get_workflow().definition.transitions[name].title}：{record.person.name}（{record.number}）", "success")
    return redirect(url_for("review.worklist"))


def _keep_typed(form: TransitionForm, dossier_id: int) -> TransitionForm:
    return TransitionForm(formdata=None, comment=form.comment.data, fields=form.fields.data,
                          lock_version=db.session.get(Dossier, dossier_id).lock_version)
