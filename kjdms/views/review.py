"""The reviewer's pages: the queue of their regions, the review page, approve and reject, reveal an ID number."""
from __future__ import annotations

from datetime import datetime

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_login import current_user
from sqlalchemy import bindparam, select
from sqlalchemy.orm import joinedload
from sqlalchemy.orm.attributes import set_committed_value

from ..backends import get_workflow
from ..display import field_value, mask_id_number, waiting_text
from ..extensions import db
from ..forms import ActionForm, TransitionForm
from ..models import Attachment, Dossier, Region, WorkflowHistory, utcnow
from ..permissions import can, roles_on
from ..services import disclosures
from ..services.credit import LIVE_COUNT_OF_DOSSIERS_PERSON
from ..services.decisions import DECISIONS, decisions_of
from ..services.worklist import QueueRow, queue_roles, reviewer_queue
from ..services.resubmission import resubmission
from ..services.working_copy import changes
from ..vocabulary import ATTACHMENT_SLOTS, DOSSIER_LABELS, REJECTABLE_ITEMS, REVEAL_ID_NUMBER, STAFF_ROLES
from . import dossier_row_or_404, id_link_prefix, int_arg, post_transition, staff_role_required

bp = Blueprint("review", __name__, url_prefix="/review")
WAITING_CHOICES = {0: "不限", 3: "超过3天", 7: "超过7天", 15: "超过15天", 30: "超过30天"}
# What the review page reads of a dossier, read with it: the person, the region up to the province (office, city,
# province: the roles that reach it), and every document with its versions. The documents are joined into the same
# query (a dossier has a handful of versions): the two extra selects of selectinload cost a millisecond of the
# ORM's per-statement work, more than the few repeated dossier columns.
SHOWN = (joinedload(Dossier.person), joinedload(Dossier.region).joinedload(Region.parent).joinedload(Region.parent),
         joinedload(Dossier.attachments).joinedload(Attachment.versions))
# The history comes in one more select with who acted (the page names them; lazily it was one select for the
# history and one for each actor). Built once: selectinload built its select and cache key anew on every page.
HISTORY_WITH_ACTORS = (select(WorkflowHistory).options(joinedload(WorkflowHistory.actor))
                       .where(WorkflowHistory.dossier_id == bindparam("id")).order_by(WorkflowHistory.id))


# The basic information the review page lists under the name and ID number, in order.
SHOWN_FIELDS = ("sex", "birth_date", "phone", "education", "scope_category", "job_types", "employer_name",
                "employer_uscc", "employer_org_code", "employer_region", "household_region", "is_student",
                "school_region", "qualification_level", "qualification_certificate_number", "legacy_certificate_number",
                "job_started_on", "information_changed_on", "region")


def shown_dossier(dossier_id: int) -> tuple[Dossier, int]:
    """Return the dossier as the review page shows it, with its history, and its person's live credit records;
    404 unless the user may view it."""
    # The count in the dossier's select: on its own it was a statement of its own on every page.
    dossier, live_credit = dossier_row_or_404(dossier_id, options=SHOWN, columns=(LIVE_COUNT_OF_DOSSIERS_PERSON,))
    set_committed_value(dossier, "history", db.session.scalars(HISTORY_WITH_ACTORS, {"id": dossier.id}).all())
    return dossier, live_credit


@bp.get("/")
@staff_role_required(lambda: queue_roles(get_workflow()))
def worklist():
    """List the submitted dossiers of the reviewer's regions, the longest waiting first."""
    region_id, waited = int_arg("region"), int_arg("waited") or 0
    queue = reviewer_queue(db.session, get_workflow(), current_user, region_id=region_id,
                           waited_days=waited if waited in WAITING_CHOICES else None, page=int_arg("page") or 1)
    rows = table_rows(queue.dossiers, utcnow(), id_link_prefix("review.dossier", "dossier_id"))
    return render_template("review/worklist.html", queue=queue, rows=rows, region_id=region_id, waited=waited,
                           waiting_choices=WAITING_CHOICES)


def field_rows(dossier: Dossier) -> list[tuple[str, str]]:
    """Return the review page's basic-information rows: each shown field's label and its value as Chinese text.

    Made here in one pass: in the template each row cost a method call and a filter call through Jinja's runtime.
    """
    return [(DOSSIER_LABELS.get(name, "归属地区"), field_value(dossier, name)) for name in SHOWN_FIELDS]


