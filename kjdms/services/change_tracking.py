"""The one place where a commit queues search-index outbox rows, notices and dossier revisions.

Every service changes dossiers through the shared session and commits (services/transaction.py).
create_app installs these session hooks once per process, so that:

- after each flush, the dossiers the flush touched are found (`touched_dossier_ids`): an outbox row
  is queued for each in the same transaction (the index reads it later, services/indexing.py), and
  their ids are kept for the revision; a fired transition, which writes its rows with Core statements
  the flush never sees, tells the same through `track_written` (services/transition_rows.py);
- just before the commit, one revision per touched effective dossier is written (services/revisions.py),
  and the statistics counters of every queued dossier are moved to match it (services/stats_counters.py);
- after each flush, the notices its new rows call for (a decision, a credit record) are queued in the same
  transaction (services/notices.py), for the worker to deliver;
- after the commit, on_outbox_commit() runs if rows were queued (the drainer indexes them);
- a rollback forgets both.
"""
from __future__ import annotations

from itertools import chain
from typing import Callable

from sqlalchemy import event, insert, inspect, select
from sqlalchemy.orm import object_session
from sqlalchemy.orm.util import identity_key

from ..models import (Attachment, AttachmentVersion, CreditRecord, Dossier, DossierRevision, IndexOutbox, Person,
                      WorkflowHistory, utcnow)
from .notices import queue_event_notices
from .revisions import insert_revisions, revision_rows
from .stats_counters import recount

# Set on a session whose transaction queued outbox rows: its commit wakes the drain.
OUTBOX_PENDING = "kjdms_outbox_pending"
# Set on a session while its transaction changed dossiers: their ids, for before_commit's revisions.
CHANGED_DOSSIERS = "kjdms_revision_dossiers"
# Set on a session while its transaction queued dossiers (bulk writes too): their ids, for the statistics counters.
COUNTED_DOSSIERS = "kjdms_counted_dossiers"

_installed = False
# Built once: every change queues outbox rows.
INSERT_OUTBOX = insert(IndexOutbox)


def touched_dossier_ids(obj) -> set:
    """Return the ids of the dossiers whose content (fields, person, documents) obj is part of."""
    if isinstance(obj, Dossier):
        return {obj.id}
    if isinstance(obj, Person):
        return {dossier.id for dossier in obj.dossiers}
    if isinstance(obj, Attachment):
        return {obj.dossier_id}
    if isinstance(obj, AttachmentVersion):
        return {obj.attachment.dossier_id} if obj.attachment is not None else set()
    return set()


def credited_dossier_ids(obj) -> set:
    """Return the ids of the dossiers whose has-credit flag obj changes (every dossier of its person)."""
    if isinstance(obj, CreditRecord):
        return set(object_session(obj).scalars(select(Dossier.id).where(Dossier.person_id == obj.person_id)))
    return set()


def counted_dossier_ids(obj) -> set:
    """Return the ids of the dossiers whose statistics counters obj moves besides its own: a history row's dossier,
    a working copy's baseline (its history counts there, and a copy thrown away takes its rows with it), a revision's
    dossier (a copy's change date is compared with the revision its baseline held then)."""
    if isinstance(obj, DossierRevision):
        return {obj.dossier_id}
    if isinstance(obj, WorkflowHistory):
        dossier = obj.dossier
        return {obj.dossier_id, *((dossier.id, dossier.baseline_id) if dossier is not None else ())}
    if isinstance(obj, Dossier) and obj.baseline_id is not None:
        return {obj.baseline_id}
    return set()


def enqueue(session, dossier_ids, counted: bool = True) -> None:
    """Queue dossier_ids for indexing in session's transaction (bulk writes that bypass the ORM call this)."""
    now = utcnow()
    session.connection().execute(INSERT_OUTBOX, [
        {"dossier_id": dossier_id, "queued_at": now, "attempts": 0} for dossier_id in sorted(dossier_ids)])
    _queued(session, dossier_ids, counted)


def _queued(session, dossier_ids, counted: bool = True) -> None:
    """Remember that dossier_ids' outbox rows are in session's transaction: the commit wakes the drain and, when
    counted, the counters move."""
    session.info[OUTBOX_PENDING] = True
    if counted:
        session.info.setdefault(COUNTED_DOSSIERS, set()).update(dossier_ids)


