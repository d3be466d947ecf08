"""Fire workflow transitions on dossiers, and purge a dossier down to its tombstone."""
from __future__ import annotations

import time

from sqlalchemy import delete, select

from ..blobs import BlobStore
from ..models import AttachmentVersion, Dossier, DossierRevision, Tombstone
from ..permissions import Actor, roles_on
from ..validators import ValidationError, check_text
from ..vocabulary import APPROVED_STATE, REJECTABLE_ITEMS
from ..workflow import TransitionRefused, WorkflowEngine
from . import audit, login_throttle
from .dossier_reads import load_for_change
from .identity import id_number_hash, name_hash
from .transaction import ConflictError, committing
from .transition_rows import write_transition
from .working_copy import check_in

DEADLINE_LEGAL_BASIS = "辽财会〔2019〕116号 二（三）"
PERSONAL_DOSSIER_FIELDS = (
    "phone", "education", "scope_category", "employer_name", "employer_uscc", "employer_org_code",
    "employer_region_id", "household_region_id", "school_region_id", "qualification_certificate_number",
    "legacy_certificate_number", "job_started_on", "information_changed_on",
)
PERSONAL_PERSON_FIELDS = ("id_number", "name", "sex", "birth_date")


def _acting_role(roles, transition) -> str:
    """Pick the role the actor fired the transition in, for the history row."""
    allowed = transition.guard.roles or roles
    return next((role for role in sorted(roles) if role in allowed), "")


def checked_flags(workflow, name: str, flagged) -> list[str]:
    """Return the flagged item codes in the vocabulary's order, or refuse unknown ones and flags on the wrong transition.

    Items at fault accompany a reviewer's transition that needs a reason and leaves the review queue (a rejection;
    statistics.workflow_names finds it the same way).
    """
    codes = list(dict.fromkeys(flagged or ()))
    if not codes:
        return []
    unknown = [code for code in codes if code not in REJECTABLE_ITEMS]
    if unknown:
        raise TransitionRefused(f"有问题的项目：没有“{unknown[0][:40]}”这一项", field="fields")
    transition = workflow.definition.transitions.get(name)
    queue = {worklist.state for worklist in workflow.definition.worklists.values()}
    if (transition is None or not transition.comment_required or not transition.guard.permissions
            or not queue & set(transition.sources)):
        raise TransitionRefused("有问题的项目：只有退回时才能勾选", field="fields")
    return [code for code in REJECTABLE_ITEMS if code in codes]


def _transition_in_session(session, workflow, dossier, name, actor, comment, expected_version, flagged=()):
    """Fire name on dossier and add its history and audit rows, without committing."""
    if expected_version is not None and dossier.lock_version != expected_version:
        raise ConflictError()
    if dossier.checked_in_at is not None:
        raise TransitionRefused("该信息变更已审核确认并入档案，不能再操作")
    load_for_change(session, dossier)
    flagged = checked_flags(workflow, name, flagged)
    roles = roles_on(actor, dossier)
    result = workflow.fire(dossier, name, roles, comment)
    # 二（三）: a legacy person confirms by submitting; retracting before any approval takes it back.
    if name == "submit" and dossier.to_confirm:
        dossier.to_confirm = False
    elif (name == "retract" and dossier.person.is_legacy and not dossier.is_working_copy
          and not any(row.action == "approve" for row in dossier.history)):
        dossier.to_confirm = True
    write_transition(session, dossier, {
        "action": name, "from_state": result.from_state, "to_state": result.to_state,
        "actor_id": getattr(actor, "id", None), "actor_role": _acting_role(roles, result.transition),
        "comment": (comment or "").strip() or None, "flagged": flagged})
    audit.record(session, actor, f"workflow.{name}", "dossier", dossier.id,
                 from_state=result.from_state, to_state=result.to_state, **({"flagged": flagged} if flagged else {}))
    if dossier.is_working_copy and result.to_state == APPROVED_STATE:
        check_in(session, dossier, actor)
    return result


