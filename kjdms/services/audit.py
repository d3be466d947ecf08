"""Write audit events: who did what to which object, never the personal values themselves."""
from __future__ import annotations

from ..models import AuditEvent


def record(session, actor, action: str, object_type: str, object_id: int | None, **detail) -> AuditEvent:
    """Add an audit event to the session's transaction (the caller commits with its change)."""
    event = AuditEvent(
        actor_id=getattr(actor, "id", None),
        actor_label=actor.label if actor is not None else "anonymous",
        action=action,
        object_type=object_type,
        object_id=object_id,
        detail=detail,
    )
    session.add(event)
    return event


def record_document_access(session, actor, version, how: str) -> AuditEvent:
    """Record that staff read a document's content (how: "download" or "preview"); the caller commits."""
    dossier = version.attachment.dossier
    return record(session, actor, f"document.{how}", "dossier", dossier.id,
                  version=version.id, slot=version.attachment.slot)


def record_id_number_search(session, actor, numbers: int, dossier_ids: list[int]) -> AuditEvent:
    """Record a search by full ID number: how many numbers and which dossiers it showed, never the numbers."""
    return record(session, actor, "search.id_number", "search", None, id_numbers=numbers, dossiers=dossier_ids)