def track_written(session, dossier_ids, outbox_written: bool = False, counted: bool = True) -> None:
    """Queue outbox rows, revisions and counters for dossier_ids, changed with Core statements the flush never sees.

    A fired transition writes its own rows so (services/transition_rows.py) and says so here: the same as
    _track_flush does for the dossiers a flush touched. outbox_written: the caller's own statement inserted the
    outbox rows already (PostgreSQL's transition does, in the statement that moves the state). counted: False when
    the rows written move no statistics counter (a document's new version: the counters read the dossier's fields,
    its person and its history, never its documents), which spares the commit the counters' three reads.
    """
    if outbox_written:
        _queued(session, dossier_ids, counted)
    else:
        enqueue(session, dossier_ids, counted)
    session.info.setdefault(CHANGED_DOSSIERS, set()).update(dossier_ids)


def leave_outbox_to_worker(session) -> None:
    """Let the next commit skip the inline drain: its rows stay queued for the worker."""
    session.info.pop(OUTBOX_PENDING, None)


def _track_flush(session, flush_context) -> None:
    """Queue outbox rows for the dossiers this flush touched and remember them for their revisions."""
    changed = list(chain(session.new, (obj for obj in session.dirty if session.is_modified(obj)), session.deleted))
    with session.no_autoflush:
        touched = set().union(*(touched_dossier_ids(obj) for obj in changed)) - {None}
        credited = set().union(*(credited_dossier_ids(obj) for obj in changed)) - {None}
    if touched | credited:
        enqueue(session, touched | credited)
    if touched:
        session.info.setdefault(CHANGED_DOSSIERS, set()).update(touched)
    with session.no_autoflush:
        counted = set().union(*(counted_dossier_ids(obj) for obj in changed)) - {None}
    if counted:
        session.info.setdefault(COUNTED_DOSSIERS, set()).update(counted)
    if session.new:
        with session.no_autoflush:
            queue_event_notices(session, session.new)


def _before_commit(session) -> None:
    """Write the revisions of the dossiers the transaction changed, inside it."""
    # Session.commit flushes only after before_commit: flush first so the last changes are tracked too.
    session.flush()
    dossier_ids = session.info.pop(CHANGED_DOSSIERS, None)
    revisions = revision_rows(session, dossier_ids) if dossier_ids else []
    counted = session.info.pop(COUNTED_DOSSIERS, None)
    if counted:
        # The counters' recount inserts the revisions too (on PostgreSQL in one of its statements).
        recount(session.connection(), counted, known_baselines=known_baselines(session, counted), revisions=revisions)
    else:
        insert_revisions(session.connection(), revisions)


def known_baselines(session, dossier_ids) -> dict[int, int | None]:
    """Return dossier id → baseline id of the dossiers among dossier_ids that session holds stored and loaded.

    The counters need every working copy's baseline; those the session holds need no statement to find it.
    """
    known = {}
    for dossier_id in dossier_ids:
        dossier = session.identity_map.get(identity_key(Dossier, dossier_id))
        # A deleted copy is left to the read, which no longer finds it (as before): only stored rows are known.
        if dossier is not None and (state := inspect(dossier)).persistent and "baseline_id" not in state.unloaded:
            known[dossier_id] = dossier.baseline_id
    return known


def _forget(session, previous_transaction=None) -> None:
    """Drop what a rolled-back transaction tracked."""
    session.info.pop(OUTBOX_PENDING, None)
    session.info.pop(CHANGED_DOSSIERS, None)
    session.info.pop(COUNTED_DOSSIERS, None)


def install_change_tracking(session_factory, on_outbox_commit: Callable[[], None]) -> None:
    """Hook change tracking onto session_factory, once per process; on_outbox_commit runs after commits that queued rows."""
    global _installed
    if _installed:
        return

    def after_commit(session):
        if session.info.pop(OUTBOX_PENDING, False):
            on_outbox_commit()

    event.listen(session_factory, "after_flush", _track_flush)
    event.listen(session_factory, "before_commit", _before_commit)
    event.listen(session_factory, "after_commit", after_commit)
    event.listen(session_factory, "after_soft_rollback", _forget)
    _installed = True
