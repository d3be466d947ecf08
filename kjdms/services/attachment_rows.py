"""Write an upload's rows with statements built once: the dossier touched under its version check, the slot's
attachment row on its first upload, the version numbered after the slot's last (on PostgreSQL one statement with the
outbox row and the audit chain's head); then tell change tracking.

Loading the dossier's documents with all their versions to append one through the unit of work cost an upload
more Python than its rows' round trips, and grew with every version the slot had.
"""
from __future__ import annotations

from sqlalchemy import bindparam, func, insert, literal, select, true
from sqlalchemy.orm.util import identity_key

from ..models import Attachment, AttachmentVersion, Dossier, IndexOutbox, utcnow
from .audit_chain import HEAD_READ, lock_head_after, remember_locked_head
from .change_tracking import track_written
from .dossier_rows import dossiers, mark_written, stale, update_params, versioned_update

attachments, versions, outbox = Attachment.__table__, AttachmentVersion.__table__, IndexOutbox.__table__
# A version row alone would not change the dossier's row: touching it makes its version check catch a submit that
# happened since the dossier was read, which must not receive a document after the fact.
TOUCH_DOSSIER = versioned_update("updated_at")
# The columns of a version the caller gives (write_version's values); write_version adds the time of the upload.
GIVEN = ("sha256", "size", "media_type", "original_filename", "uploaded_by_id", "comment")
WRITTEN = (*GIVEN, "uploaded_at")


def _next_version(dossier_id):
    """Return the INSERT of a slot's next version for the dossier whose id is dossier_id (a bound value or a column).

    One statement: numbered after the slot's last, found by the dossier and the slot; no row when the slot has none
    yet (its first upload inserts the attachment row, then version 1).
    """
    return (insert(versions).from_select(
        ["attachment_id", "number", *WRITTEN],
        select(attachments.c.id, func.coalesce(func.max(versions.c.number), 0) + 1,
               *(bindparam(name, type_=versions.c[name].type) for name in WRITTEN))
        .select_from(attachments.outerjoin(versions))
        .where(attachments.c.dossier_id == dossier_id, attachments.c.slot == bindparam("slot"))
        .group_by(attachments.c.id), include_defaults=False)  # the database's defaults: a WITH's insert gets no other
        .returning(versions.c.id, versions.c.attachment_id, versions.c.number))


INSERT_NEXT_VERSION = _next_version(bindparam("dossier_id"))
# SQLite reads the audit chain's head in the touch's RETURNING: the touch takes the write lock, which keeps the head as
# read until the commit (audit_chain.HEAD_READ), so the audit event needs no statement of its own to lock it.
TOUCH_DOSSIER_READING_HEAD = TOUCH_DOSSIER.returning(*HEAD_READ)
# PostgreSQL touches the dossier, queues its outbox row, inserts the slot's next version and locks and reads the audit
# chain's head in one round trip (a data-modifying WITH, which SQLite lacks), as a transition does (transition_rows.py).
# Each part reads the dossier's id from the version-checked UPDATE: a stale version writes nothing. The statement reads
# the slot's last number as of its start, before it waits for the dossier's lock; an upload that commits meanwhile
# moved the dossier's version too, so the check fails and nothing is written. One row: the dossier's id, the version's
# id, attachment id and number (None when the slot has none yet), the head.
_touched = TOUCH_DOSSIER.returning(dossiers.c.id).cte("touched")
_queued = insert(outbox).from_select(
    ["dossier_id", "queued_at", "attempts"],
    select(_touched.c.id, bindparam("uploaded_at", type_=outbox.c.queued_at.type), literal(0, outbox.c.attempts.type))
).cte("queued")
_inserted = _next_version(select(_touched.c.id).scalar_subquery()).cte("inserted")
_head = lock_head_after(_touched)
TOUCH_AND_INSERT_NEXT_VERSION = (
    select(_touched.c.id, _inserted.c.id.label("version_id"), _inserted.c.attachment_id, _inserted.c.number,
           _head.c.sequence, _head.c.row_hash)
    .select_from(_touched.outerjoin(_inserted, true()).outerjoin(_head, true())).add_cte(_queued))
INSERT_ATTACHMENT = insert(attachments).returning(attachments.c.id)
INSERT_VERSION = insert(versions).returning(versions.c.id)


def write_version(session, dossier: Dossier, slot: str, values: dict) -> tuple[int, int]:
    """Store a new version of dossier's slot with values (its GIVEN columns; uploaded_at is now); return id and number.

    Written in session's transaction, which the caller commits. Raise StaleDataError, as the ORM's version check
    does, when the stored dossier's version is no longer the one read.
    """
    if values.keys() - set(GIVEN):
        raise ValueError(f"not a version's given column: {sorted(values.keys() - set(GIVEN))}")
    connection, moment = session.connection(), utcnow()
    slot_row = {"dossier_id": dossier.id, "slot": slot}
    given = {name: values.get(name) for name in GIVEN} | {"uploaded_at": moment}
    touch = update_params(dossier, {"updated_at": moment})
    in_one = connection.dialect.name == "postgresql"
    if in_one:
        row = connection.execute(TOUCH_AND_INSERT_NEXT_VERSION, {**touch, **slot_row, **given}).first()
    else:
        # The dossier first: its write lock orders concurrent uploads, so the last number the version's insert
        # reads is still the last when it inserts.
        row = connection.execute(TOUCH_DOSSIER_READING_HEAD, touch).first()
    if row is None:
        raise stale(dossier)
    sequence, row_hash = row[-2:]
    if sequence is not None:  # no head row yet: the audit event's placement makes it
        remember_locked_head(connection, sequence, row_hash)
    if in_one:
        found = None if row.version_id is None else (row.version_id, row.attachment_id, row.number)
    else:
        found = connection.execute(INSERT_NEXT_VERSION, {**slot_row, **given}).first()
    mark_written(session, dossier, {"updated_at": moment})
    if found is None:
        attachment_id, number = connection.execute(INSERT_ATTACHMENT, slot_row).scalar_one(), 1
        version_id = connection.execute(INSERT_VERSION, {**given, "attachment_id": attachment_id,
                                                         "number": number}).scalar_one()
    else:
        version_id, attachment_id, number = found
    _forget_loaded_documents(session, dossier, attachment_id, created=found is None)
    track_written(session, {dossier.id}, outbox_written=in_one, counted=False)
    return version_id, number


def _forget_loaded_documents(session, dossier: Dossier, attachment_id: int, created: bool) -> None:
    """Expire what the session holds of the slot's versions and, when the slot is new, of dossier's documents."""
    # By identity, however the session came to hold the attachment: its version list misses the row just written.
    attachment = session.identity_map.get(identity_key(Attachment, attachment_id))
    if attachment is not None:
        session.expire(attachment, ["versions"])
    if created:
        session.expire(dossier, ["attachments"])
