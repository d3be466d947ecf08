"""A rejection until the dossier is submitted again, and what a resubmission changed against the rejected submission."""
from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select

from ..models import AttachmentVersion, Dossier, DossierRevision, WorkflowHistory, as_utc
from ..vocabulary import ATTACHMENT_SLOTS
from .revisions import FIELD_LABELS, shown_fields, snapshot_attachments, snapshot_fields
from .working_copy import Change

REJECT, SUBMIT = "reject", "submit"


def pending_rejection(dossier: Dossier) -> WorkflowHistory | None:
    """Return the last rejection of dossier while it has not been submitted again since, else None."""
    for row in sorted(dossier.history, key=lambda row: row.id, reverse=True):
        if row.action == SUBMIT:
            return None
        if row.action == REJECT:
            return row
    return None


def answered_rejection(dossier: Dossier) -> WorkflowHistory | None:
    """Return the rejection that the dossier's latest submission answers (None for a first submission)."""
    rows = sorted(dossier.history, key=lambda row: row.id, reverse=True)
    submitted = next((index for index, row in enumerate(rows) if row.action == SUBMIT), None)
    if submitted is None:
        return None
    return next((row for row in rows[submitted + 1:] if row.action == REJECT), None)


@dataclass
class Resubmission:
    """A dossier submitted again after a rejection: that rejection, and what changed since it (None: not recorded)."""

    rejection: WorkflowHistory
    changes: list[Change] | None


def resubmission(session, dossier: Dossier) -> Resubmission | None:
    """Return how dossier's latest submission differs from the one rejected before it, or None if none was."""
    rejection = answered_rejection(dossier)
    if rejection is None:
        return None
    # The rejection's own commit wrote the revision that holds the submission as it was rejected.
    rejected = session.scalars(
        select(DossierRevision).where(DossierRevision.dossier_id == dossier.id,
                                      DossierRevision.recorded_at >= as_utc(rejection.created_at))
        .order_by(DossierRevision.recorded_at, DossierRevision.id).limit(1)).first()
    if rejected is None:  # rejected before working copies kept their rejected content: nothing to compare with
        return Resubmission(rejection, None)
    return Resubmission(rejection, _field_changes(session, rejected.fields, snapshot_fields(dossier))
                        + _document_changes(session, rejected.attachments, snapshot_attachments(dossier)))


def _field_changes(session, before: dict, after: dict) -> list[Change]:
    shown_before, shown_after = shown_fields(session, before), shown_fields(session, after)
    return [Change(field, label, old, new) for field, (label, old), (_, new)
            in zip(FIELD_LABELS, shown_before, shown_after) if old != new]


def _document_changes(session, before: dict, after: dict) -> list[Change]:
    found = []
    for slot in ATTACHMENT_SLOTS.values():
        old, new = before.get(slot.code), after.get(slot.code)
        if (old and old["sha256"]) != (new and new["sha256"]):
            found.append(Change(f"attachment:{slot.code}", slot.title,
                                old and session.get(AttachmentVersion, old["version_id"]),
                                new and session.get(AttachmentVersion, new["version_id"])))
    return found
