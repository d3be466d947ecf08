"""Write a fired transition's own rows with statements built once: the dossier's new state under its version check,
its history row and its search-index outbox row (one statement on PostgreSQL, which locks the audit chain's head
too), the decision's notice; then tell change tracking which dossier they changed.

The unit of work's flush of the dossier and a history object cost a transition more Python than the rows' own
round trips; these two rows are always the same shape, so they go straight to the connection.
"""
from __future__ import annotations

from sqlalchemy import bindparam, insert, inspect, literal, select, true

from ..models import Dossier, IndexOutbox, WorkflowHistory, utcnow
from .audit_chain import lock_head_after, remember_locked_head
from .change_tracking import track_written
from .dossier_rows import dossiers, mark_written, stale, update_params, versioned_update
from .notices import decision_notice, queue_notices

UPDATE_STATE = versioned_update("state", "state_changed_at", "updated_at", "to_confirm")
history_rows = WorkflowHistory.__table__
INSERT_HISTORY = insert(history_rows)
HISTORY_VALUES = ("action", "from_state", "to_state", "actor_id", "actor_role", "comment", "flagged")
# PostgreSQL writes both rows in one round trip (a data-modifying WITH, which SQLite lacks): the history row is
# inserted from the dossier row the version-checked UPDATE returns, so a stale version inserts nothing either.
# The dossier's search-index outbox row goes into the same statement.
_moved = UPDATE_STATE.returning(dossiers.c.id).cte("moved")
_outbox = IndexOutbox.__table__
_queued = insert(_outbox).from_select(
    ["dossier_id", "queued_at", "attempts"],
    select(_moved.c.id, bindparam("moment", type_=_outbox.c.queued_at.type), literal(0, _outbox.c.attempts.type))
).cte("queued")
_written = insert(history_rows).from_select(
    ["dossier_id", *HISTORY_VALUES, "created_at"],
    select(_moved.c.id, *(bindparam(name, type_=history_rows.c[name].type) for name in HISTORY_VALUES),
           bindparam("moment", type_=history_rows.c.created_at.type))
).returning(history_rows.c.id).cte("written")
# The audit chain's head is locked and read in it too, after the dossier's row (the lock order stays): the audit
# event's placement (services/audit_chain.place) takes it from there instead of a statement of its own.
_head = lock_head_after(_moved)
UPDATE_STATE_AND_INSERT_HISTORY = (select(_written.c.id, _head.c.sequence, _head.c.row_hash)
                                   .select_from(_written.outerjoin(_head, true())).add_cte(_moved, _queued))


def write_transition(session, dossier: Dossier, history: dict) -> None:
    """Store dossier's new state and to_confirm (set on it by the engine) and its history row, in session's transaction.

    history: the history row's action, from_state, to_state, actor_id, actor_role, comment and flagged.
    Raise StaleDataError, as the ORM's version check does, when the stored dossier's version is no longer the one
    read: services/transaction.committing turns it into a ConflictError.
    """
    connection, moment = session.connection(), utcnow()
    written = {"state": dossier.state, "state_changed_at": moment, "updated_at": moment,
               "to_confirm": bool(dossier.to_confirm)}
    state_row = {**update_params(dossier, written), "moment": moment}
    both = connection.dialect.name == "postgresql"
    if both:
        # The insert's rowcount is not reported through the WITH: count the rows it returns.
        rows = connection.execute(UPDATE_STATE_AND_INSERT_HISTORY, {**state_row, **history}).all()
        matched = len(rows)
        if matched == 1 and rows[0].sequence is not None:  # no head row yet: the placement makes it
            remember_locked_head(connection, rows[0].sequence, rows[0].row_hash)
    else:
        matched = connection.execute(UPDATE_STATE, state_row).rowcount
    if matched != 1:
        raise stale(dossier)
    mark_written(session, dossier, written)
    if not both:
        connection.execute(INSERT_HISTORY, {**history, "dossier_id": dossier.id, "created_at": moment})
    if "history" not in inspect(dossier).unloaded:
        session.expire(dossier, ["history"])  # a loaded history list would miss the row just written
    notice = decision_notice(session, dossier, history["from_state"], history["to_state"], history["actor_id"],
                             history["comment"], history["flagged"])
    if notice is not None:
        queue_notices(session, [notice])
    track_written(session, {dossier.id}, outbox_written=both)