def table_rows(dossiers: list[QueueRow], now: datetime, review_link: str) -> list[tuple]:
    """Return the worklist table's cells of each dossier (its review page's address first, review_link and its id),
    as text the template still escapes.

    Formatted here in one pass: in the template each cell cost an attribute lookup and a filter call through
    Jinja's runtime, fifty rows of them more than the rest of the page.
    """
    return [(f"{review_link}{row.id}", row.number, row.is_working_copy, row.late_flags, row.name,
             mask_id_number(row.id_number), row.employer_name or "—", row.region_name or "—",
             waiting_text(row.state_changed_at, now)) for row in dossiers]


@bp.get("/decided")
@staff_role_required(lambda: queue_roles(get_workflow()))
def decided():
    """List the dossiers the reviewer has approved or rejected, newest decision first."""
    action = request.args.get("action") if request.args.get("action") in DECISIONS else None
    listing = decisions_of(db.session, current_user, action=action, page=int_arg("page") or 1)
    workflow = get_workflow()
    # A dossier since moved out of the reviewer's regions (or purged) is listed by number only.
    viewable = {row.dossier_id for row in listing.rows if can(workflow, current_user, "view", row.dossier)}
    return render_template("review/decided.html", listing=listing, action=action, decisions=DECISIONS,
                           viewable=viewable, workflow=workflow)


def _render(dossier: Dossier, form: TransitionForm | None = None, reveal: bool = False, status: int = 200,
            live_credit: int | None = None):
    form = form or TransitionForm(lock_version=dossier.lock_version)
    form.fields.choices = REJECTABLE_ITEMS
    workflow = get_workflow()
    # The user's roles on the dossier, read once for the page: the buttons, the reveal link and the credit file
    # each asked roles_on again (and each of its attribute reads went through the current_user proxy).
    roles = roles_on(current_user._get_current_object(), dossier)
    return render_template(
        "review/dossier.html", dossier=dossier, form=form, reveal=reveal, roles=roles, live_credit=live_credit,
        slots=ATTACHMENT_SLOTS.values(), workflow=workflow,
        transitions=[t for t in workflow.available_transitions(dossier, roles) if t.name in ("approve", "reject")],
        changes=changes(dossier) if dossier.is_working_copy else [], field_rows=field_rows(dossier),
        # While it waits for review: the reviewer checks the answer to the earlier rejection.
        resubmitted=resubmission(db.session, dossier) if dossier.state in {
            worklist.state for worklist in workflow.definition.worklists.values()} else None,
        may_reveal=workflow.has_permission(dossier.state, REVEAL_ID_NUMBER, roles),
    ), status


@bp.get("/<int:dossier_id>")
@staff_role_required(*STAFF_ROLES)
def dossier(dossier_id):
    """Show all basic information and each document's current version beside it."""
    dossier, live_credit = shown_dossier(dossier_id)
    return _render(dossier, live_credit=live_credit)


@bp.post("/<int:dossier_id>/reveal")
@staff_role_required(*STAFF_ROLES)
def reveal(dossier_id):
    """Show the full ID number once, and write who asked to the audit log."""
    record, live_credit = shown_dossier(dossier_id)
    if not ActionForm().validate_on_submit():
        abort(400)
    if not can(get_workflow(), current_user, REVEAL_ID_NUMBER, record):
        abort(403)  # the workflow's permission map says who may (reviewers, by default)
    disclosures.reveal_id_number(db.session, current_user, record)
    return _render(record, reveal=True, live_credit=live_credit)


@bp.post("/<int:dossier_id>/<any(approve, reject):name>")
@staff_role_required(lambda: queue_roles(get_workflow()))
def decide(dossier_id, name):
    """Approve, or reject with a reason; a decision based on a stale page is refused as a conflict."""
    record, live_credit = shown_dossier(dossier_id)
    form = TransitionForm()
    form.fields.choices = REJECTABLE_ITEMS
    # The page offers only these markers; any other value was not sent by it.
    if any(field not in REJECTABLE_ITEMS for field in form.fields.data or ()):
        abort(400)
    # The items go to the history row's own column (WorkflowHistory.flagged); the comment stays as typed.
    posted = post_transition(record, name, form, comment_label="退回理由", flagged=form.fields.data or ())
    if posted.status == 409:
        # Keep what the reviewer typed, on the page as it now stands.
        return _render(db.session.get(Dossier, dossier_id), form=_keep_typed(form, dossier_id), status=409)
    if not posted.fired:
        return _render(record, form=form, status=posted.status, live_credit=live_credit)
    flash(f"已{get_workflow().definition.transitions[name].title}：{record.person.name}（{record.number}）", "success")
    return redirect(url_for("review.worklist"))


def _keep_typed(form: TransitionForm, dossier_id: int) -> TransitionForm:
    return TransitionForm(formdata=None, comment=form.comment.data, fields=form.fields.data,
                          lock_version=db.session.get(Dossier, dossier_id).lock_version)
