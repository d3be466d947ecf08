"""Write audit events: who did what to which object, never the personal values themselves."""
from __future__ import annotations

from sqlalchemy import insert

from ..models import AuditEvent
from .audit_chain import MOVE_HEAD, link, place

# Built once: nearly every change writes one.
INSERT_EVENT = insert(AuditEvent).returning(AuditEvent.id)
# PostgreSQL moves the chain head and inserts the event in one round trip (a data-modifying WITH, which SQLite lacks).
MOVE_HEAD_AND_INSERT_EVENT = INSERT_EVENT.add_cte(MOVE_HEAD.cte("moved_head"))


def record(session, actor, action: str, object_type: str, object_id: int | None, **detail) -> int:
    """Write an audit event, linked to the chain, in the session's transaction (the caller commits); return its id.

    Written at once with a Core statement, not added as an object: the unit of work's flush of one more object
    cost a transition more Python than the insert itself, and nothing reads the event back as an object.
    """
    row = {"actor_id": getattr(actor, "id", None),
           "actor_label": actor.label if actor is not None else "anonymous",
           "action": action, "object_type": object_type, "object_id": object_id, "detail": detail}
    connection = session.connection()
    if connection.dialect.name != "postgresql":
        link(connection, [row])
        return connection.execute(INSERT_EVENT, row).scalar_one()
    head = place(connection, [row])
    return connection.execute(MOVE_HEAD_AND_INSERT_EVENT, {**row, **head}).scalar_one()