def fire_transition(session, workflow: WorkflowEngine, dossier: Dossier, name: str, actor: Actor,
                    comment: str | None = None, expected_version: int | None = None, flagged=()):
    """Fire transition name on dossier as actor; state, history and audit commit together or not at all.

    flagged: on a rejection, the REJECTABLE_ITEMS codes of the items at fault (stored as codes, not in the comment).

    The dossier's state and its history row are written by services/transition_rows.py, which tells
    services/change_tracking.py so: the same commit queues the dossier's search-index outbox row, writes its
    revision and moves the statistics counters.
    """
    if name == "purge":
        raise TransitionRefused("删除个人信息须通过删除功能办理")
    try:
        check_text("comment", "意见", comment)
    except ValidationError as error:
        raise TransitionRefused(error.message) from None  # the views show a refused transition's reason
    with committing(session):
        return _transition_in_session(session, workflow, dossier, name, actor, comment, expected_version, flagged)


def purge_dossier(session, workflow: WorkflowEngine, blobs: BlobStore, dossier: Dossier, actor: Actor,
                  reason: str, *, id_hash_key: str, legal_basis: str | None = None,
                  expected_version: int | None = None) -> Tombstone:
    """Remove the person's personal data and unshared blobs, leaving a tombstone and the audit trail."""
    if dossier.is_working_copy:
        raise TransitionRefused("删除个人信息须对档案本身办理，不能对信息变更单办理")
    person = dossier.person
    copies = [other for other in person.dossiers if other.is_working_copy]
    hashes = {version.sha256 for record in [dossier, *copies]
              for attachment in record.attachments for version in attachment.versions}
    started, id_number = time.time(), person.id_number
    with committing(session):
        _transition_in_session(session, workflow, dossier, "purge", actor, reason, expected_version)
        tombstone = Tombstone(
            dossier_id=dossier.id, id_number_hash=id_number_hash(id_hash_key, person.id_number),
            name_hash=name_hash(id_hash_key, person.name or ""),
            actor_label=actor.label, reason=reason.strip(), legal_basis=legal_basis,
        )
        session.add(tombstone)
        for field in PERSONAL_PERSON_FIELDS:
            setattr(person, field, None)
        for field in PERSONAL_DOSSIER_FIELDS:
            setattr(dossier, field, None)
        dossier.job_types, dossier.is_student, dossier.qualification_level = [], False, "none"
        dossier.attachments.clear()
        # Working copies are copies of the same personal data: they go whole.
        for copy in copies:
            session.delete(copy)
        if person.user is not None:
            session.delete(person.user)
        # Past revisions are copies of the personal data; the one services.revisions writes at
        # this commit shows the purged dossier, its fields already emptied.
        session.execute(delete(DossierRevision).where(
            DossierRevision.dossier_id.in_([dossier.id, *(copy.id for copy in copies)])))
    # After the commit: a crash here leaves unreferenced blobs, which `kjdms blobs gc` removes.
    delete_unreferenced_blobs(session, blobs, hashes, stored_before=started)
    # Hashed and gone within minutes anyway; no counter keyed to the purged person stays behind.
    login_throttle.clear_account(session, id_hash_key, id_number, address=None)
    return tombstone


def delete_unreferenced_blobs(session, blobs: BlobStore, hashes, stored_before: float) -> list[str]:
    """Delete each blob in hashes that no attachment version refers to and nobody stored again since stored_before."""
    if not hashes:
        return []
    still_used = set(session.scalars(
        select(AttachmentVersion.sha256).where(AttachmentVersion.sha256.in_(list(hashes)))))
    # An upload of the same content in flight refreshes the blob's time before its row commits: spare it.
    removed = [sha256 for sha256 in sorted(hashes)
               if sha256 not in still_used and blobs.exists(sha256) and blobs.modified_at(sha256) < stored_before]
    for sha256 in removed:
        blobs.delete(sha256)
    return removed
