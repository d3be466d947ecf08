"""Working copies after plone.app.iterate: change an approved dossier without touching it until review."""
from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import bindparam, or_, select
from sqlalchemy.orm import joinedload

from ..display import field_value
from ..models import Attachment, AttachmentVersion, Dossier, WorkflowHistory, utcnow
from ..permissions import Actor, PermissionDenied, roles_on
from ..vocabulary import APPROVED_STATE, ATTACHMENT_SLOTS, DOSSIER_LABELS, OWNER_ROLE, REVIEWER_ROLE
from ..workflow import WorkflowEngine
from . import audit
from .dossier_reads import CHANGE_READS
from .dossiers import DOSSIER_FIELDS
from .transaction import committing

PERSON_FIELDS = ("name", "id_number", "sex", "birth_date")



# Every page of the person's own reads both, with the person: one select instead of three.
_OWN = (Dossier.person_id == bindparam("person_id"), or_(Dossier.baseline_id.is_(None), Dossier.checked_in_at.is_(None)))
EFFECTIVE_AND_OPEN_COPY = select(Dossier).options(joinedload(Dossier.person)).where(*_OWN)
# A transition's request reads them with what the change reads (dossier_reads.CHANGE_READS): a statement less.
EFFECTIVE_AND_OPEN_COPY_FOR_CHANGE = select(Dossier).options(*CHANGE_READS).where(*_OWN)


def open_working_copy(session, baseline: Dossier) -> Dossier | None:
    """Return the working copy of baseline not yet checked in, if there is one."""
    return session.scalar(select(Dossier).where(Dossier.baseline_id == baseline.id,
                                                Dossier.checked_in_at.is_(None)))


def effective_and_open_copy(session, person_id: int | None,
                            for_change: bool = False) -> tuple[Dossier | None, Dossier | None]:
    """Return the person's effective dossier and its working copy not yet checked in (None for each one missing).

    for_change: read them with what a transition reads of them (services/dossier_reads.py), for a request that fires one.
    """
    effective = copy = None
    query = EFFECTIVE_AND_OPEN_COPY_FOR_CHANGE if for_change else EFFECTIVE_AND_OPEN_COPY
    for dossier in session.scalars(query, {"person_id": person_id}).unique():
        if dossier.baseline_id is None:
            effective = dossier
        else:
            copy = dossier  # a person's copies all hang off their one effective dossier, at most one of them open
    return effective, copy if effective is not None else None


def start_working_copy(session, workflow: WorkflowEngine, baseline: Dossier, actor: Actor) -> Dossier:
    """Return the open working copy of the owner's approved dossier, creating it if need be."""
    if OWNER_ROLE not in roles_on(actor, baseline) or baseline.is_working_copy:
        raise PermissionDenied("只有本人可以变更自己的信息")
    if baseline.state != APPROVED_STATE:
        raise PermissionDenied("档案审核确认后才能申请信息变更")
    existing = open_working_copy(session, baseline)
    if existing is not None:
        return existing
    with committing(session):
        copy = Dossier(person=baseline.person, baseline=baseline, state=workflow.definition.initial_state,
                       **{field: getattr(baseline, field) for field in DOSSIER_FIELDS})
        session.add(copy)
        for attachment in baseline.attachments:
            current = attachment.current
            # The same blob, referenced again: a working copy costs no storage until something changes.
            copy.attachments.append(Attachment(slot=attachment.slot, versions=[AttachmentVersion(
                number=1, sha256=current.sha256, size=current.size, media_type=current.media_type,
                original_filename=current.original_filename, uploaded_by_id=current.uploaded_by_id,
                uploaded_at=current.uploaded_at, comment=current.comment)]))
        session.flush()
        audit.record(session, actor, "dossier.checkout", "dossier", baseline.id, working_copy=copy.id)
    return copy


def cancel_working_copy(session, workflow: WorkflowEngine, copy: Dossier, actor: Actor) -> None:
    """Delete the owner's working copy while it is still a draft; the approved dossier is untouched."""
    if not copy.is_working_copy or copy.checked_in_at is not None:
        raise PermissionDenied("这不是可以取消的信息变更")
    if OWNER_ROLE not in roles_on(actor, copy) or copy.state != workflow.definition.initial_state:
        raise PermissionDenied("只有本人可以在提交前取消信息变更")
    with committing(session):
        audit.record(session, actor, "dossier.cancel_checkout", "dossier", copy.baseline_id, working_copy=copy.id)
        session.delete(copy)


def check_in(session, copy: Dossier, actor: Actor) -> None:
    """Hand the approved working copy's content to its baseline, in the caller's transaction."""
    baseline = copy.baseline
    for field in DOSSIER_FIELDS:
        setattr(baseline, field, getattr(copy, field))
    changed_slots = []
    for attachment in copy.attachments:
        current, target = attachment.current, baseline.attachment(attachment.slot)
        if target is None:
            target = Attachment(slot=attachment.slot)
            baseline.attachments.append(target)
        if target.current is None or target.current.sha256 != current.sha256:
            target.versions.append(AttachmentVersion(
                number=len(target.versions) + 1, sha256=current.sha256, size=current.size,
                media_type=current.media_type, original_filename=current.original_filename,
                uploaded_by_id=current.uploaded_by_id, uploaded_at=current.uploaded_at,
                comment=current.comment))
            changed_slots.append(attachment.slot)
    baseline.updated_at = copy.checked_in_at = utcnow()
    session.add(WorkflowHistory(
        dossier=baseline, action="check_in", from_state=baseline.state, to_state=baseline.state,
        actor_id=getattr(actor, "id", None), actor_role=REVIEWER_ROLE,
        comment=f"信息变更（变更单 {copy.id}）审核确认，已更新档案"))
    audit.record(session, actor, "dossier.check_in", "dossier", baseline.id, working_copy=copy.id,
                 slots=changed_slots)


@dataclass(frozen=True)
class Change:
    """One field or document that a working copy changes, as the reviewer reads it."""

    field: str
    label: str
    before: object
    after: object


def changes(copy: Dossier) -> list[Change]:
    """Return what copy changes against its baseline, field by field, then document by document."""
    baseline = copy.baseline
    found = []
    for field, label in DOSSIER_LABELS.items():
        if field in PERSON_FIELDS:
            continue
        before, after = field_value(baseline, field), field_value(copy, field)
        if before != after:
            found.append(Change(field, label, before, after))
    for slot in ATTACHMENT_SLOTS.values():
        before, after = baseline.attachment(slot.code), copy.attachment(slot.code)
        before, after = before and before.current, after and after.current
        if (before and before.sha256) != (after and after.sha256):
            found.append(Change(f"attachment:{slot.code}", slot.title, before, after))
    return found
