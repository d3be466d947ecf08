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

